"""SMS touches in Bitrix24, through the portal's own SMS provider: no REST method sends an SMS, so the
admin binds once the robot "Send SMS" with the text of the deal field UF_CRM_RS_MESSAGE to the trigger
this app registers (`crm.automation.trigger.add`, code `rs_sms`, at install). A touch writes its text
into that field of the customer's latest deal and fires the trigger on it
(`crm.automation.trigger.execute`, OWNER_TYPE_ID 2); the robot sends it.

Both trigger methods work only in an application's context and for an administrator: from an incoming
webhook the portal answers "Application context required" and every SMS of the run moves on to its
next channel, as it does when the admin has not said the robot is bound (BITRIX_SMS_ROBOT, since no
REST read shows what a trigger starts), or when the customer has no deal for the robot to run on.
The marker is a timeline comment written in the same batch, before the field and the trigger (notes.py).
Doc: api-reference/crm/automation/triggers/crm-automation-trigger-add.md, crm-automation-trigger-execute.md,
api-reference/crm/deals/crm-deal-list.md, crm-deal-update.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from connector.bitrix.batching import reason, send_groups
from connector.bitrix.client import BitrixClient
from connector.bitrix.notes import CardNotes
from connector.crm import CrmRef, WriteOutcome
from connector.errors import CrmError
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

TRIGGER = "rs_sms"
TRIGGER_NAMES = {"ru": "repeat-sales: отправить SMS клиенту", "en": "repeat-sales: send the customer an SMS"}
MESSAGE_FIELD = "UF_CRM_RS_MESSAGE"  # on deals; install creates it
DEAL = 2  # crm.enum.ownertype
HEADS = {"ru": "Отправлено клиенту по SMS:", "en": "Sent to the customer by SMS:"}
NOTE_HEADS = dict.fromkeys(HEADS.values(), "sms")
# the portal's words (Doc: crm-automation-trigger-execute.md, "Возможные коды ошибок") -> the reason code
FALLS = {"Application context required": "no_app", "is not registered": "no_trigger",
         "Admin permissions required": "no_app"}


def register_trigger(client: BitrixClient, lang: str = "ru") -> tuple[str, bool]:
    """Install's part: the app's trigger the admin binds the SMS robot to. ("" when there, else why not;
    whether it was there already, so a second install does not say it made it.)"""
    try:  # Doc: crm-automation-trigger-list.md - the app's own triggers, CODE and NAME
        listed = client.call("crm.automation.trigger.list", {}).get("result") or []
        there = any(str(t.get("CODE")) == TRIGGER for t in listed)
        if not there:  # an existing CODE would be renamed, not doubled (Doc: crm-automation-trigger-add.md)
            client.call("crm.automation.trigger.add", {"CODE": TRIGGER,
                                                       "NAME": TRIGGER_NAMES.get(lang, TRIGGER_NAMES["ru"])})
    except CrmError as exc:
        return str(exc), False
    return "", there


def remove_trigger(client: BitrixClient) -> bool:
    try:
        client.call("crm.automation.trigger.delete", {"CODE": TRIGGER})
    except CrmError:
        return False
    return True


class SmsWriter:
    kind = ActionKind.SMS

    def __init__(self, client: BitrixClient, *, customer_key: str, robot_bound: bool) -> None:
        self.client = client
        self.customer_field = "COMPANY_ID" if customer_key == "company" else "CONTACT_ID"
        self.notes = CardNotes(client, customer_key=customer_key, heads=NOTE_HEADS)
        # an incoming webhook (/rest/<user>/<code>/) is no application: the trigger cannot be fired from it
        self.why_not = "no_app" if client.webhook_user is not None else "" if robot_bound else "no_sms_robot"
        self._field_checked = False

    def unavailable(self) -> str:
        """Why no SMS can go out from here at all ("" when they may)."""
        if not self.why_not and not self._field_checked:
            self._field_checked = True
            if not self._field_ready():  # the portal drops an unknown field silently: the robot would send ""
                self.why_not = "not_installed"
        return self.why_not

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        if self.unavailable():
            return [WriteOutcome(a.key, False, reason=self.why_not, fall=self.why_not) for a in actions]
        deals = self._latest_deals({a.customer_id for a in actions})
        outcomes: dict[str, WriteOutcome] = {}
        sendable = []
        for action in actions:
            if deals.get(action.customer_id):
                sendable.append(action)
            else:
                outcomes[action.key] = WriteOutcome(action.key, False, reason="no deal", fall="no_deal")
        groups = [self._commands(i, a, deals[a.customer_id]) for i, a in enumerate(sendable)]
        sent = send_groups(self.client, groups)
        undo, redo = [], []
        for i, action in enumerate(sendable):
            comment = sent.result.get(f"c{i}") if f"c{i}" not in sent.errors else None
            failed = next((sent.errors[f"{p}{i}"] for p in ("f", "t") if f"{p}{i}" in sent.errors), None)
            if failed is None and sent.result.get(f"t{i}"):
                if not comment:  # fired without its marker: leave it now, or a lost ledger would fire again
                    redo.append({f"c{i}": groups[i][f"c{i}"]})
                outcomes[action.key] = WriteOutcome(action.key, True, CrmRef("sms", str(comment or "?")))
                continue
            why = reason(failed)
            fall = next((code for text, code in FALLS.items() if text in why), "refused_by_crm")
            if fall in ("no_app", "no_trigger"):
                self.why_not = fall
                log.warning("bitrix sms not sent: %s; SMS steps go to their next channel", why)
            if comment:
                undo.append({f"u{i}": self.notes.delete(comment)})
            outcomes[action.key] = WriteOutcome(action.key, False, reason=why, fall=fall)
        self.notes.settle(sendable, outcomes, sent, undo, redo, "sms")
        return [outcomes[a.key] for a in actions]

    def _commands(self, i: int, action: Action, deal_id: str) -> dict:
        lang = "en" if action.payload.get("lang") == "en" else "ru"
        text = str(action.payload.get("text") or "").strip()
        # in this order in one batch: the marker, the text the robot reads, the trigger that starts it
        return {f"c{i}": self.notes.add(action.customer_id, f"{HEADS[lang]}\n{text}", action.key),
                f"f{i}": ("crm.deal.update", {"id": int(deal_id), "fields": {MESSAGE_FIELD: text}}),
                f"t{i}": ("crm.automation.trigger.execute", {"CODE": TRIGGER, "OWNER_TYPE_ID": DEAL,
                                                            "OWNER_ID": int(deal_id)})}

    def _field_ready(self) -> bool:
        try:
            rows = self.client.call("crm.deal.userfield.list", {"filter": {"FIELD_NAME": MESSAGE_FIELD}})["result"]
        except CrmError as exc:
            log.warning("bitrix deal fields unreadable: %s", exc)
            return False
        return any(str(r.get("FIELD_NAME")) == MESSAGE_FIELD for r in rows or [] if isinstance(r, dict))

    def _latest_deals(self, customers: Iterable[str]) -> dict[str, str]:
        """The newest deal of each customer (the robot runs on a deal), one list command per customer."""
        ids = sorted(c for c in customers if c.isdigit())
        sent = send_groups(self.client, [{f"d{c}": ("crm.deal.list", {
            "filter": {self.customer_field: int(c)}, "select": ["ID"], "order": {"ID": "DESC"}, "start": -1})}
            for c in ids])
        out = {}
        for c in ids:
            rows = sent.result.get(f"d{c}")
            if isinstance(rows, list) and rows and isinstance(rows[0], dict) and rows[0].get("ID"):
                out[c] = str(rows[0]["ID"])
        return out

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        return self.notes.find(keys)
