"""Customers' messenger chats and the one generic Salesbot that sends our text into them.

Doc: developers.kommo.com/reference/get-contact-chats - `GET /api/v4/contacts/chats` lists the
chat-to-contact links `{id, chat_id, contact_id}` (query `contact_id`, `chat_id`; one or an array).
A share of the seeded contacts (those with a phone, picked by the seed) has a chat.

The generic bot (`MESSAGE_BOT_ID`, built once by the admin as the README says) does, on a contact:
send the value of the contact's field `RS_MESSAGE` into the contact's chat, then copy the field
`RS_MESSAGE_KEY` (the plugin's `rs:<key>`, never sent) into `RS_MESSAGE_SENT`. A contact without a chat
or with an empty RS_MESSAGE gets nothing and keeps RS_MESSAGE_SENT as it was. What is sent goes to the
emulator's outbox, its key read from RS_MESSAGE_KEY, not from the text.
"""

from __future__ import annotations

import random

from emulators.amocrm.context import Ctx
from emulators.amocrm.query import as_ints
from emulators.amocrm.render import ApiError, Reply
from emulators.amocrm.store import AccountStore

MESSAGE_BOT_ID = 7010  # "rs_message": the generic bot of the README
TEXT_CODE, KEY_CODE, SENT_CODE = "RS_MESSAGE", "RS_MESSAGE_KEY", "RS_MESSAGE_SENT"
CHANNELS = ("whatsapp", "telegram")


def seed_chats(store: AccountStore, seed: int, share: float) -> None:
    """Chats for about `share` of the contacts that have a phone (deterministic per seed)."""
    rng = random.Random(seed * 7919 + 16)
    for cid in sorted(store.contacts):
        phones = [cf for cf in store.contacts[cid].get("custom_fields_values") or [] if cf.get("field_code") == "PHONE"]
        if phones and rng.random() < share:
            store.chats[cid] = f"{CHANNELS[cid % 2]}-{cid:06d}-{rng.randrange(16 ** 8):08x}"


def contact_chats(ctx: Ctx) -> Reply:
    try:
        contacts = as_ints(ctx.query.get("contact_id"))
    except ValueError:
        raise ApiError(400, "Invalid contact_id") from None
    chat_ids = ctx.query.get("chat_id")
    wanted_chats = set(chat_ids if isinstance(chat_ids, list) else [chat_ids]) if chat_ids else None
    if contacts is None and wanted_chats is None:
        raise ApiError(400, "contact_id or chat_id is required")
    with ctx.store.lock:
        rows = [{"id": cid, "chat_id": chat, "contact_id": cid} for cid, chat in sorted(ctx.store.chats.items())
                if (contacts is None or cid in contacts) and (wanted_chats is None or chat in wanted_chats)]
    if not rows:
        return Reply(204)
    return Reply(200, {"_total_items": len(rows), "_embedded": {"chats": rows}}, "application/json")


def _value(contact: dict, code: str) -> str:
    for cf in contact.get("custom_fields_values") or []:
        if cf.get("field_code") == code and cf.get("values"):
            return str(cf["values"][0].get("value") or "")
    return ""


def send_message(store: AccountStore, contact_id: int) -> None:
    """What the generic bot does on one contact (called under the store's lock)."""
    contact = store.contacts.get(contact_id)
    chat = store.chats.get(contact_id)
    text = _value(contact, TEXT_CODE) if contact else ""
    if contact is None or not chat or not text.strip():
        return
    key = _value(contact, KEY_CODE)
    if store.outbox is not None:
        store.outbox.add(channel="messenger", to=chat, contact_id=contact_id, subject="", text=text, marker=key)
    field = store.field_by_code("contacts", SENT_CODE)
    if field is not None:
        kept = [cf for cf in contact.get("custom_fields_values") or [] if cf.get("field_id") != field["id"]]
        kept.append({"field_id": field["id"], "field_name": field["name"], "field_code": SENT_CODE,
                     "field_type": field["type"], "values": [{"value": key}]})
        contact["custom_fields_values"] = kept
        contact["updated_at"] = max(store.now(), int(contact.get("updated_at") or 0) + 1)
        store.touch("contacts")


ROUTES = [("GET", r"/api/v4/contacts/chats", contact_chats)]
