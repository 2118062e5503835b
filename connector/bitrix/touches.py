"""Touches Bitrix24 delivers itself: e-mails from the portal's mailboxes, as e-mail activities; messages
into open-line chats (messenger.py) and SMS through the admin's robot (sms.py) join them in TouchWriter.

`crm.activity.add` with TYPE_ID=4 (e-mail), DIRECTION=2 (outgoing) and COMPLETED='Y' sends the
letter in the same request; it needs only the `crm` scope, so it works from a webhook. The marker
`rs:<key>` goes into ORIGIN_ID (with ORIGINATOR_ID "repeat-sales"), the fields the portal keeps for
an external source, never into the letter. A portal without a mailbox answers `"From" is not found`:
the e-mail moves on to the step's next channel, and so does every e-mail after it in this run.
Doc: api-reference/crm/timeline/activities/activity-base/crm-activity-add.md,
tutorials/crm/how-to-add-crm-objects/how-to-send-email.md.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

from connector.bitrix.batching import reason, send_groups, send_in_slices
from connector.bitrix.client import BitrixClient
from connector.bitrix.messenger import NOTE_HEADS as MESSAGE_HEADS
from connector.bitrix.messenger import MessengerWriter
from connector.bitrix.notes import CardNotes
from connector.bitrix.pull import list_pages
from connector.bitrix.rights import Rights
from connector.bitrix.sms import NOTE_HEADS as SMS_HEADS
from connector.bitrix.sms import SmsWriter
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

ORIGINATOR = "repeat-sales"
EMAIL_TYPE = 4  # crm.enum.activitytype: E-mail
OUTGOING = 2  # crm.enum.activitydirection
HTML = 3  # crm.enum.contenttype: 1 plain text, 2 BB code, 3 HTML
OWNER_TYPES = {"contact": 3, "company": 4}  # Doc: api-reference/crm/data-types.md#object_type
# the portal's words (Doc: crm-activity-add.md, "Возможные коды ошибок") -> why the channel cannot be used
FALLS = {'"From" is not found': "no_mailbox", "Invalid email is specified": "no_email",
         '"To" is not found': "no_email"}


def letter(text: str) -> str:
    """The customer's text as the HTML body of an e-mail: escaped, paragraphs and lines kept."""
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


class EmailWriter:
    """E-mails from the portal's mailbox, one activity each."""

    def __init__(self, client: BitrixClient, *, customer_key: str, responsible) -> None:
        self.client = client
        self.owner_type = OWNER_TYPES["company" if customer_key == "company" else "contact"]
        self.responsible = responsible
        self.why_not: dict[ActionKind, str] = {}  # kinds the portal refused for every customer this run
        self.duplicates_removed = 0

    @property
    def kinds(self) -> frozenset[ActionKind]:
        return frozenset({ActionKind.EMAIL}) - set(self.why_not)

    def email_fields(self, action: Action) -> dict:
        to = dict(action.payload.get("to") or {}).get("email", "")
        fields = {
            "OWNER_TYPE_ID": self.owner_type, "OWNER_ID": int(action.customer_id),
            "TYPE_ID": EMAIL_TYPE, "DIRECTION": OUTGOING, "COMPLETED": "Y",
            "COMMUNICATIONS": [{"VALUE": to, "ENTITY_ID": int(action.customer_id),
                                "ENTITY_TYPE_ID": self.owner_type}],
            "SUBJECT": str(action.payload.get("subject") or "")[:250],
            "DESCRIPTION": letter(str(action.payload.get("text") or "")), "DESCRIPTION_TYPE": HTML,
            "RESPONSIBLE_ID": self.responsible(action.manager_id),
            "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": marker(action.key),
        }
        if action.payload.get("from"):
            fields["SETTINGS"] = {"MESSAGE_FROM": str(action.payload["from"])}
        return fields

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        groups = [{f"e{i}": ("crm.activity.add", {"fields": self.email_fields(a)})} for i, a in enumerate(actions)]
        sent = send_groups(self.client, groups)
        outcomes = []
        for i, action in enumerate(actions):
            label = f"e{i}"
            if label not in sent.errors and sent.result.get(label):
                outcomes.append(WriteOutcome(action.key, True, CrmRef("email", str(sent.result[label]))))
                continue
            why = reason(sent.errors.get(label))
            fall = next((code for text, code in FALLS.items() if text in why), "")
            if fall == "no_mailbox":
                self.why_not[ActionKind.EMAIL] = fall
                log.warning("bitrix e-mail not sent: no mailbox on the portal; e-mail steps go to their next channel")
            outcomes.append(WriteOutcome(action.key, False, reason=why, fall=fall))
        if sent.resent:  # the batch went out twice: the oldest letter of a key is the one on record
            found = self.find([a.key for a in actions])
            outcomes = [WriteOutcome(o.key, True, found[o.key]) if o.key in found else o for o in outcomes]
        return outcomes

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """E-mails this plugin sent, by the marker in ORIGIN_ID: one list command per customer."""
        wanted = set(keys)
        customers = sorted({k.split(":")[1] for k in wanted if k.split(":")[1].isdigit()})
        if not customers:
            return {}

        def params(customer_id: str) -> dict:
            return {"filter": {"OWNER_TYPE_ID": self.owner_type, "OWNER_ID": int(customer_id),
                               "ORIGINATOR_ID": ORIGINATOR}, "select": ["ID", "ORIGIN_ID"], "order": {"ID": "asc"}}

        seen: dict[str, list[int]] = defaultdict(list)
        for sent in send_in_slices(self.client, ({f"a{c}": ("crm.activity.list", params(c))} for c in customers)):
            for label, rows in sent.result.items():
                if label in sent.next:
                    rows = [r for page in list_pages(self.client, "crm.activity.list", params(label[1:])) for r in page]
                self._collect(rows, seen, wanted)
        return {key: CrmRef("email", str(min(ids))) for key, ids in seen.items()}

    def all_markers(self) -> dict[str, CrmRef]:
        """Every e-mail this plugin ever sent on the portal: rebuilds a lost ledger."""
        seen: dict[str, list[int]] = defaultdict(list)
        params = {"filter": {"ORIGINATOR_ID": ORIGINATOR}, "select": ["ID", "ORIGIN_ID"], "order": {"ID": "asc"}}
        for rows in list_pages(self.client, "crm.activity.list", params):
            self._collect(rows, seen, None)
        return {key: CrmRef("email", str(min(ids))) for key, ids in seen.items()}

    @staticmethod
    def _collect(rows: object, seen: dict[str, list[int]], wanted: set[str] | None) -> None:
        for row in rows if isinstance(rows, list) else []:
            origin = str(row.get("ORIGIN_ID") or "")
            key = origin[3:] if origin.startswith("rs:") else ""
            if key and (wanted is None or key in wanted):
                seen[key].append(int(row["ID"]))


class TouchWriter:
    """Every touch by the writer of its kind. A kind this portal cannot deliver to anyone (e-mail without a
    mailbox, chats without the imopenlines scope, SMS from a webhook) is named in `why_not` with its reason,
    and left out of `kinds`, so each such touch moves on when it is planned (or written), saying why."""

    def __init__(self, client: BitrixClient, *, customer_key: str, responsible, rights=None,
                 sms_robot: bool = False) -> None:
        self.email = EmailWriter(client, customer_key=customer_key, responsible=responsible)
        self.writers = {ActionKind.EMAIL: self.email,
                        ActionKind.MESSAGE: MessengerWriter(client, customer_key=customer_key, responsible=responsible,
                                                            rights=rights or Rights),
                        ActionKind.SMS: SmsWriter(client, customer_key=customer_key, robot_bound=sms_robot)}
        self.notes = CardNotes(client, customer_key=customer_key, heads={**MESSAGE_HEADS, **SMS_HEADS})

    @property
    def why_not(self) -> dict[ActionKind, str]:
        out = dict(self.email.why_not)
        for kind in (ActionKind.MESSAGE, ActionKind.SMS):
            why = self.writers[kind].unavailable()
            if why:
                out[kind] = why
        return out

    @property
    def duplicates_removed(self) -> int:
        return self.email.duplicates_removed

    @property
    def kinds(self) -> frozenset[ActionKind]:
        return frozenset(self.writers) - set(self.why_not)

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        for kind, writer in self.writers.items():
            group = [a for a in actions if a.kind == kind]
            if group:
                outcomes.update({o.key: o for o in writer.write(group)})
        return [outcomes[a.key] for a in actions]

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """E-mails by their ORIGIN_ID, then messages and SMS by the comments on the customers' cards."""
        keys = list(keys)
        found = self.email.find(keys)
        rest = [k for k in keys if k not in found]
        if rest:
            found.update(self.notes.find(rest))
        return found

    def all_markers(self) -> dict[str, CrmRef]:
        """E-mails only: comments are read per card, so no bulk read finds messages and SMS (sync's
        `found_on_cards` looks for them on the cards before a new ledger writes)."""
        return self.email.all_markers()
