"""Segment fields on Bitrix24 contact (or company) cards: user fields written 50 to a request.

Each card action is one `crm.contact.update` with the `UF_CRM_RS_*` values (a date as
YYYY-MM-DD, "" to clear) inside a `batch` of 50 (Doc: crm/contacts/crm-contact-update.md). The
portal ignores unknown user fields silently, so a missing field is checked first and the action
refused with the fix. Whether an answer was lost is settled by reading the card back: the values
it holds hash to the action's key.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from connector import fields as card
from connector.bitrix.batching import reason, send_groups
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import list_pages
from connector.crm import CrmRef, WriteOutcome
from connector.errors import CrmError
from connector.model import Action

log = logging.getLogger(__name__)

PREFIX = "UF_CRM_RS_"
OPT_OUT = "UF_CRM_RS_NO_MARKETING"
IDS_PER_READ = 50  # one list page


def uf_name(name: str) -> str:
    """`next_purchase` -> `UF_CRM_RS_NEXT_PURCHASE` (the portal adds UF_CRM_ to FIELD_NAME RS_...)."""
    return PREFIX + name.upper()


CARD_UFS = {f.name: uf_name(f.name) for f in card.CARD_FIELDS}
CODE_SUFFIX = re.compile(r" \[[A-Za-z0-9_:.-]+\]$")


def with_code(name: str, code: str) -> str:
    """"Чемпионы [champions]": the team reads the name; a list filter ("contains [champions]") and a
    robot condition keep working when the playbook renames the segment or changes its language."""
    return f"{name} [{code}]" if name and code and name != code else name


def without_code(text: str) -> str:
    return CODE_SUFFIX.sub("", text)


class UserFields:
    """The user fields of the customer entity, read once per run (install resets it)."""

    def __init__(self, client: BitrixClient, customer_key: str) -> None:
        self.client = client
        self.entity = "company" if customer_key == "company" else "contact"
        self._names: set[str] | None = None

    def names(self) -> set[str]:
        if self._names is None:
            self._names = {str(r.get("FIELD_NAME")) for rows in
                           list_pages(self.client, f"crm.{self.entity}.userfield.list", {}) for r in rows}
        return self._names

    def missing(self) -> list[str]:
        return sorted(set(CARD_UFS.values()) - self.names())

    def installed(self) -> bool:
        """True once `repeat-sales install` ran: any card field exists (one deleted later is reported per
        action, with the fix); a portal that refuses the read: False."""
        try:
            return bool(set(CARD_UFS.values()) & self.names())
        except CrmError as exc:
            log.warning("bitrix userfields unreadable: %s", exc)
            return False

    def reset(self) -> None:
        self._names = None


class CardWriter:
    def __init__(self, client: BitrixClient, userfields: UserFields) -> None:
        self.client = client
        self.userfields = userfields
        self.entity = userfields.entity

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        missing = self.userfields.missing()
        if missing:
            why = f"the card fields {', '.join(missing)} are missing: run `repeat-sales install`"
            return [WriteOutcome(a.key, False, reason=why) for a in actions]
        groups = []
        for i, action in enumerate(actions):
            values = action.payload.get("fields") or {}
            codes = action.payload.get("codes") or {}
            update = {uf: with_code(card.normal(values.get(name)), card.normal(codes.get(name)))
                      if name in card.NAMED_FIELDS else card.normal(values.get(name)) for name, uf in CARD_UFS.items()}
            groups.append({f"f{i}": (f"crm.{self.entity}.update", {"id": action.customer_id, "fields": update})})
        sent = send_groups(self.client, groups)
        outcomes = []
        for i, action in enumerate(actions):
            label = f"f{i}"
            if label in sent.errors or label not in sent.result:
                outcomes.append(WriteOutcome(action.key, False, reason=reason(sent.errors.get(label))))
            else:
                outcomes.append(WriteOutcome(action.key, True, CrmRef("fields", action.customer_id)))
        return outcomes

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Keys whose values the cards hold now (read back 50 cards to a command)."""
        by_customer: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_customer[card.customer_of(key)].append(key)
        ids = sorted(by_customer, key=lambda x: (len(x), x))
        select = ["ID", *CARD_UFS.values()]
        groups = [{f"r{n}": (f"crm.{self.entity}.list", {"filter": {"@ID": ids[n:n + IDS_PER_READ]},
                                                         "select": select, "order": {"ID": "ASC"}})}
                  for n in range(0, len(ids), IDS_PER_READ)]
        found: dict[str, CrmRef] = {}
        if not groups:
            return found
        sent = send_groups(self.client, groups)
        for rows in sent.result.values():
            for row in rows if isinstance(rows, list) else []:
                cid = str(row.get("ID"))
                held = card.digest({name: without_code(card.normal(row.get(uf))) for name, uf in CARD_UFS.items()})
                for key in by_customer.get(cid, ()):
                    if card.key_digest(key) == held:
                        found[key] = CrmRef("fields", cid)
        return found
