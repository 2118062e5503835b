"""Segment fields and the segment tag on amoCRM contact (or company) cards.

One `PATCH /api/v4/contacts` per 50 cards: the `RS_*` custom fields by id (a date as the Unix time
of its midnight in the account's zone, `values: null` to clear), plus `tags_to_add` for the new
segment tag and `tags_to_delete` for the segment tags it replaces, so managers' own tags stay
(Doc: developers.kommo.com/reference/update-tags; amocrm.ru/developers/content/crm_platform/custom-fields).
A lost answer is settled by reading the cards back: the values they hold hash to the action's key.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from connector import fields as card
from connector.amocrm import mapping
from connector.amocrm.batches import send_rounds
from connector.amocrm.client import AmoClient
from connector.amocrm.pull import pages
from connector.crm import CrmRef, WriteOutcome
from connector.errors import CrmError
from connector.model import Action

log = logging.getLogger(__name__)

IDS_PER_READ = 250
FIELDS_PAGE = 50  # Doc: amocrm.ru/developers/content/crm_platform/custom-fields - at most 50 a page


def field_code(name: str) -> str:
    """`next_purchase` -> `RS_NEXT_PURCHASE`."""
    return "RS_" + name.upper()


CARD_CODES = {f.name: field_code(f.name) for f in card.CARD_FIELDS}
DATE_FIELDS = {f.name for f in card.CARD_FIELDS if f.kind == "date"}


class FieldIds:
    """Custom field code -> id for one entity (contacts, companies, leads), read once a run."""

    def __init__(self, client: AmoClient) -> None:
        self.client = client
        self._ids: dict[str, dict[str, int]] = {}

    def of(self, entity: str) -> dict[str, int]:
        if entity not in self._ids:
            self._ids[entity] = {str(f.get("code")): int(f["id"]) for rows in pages(
                self.client, f"/api/v4/{entity}/custom_fields", "custom_fields", limit=FIELDS_PAGE)
                for f in rows if f.get("code")}
        return self._ids[entity]

    def missing(self, entity: str, codes: Iterable[str]) -> list[str]:
        have = self.of(entity)
        return sorted(c for c in codes if c not in have)

    def installed(self, entity: str, codes: Iterable[str]) -> bool:
        """True once `repeat-sales install` ran: any of these fields exists (one deleted later is
        reported per action, with the fix); an account that refuses the read: False."""
        try:
            codes = list(codes)
            return len(self.missing(entity, codes)) < len(codes)
        except CrmError as exc:
            log.warning("amocrm custom fields unreadable: %s", exc)
            return False

    def reset(self) -> None:
        self._ids.clear()


class CardWriter:
    def __init__(self, client: AmoClient, ids: FieldIds, *, entity: str, timezone: Callable[[], ZoneInfo]) -> None:
        self.client, self.ids, self.entity, self.timezone = client, ids, entity, timezone

    def body(self, action: Action) -> dict:
        ids = self.ids.of(self.entity)
        values = action.payload.get("fields") or {}
        custom = []
        for name, code in CARD_CODES.items():
            value = card.normal(values.get(name))
            if code not in ids:  # a later field install has not made on this account yet
                continue
            if not value:
                custom.append({"field_id": ids[code], "values": None})
            elif name in DATE_FIELDS:
                midnight = datetime.combine(date.fromisoformat(value), time(), tzinfo=self.timezone())
                custom.append({"field_id": ids[code], "values": [{"value": int(midnight.timestamp())}]})
            else:
                custom.append({"field_id": ids[code], "values": [{"value": value}]})
        out: dict = {"id": int(action.customer_id), "custom_fields_values": custom, "request_id": action.key}
        if action.payload.get("tag"):
            out["tags_to_add"] = [{"name": str(action.payload["tag"])}]
        drop = [{"name": str(t)} for t in action.payload.get("drop_tags") or []]
        if drop:
            out["tags_to_delete"] = drop
        return out

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        missing = self.ids.missing(self.entity, [CARD_CODES[n] for n in card.REQUIRED_FIELDS])
        if missing:
            why = f"the custom fields {', '.join(missing)} are missing: run `repeat-sales install`"
            return [WriteOutcome(a.key, False, reason=why) for a in actions]
        outcomes: dict[str, WriteOutcome] = {}
        bodies = []
        for a in actions:
            if a.customer_id.isdigit():
                bodies.append((a.key, self.body(a)))
            else:
                outcomes[a.key] = WriteOutcome(a.key, False, reason="the customer id is not an amoCRM id")
        done, refused = send_rounds(self.client, "PATCH", f"/api/v4/{self.entity}", bodies, key=self.entity)
        for a in actions:
            if a.key in refused:
                outcomes[a.key] = WriteOutcome(a.key, False, reason=refused[a.key])
            elif a.key in done:
                outcomes[a.key] = WriteOutcome(a.key, True, CrmRef("fields", a.customer_id))
        return [outcomes[a.key] for a in actions]

    def held(self, raw: dict) -> dict[str, str]:
        """The card values a contact holds, as `connector.fields` writes them."""
        tz = self.timezone()
        out = {}
        for name, code in CARD_CODES.items():
            value = mapping.first_value(raw, code)
            if name in DATE_FIELDS and value not in (None, ""):
                day = mapping.calendar_day(value, tz, field=code)
                out[name] = day.isoformat() if day else ""
            else:
                out[name] = card.normal(value)
        return out

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        by_customer: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_customer[card.customer_of(key)].append(key)
        ids = sorted((c for c in by_customer if c.isdigit()), key=int)
        found: dict[str, CrmRef] = {}
        for n in range(0, len(ids), IDS_PER_READ):
            for rows in pages(self.client, f"/api/v4/{self.entity}", self.entity,
                              {"filter[id][]": ids[n:n + IDS_PER_READ]}):
                for raw in rows:
                    cid = str(raw.get("id"))
                    mark = card.digest(self.held(raw))
                    for key in by_customer.get(cid, ()):
                        if card.key_digest(key) == mark:
                            found[key] = CrmRef("fields", cid)
        return found
