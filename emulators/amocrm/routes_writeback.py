"""What write-back needs beyond tasks: Salesbot starts, note edits and custom field deletion.

Doc: amocrm.ru/developers/content/crm_platform/salesbot-api (also developers.kommo.com/reference/launch-salesbot):
`POST /api/v2/salesbot/run` takes an array of `{bot_id, entity_id, entity_type}` (1 contact, 2 lead),
at most 100 a request, and answers 202 Accepted: the bots start asynchronously.
developers.kommo.com/reference/notes - `PATCH /api/v4/{entity}/notes` edits notes (array with `id`).
amocrm.ru/developers/content/crm_platform/custom-fields - `DELETE /api/v4/{entity}/custom_fields/{id}`, 204.

Salesbots are built in the account's UI; the emulated account has a few (`SALESBOTS`), and every
start is kept in `salesbot_runs(store)` (counted as `salesbot_run` in /_emulator/stats).
"""

from __future__ import annotations

from emulators.amocrm.chats import MESSAGE_BOT_ID, send_message
from emulators.amocrm.context import Ctx, request_id
from emulators.amocrm.render import ApiError, Reply, self_link, validation_error
from emulators.amocrm.store import AccountStore

SALESBOTS = {7001: "rs_feedback", 7002: "rs_content", 7003: "rs_winback_email", 7004: "rs_winback_sms",
             7005: "rs_tier_welcome", 7006: "rs_tier_near", 7007: "rs_birthday", 7008: "rs_holiday",
             MESSAGE_BOT_ID: "rs_message"}
MAX_RUNS = 100  # Doc: developers.kommo.com/reference/launch-salesbot - no more than 100 bots at a time
ENTITY_TYPES = {1: "contacts", 2: "leads"}


def salesbot_runs(store: AccountStore) -> list[dict]:
    runs = getattr(store, "salesbot_runs", None)
    if runs is None:
        runs = store.salesbot_runs = []
    return runs


def run_salesbots(ctx: Ctx) -> Reply:
    store, items = ctx.store, ctx.items(max_items=MAX_RUNS)
    with store.lock:
        failures = []
        for i, item in enumerate(items):
            rid = request_id(item, i)
            bot, entity, kind = item.get("bot_id"), item.get("entity_id"), item.get("entity_type")
            if not isinstance(bot, int) or bot <= 0:
                failures.append((rid, "TooLow", "bot_id", "This value should be positive."))
            elif bot not in SALESBOTS:
                raise ApiError(404, "Salesbot not found")
            if kind not in ENTITY_TYPES and str(kind) not in ("1", "2"):
                failures.append((rid, "NotSupportedChoice", "entity_type", "The value you selected is not a valid choice."))
            elif not isinstance(entity, int) or entity not in store.collection(ENTITY_TYPES[int(kind)]):
                failures.append((rid, "NotFound", "entity_id", "Entity not found"))
        if failures:
            raise validation_error(failures)  # nothing starts
        runs = salesbot_runs(store)
        for item in items:
            runs.append({"bot_id": item["bot_id"], "entity_id": item["entity_id"],
                         "entity_type": ENTITY_TYPES[int(item["entity_type"])], "started_at": store.now()})
            if item["bot_id"] == MESSAGE_BOT_ID and ENTITY_TYPES[int(item["entity_type"])] == "contacts":
                send_message(store, item["entity_id"])  # real bots start within seconds; here at once
    return Reply(202, b"", "text/html")


def update_notes(ctx: Ctx) -> Reply:
    entity, store, items = ctx.params["entity"], ctx.store, ctx.items()
    with store.lock:
        notes = store.notes[entity]
        missing = [(request_id(it, i), "NotFound", "id", "Entity not found") for i, it in enumerate(items)
                   if it.get("id") not in notes]
        if missing:
            raise validation_error(missing)
        out = []
        for i, item in enumerate(items):
            note = notes[item["id"]]
            if isinstance(item.get("params"), dict):
                note["params"] = {**note["params"], **item["params"]}
            note["updated_at"] = max(store.now(), note["updated_at"] + 1)
            note["updated_by"] = store.current_user_id
            out.append({"id": note["id"], "entity_id": note["entity_id"], "updated_at": note["updated_at"],
                        "request_id": request_id(item, i),
                        "_links": self_link(ctx.base, f"/api/v4/{entity}/{note['entity_id']}/notes/{note['id']}")})
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"notes": out}})


def delete_custom_field(ctx: Ctx) -> Reply:
    key = ctx.params.get("entity") or f"catalog:{ctx.params['cid']}"
    fid = int(ctx.params["id"])
    store = ctx.store
    with store.lock:
        fields = store.custom_fields.get(key, [])
        field = next((f for f in fields if f["id"] == fid), None)
        if field is None:
            raise ApiError(404, "Custom field not found")
        if not field.get("is_deletable", True):
            raise ApiError(400, "The field cannot be deleted")
        fields.remove(field)
        if ":" not in key:  # the values go with the field
            for obj in store.collection(key).values():
                kept = [cf for cf in obj.get("custom_fields_values") or [] if cf.get("field_id") != fid]
                obj["custom_fields_values"] = kept or None
    return Reply(204)


ROUTES = [
    ("POST", r"/api/v2/salesbot/run", run_salesbots),
    ("PATCH", r"/api/v4/(?P<entity>leads|contacts|companies)/notes", update_notes),
    ("DELETE", r"/api/v4/(?P<entity>leads|contacts|companies)/custom_fields/(?P<id>\d+)", delete_custom_field),
    ("DELETE", r"/api/v4/catalogs/(?P<cid>\d+)/custom_fields/(?P<id>\d+)", delete_custom_field),
]
