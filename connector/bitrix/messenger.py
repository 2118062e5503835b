"""Messenger touches in Bitrix24: the text into the customer's open-line chat (WhatsApp, Telegram... that
the portal connected as open lines), where the customer already has one.

`imopenlines.crm.chat.get` lists the chats bound to the card (CRM_ENTITY_TYPE contact / company,
CRM_ENTITY its id; `[]` when none), `imopenlines.crm.message.add` sends into one, on behalf of a user
who is a member of the chat - the customer's manager, the line's operator. Both need the `imopenlines`
scope (checked first, rights.py). No chat, or no scope: the touch moves on to the step's next channel.
The marker lives in a timeline comment written just before the message, in the same batch (notes.py).
Doc: api-reference/imopenlines/openlines/chats/imopenlines-crm-chat-get.md,
api-reference/imopenlines/openlines/messages/imopenlines-crm-message-add.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from connector.bitrix.batching import reason, send_groups
from connector.bitrix.client import BitrixClient
from connector.bitrix.notes import CardNotes
from connector.bitrix.rights import Rights
from connector.crm import CrmRef, WriteOutcome
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

HEADS = {"ru": "Отправлено клиенту в чат {chat}:", "en": "Sent to the customer in the {chat} chat:"}
NOTE_HEADS = {h.split("{")[0]: "message" for h in HEADS.values()}  # how its comments are told apart


class MessengerWriter:
    kind = ActionKind.MESSAGE

    def __init__(self, client: BitrixClient, *, customer_key: str, responsible,
                 rights: Callable[[], Rights]) -> None:
        self.client = client
        self.entity = "company" if customer_key == "company" else "contact"
        self.responsible = responsible
        self.rights = rights
        self.notes = CardNotes(client, customer_key=customer_key, heads=NOTE_HEADS)
        self.why_not = ""  # set when the portal refuses every chat this run (no imopenlines scope)

    def unavailable(self) -> str:
        """Why no chat message can go out from here at all ("" when they may)."""
        if not self.why_not and not self.rights().allows("messenger"):
            self._stop("no_openlines")
        return self.why_not

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        if self.unavailable():
            return [WriteOutcome(a.key, False, reason=self.why_not, fall=self.why_not) for a in actions]
        chats = self._chats({a.customer_id for a in actions})
        if self.why_not:
            return [WriteOutcome(a.key, False, reason=self.why_not, fall=self.why_not) for a in actions]
        outcomes: dict[str, WriteOutcome] = {}
        sendable = []
        for action in actions:
            if chats.get(action.customer_id):
                sendable.append(action)
            else:
                outcomes[action.key] = WriteOutcome(action.key, False, reason="no open-line chat", fall="no_chat")
        groups = [self._commands(i, a, chats[a.customer_id]) for i, a in enumerate(sendable)]
        sent = send_groups(self.client, groups)
        undo, redo = [], []
        for i, action in enumerate(sendable):
            comment = sent.result.get(f"c{i}") if f"c{i}" not in sent.errors else None
            if f"m{i}" in sent.errors or not sent.result.get(f"m{i}"):
                why = reason(sent.errors.get(f"m{i}"))
                if comment:
                    undo.append({f"u{i}": self.notes.delete(comment)})
                outcomes[action.key] = WriteOutcome(action.key, False, reason=why, fall="refused_by_crm")
                continue
            if not comment:  # sent without its marker: leave it now, or a lost ledger would send it again
                redo.append({f"c{i}": groups[i][f"c{i}"]})
            outcomes[action.key] = WriteOutcome(action.key, True, CrmRef("message", str(comment or "?")))
        self.notes.settle(sendable, outcomes, sent, undo, redo, "message")
        return [outcomes[a.key] for a in actions]

    def _commands(self, i: int, action: Action, chat: dict) -> dict:
        lang = "en" if action.payload.get("lang") == "en" else "ru"
        text = str(action.payload.get("text") or "").strip()
        head = HEADS[lang].format(chat=str(chat.get("CONNECTOR_TITLE") or chat.get("CONNECTOR_ID") or ""))
        return {f"c{i}": self.notes.add(action.customer_id, f"{head}\n{text}", action.key),
                f"m{i}": ("imopenlines.crm.message.add", {
                    "CRM_ENTITY_TYPE": self.entity, "CRM_ENTITY": int(action.customer_id),
                    "USER_ID": self.responsible(action.manager_id), "CHAT_ID": chat["CHAT_ID"], "MESSAGE": text})}

    def _chats(self, customers: Iterable[str]) -> dict[str, dict]:
        """The first open chat of each customer's card; none for a customer without one."""
        ids = sorted(c for c in customers if c.isdigit())
        sent = send_groups(self.client, [{f"h{c}": ("imopenlines.crm.chat.get", {
            "CRM_ENTITY_TYPE": self.entity, "CRM_ENTITY": int(c)})} for c in ids])
        if any(str(e.get("error", "")) == "insufficient_scope" for e in sent.errors.values()):
            self._stop("no_openlines")
            return {}
        out = {}
        for c in ids:
            rows = sent.result.get(f"h{c}")
            chats = [r for r in rows if isinstance(r, dict) and r.get("CHAT_ID")] if isinstance(rows, list) else []
            if chats:
                out[c] = chats[0]
        return out

    def _stop(self, why: str) -> None:
        self.why_not = why
        log.warning("bitrix messenger touches not sent: the webhook (app) lacks the imopenlines scope; "
                    "they go to their next channel")

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        return self.notes.find(keys)
