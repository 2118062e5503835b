"""Open-line chats (WhatsApp, Telegram... connected to the portal) bound to CRM cards, and the message a
user sends into one from the card: `imopenlines.crm.chat.get`, `imopenlines.crm.message.add` (scope
`imopenlines`, checked by the dispatcher like every scope).

Doc: api-reference/imopenlines/openlines/chats/imopenlines-crm-chat-get.md (CRM_ENTITY_TYPE lead / deal /
company / contact, CRM_ENTITY, ACTIVE_ONLY default Y; `[{CHAT_ID, CONNECTOR_ID, CONNECTOR_TITLE}]`, `[]`
for a card without chats; 400 ERROR_ARGUMENT "Argument CRM_ENTITY is null or empty"),
api-reference/imopenlines/openlines/messages/imopenlines-crm-message-add.md (CRM_ENTITY_TYPE, CRM_ENTITY,
USER_ID - a member of the chat -, CHAT_ID, MESSAGE, all required; the new message's id; errors
CHAT_NOT_IN_CRM, CANCELED, ERROR_ARGUMENT "Argument MESSAGE is null or empty").

A chat message keeps no field of the sender's, so the outbox's `key` is read from the CRM-side marker the
sender left on the card's timeline (a comment with `rs:<key>`) before the message, never from its text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .protocol import ApiError, as_int, ci_get
from .registry import method
from .store import Portal

ENTITY_TABLES = {"contact": "contacts", "company": "companies", "deal": "deals", "lead": "leads"}
CONNECTORS = (("whatsappbytwilio", "WhatsApp"), ("telegrambot", "Telegram"))
MARKER = re.compile(r"rs:(v\d+:\S+)")


@dataclass
class Chat:
    id: int
    entity_type: str
    entity_id: int
    connector_id: str
    connector_title: str
    address: str  # the customer's number or account in the messenger
    users: set[int] = field(default_factory=set)  # the line's operators who may write into it
    active: bool = True


def seed_chats(portal: Portal, seed: int, share: float) -> None:
    """About `share` of the customers' cards get an open-line chat, the same ones for the same seed.

    Its operators are the card's manager and the administrator who connected the line."""
    rng = random.Random(f"openlines-{seed}")
    chats: dict[tuple[str, int], list[Chat]] = {}
    portal.chats = chats
    if share <= 0:
        return  # no open lines connected: nothing to walk through (big benchmark portals)
    for kind, table in (("contact", portal.contacts), ("company", portal.companies)):
        for row_id in sorted(table.rows):
            row = table.rows[row_id]
            phones = [v for _i, _t, v in (row.multi or {}).get("PHONE", [])]
            if rng.random() >= share:
                continue
            connector, title = CONNECTORS[0] if phones else CONNECTORS[1]
            chat_id = 1001 + len(chats)
            chats[(kind, row_id)] = [Chat(chat_id, kind, row_id, connector, title,
                                          phones[0] if phones else f"tg:{kind}{row_id}",
                                          {int(row.assigned or 1), portal.webhook_user})]


def _entity(params: dict) -> tuple[str, int]:
    kind = str(ci_get(params, "CRM_ENTITY_TYPE") or "").strip().lower()
    if not kind:
        raise ApiError(400, "ERROR_ARGUMENT", "Argument CRM_ENTITY_TYPE is null or empty")
    raw = ci_get(params, "CRM_ENTITY")
    if raw in (None, ""):
        raise ApiError(400, "ERROR_ARGUMENT", "Argument CRM_ENTITY is null or empty")
    entity_id = as_int(raw)
    if entity_id is None:
        raise ApiError(400, "ERROR_ARGUMENT", "The value of an argument CRM_ENTITY has an invalid type")
    return kind, entity_id


@method("imopenlines.crm.chat.get")
def chat_get(portal: Portal, params: dict) -> list:
    kind, entity_id = _entity(params)
    active_only = str(ci_get(params, "ACTIVE_ONLY") or "Y").upper() != "N"
    return [{"CHAT_ID": str(c.id), "CONNECTOR_ID": c.connector_id, "CONNECTOR_TITLE": c.connector_title}
            for c in portal.chats.get((kind, entity_id), []) if c.active or not active_only]


@method("imopenlines.crm.message.add")
def message_add(portal: Portal, params: dict) -> int:
    kind, entity_id = _entity(params)
    for name in ("USER_ID", "CHAT_ID", "MESSAGE"):
        if not str(ci_get(params, name) or "").strip():
            raise ApiError(400, "ERROR_ARGUMENT", f"Argument {name} is null or empty")
    chat_id, user_id = as_int(ci_get(params, "CHAT_ID")), as_int(ci_get(params, "USER_ID"))
    chat = next((c for c in portal.chats.get((kind, entity_id), []) if c.id == chat_id), None)
    if chat is None:
        raise ApiError(400, "CHAT_NOT_IN_CRM", "Chat does not belong to the CRM entity being checked")
    if user_id not in chat.users:
        raise ApiError(400, "CANCELED", "Вы не можете отправлять сообщения в указанный чат")
    portal.message_seq += 1
    outbox = portal.outbox
    if outbox is not None:
        outbox.add(channel="messenger", to=chat.address, contact_id=entity_id, subject="",
                   text=str(ci_get(params, "MESSAGE")), marker=claim_marker(portal, kind, entity_id))
    return portal.message_seq


def claim_marker(portal: Portal, kind: str, entity_id: int) -> str:
    """The newest `rs:<key>` on the card's timeline that no earlier outgoing message was keyed by ("" if none)."""
    rows = [c for c in portal.comments.rows.values() if c.entity_id == entity_id and c.entity_type == kind]
    for row in sorted(rows, key=lambda r: r.id, reverse=True):
        for key in MARKER.findall(row.comment):
            if key not in portal.claimed_markers:
                portal.claimed_markers.add(key)
                return f"rs:{key}"
    return ""
