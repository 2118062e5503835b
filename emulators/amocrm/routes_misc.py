"""Account, users, catalogs and their elements, lead links, tasks, notes and webhook subscriptions.

Doc: amocrm.ru/developers/content/crm_platform/catalogs-api, kommo.com/developers/content/api_v4/
links-between-entities, developers.kommo.com/reference/tasks-list (+ add-tasks), /notes,
amocrm.ru/developers/content/crm_platform/webhooks-api.
"""

from __future__ import annotations

from emulators.amocrm.context import Ctx, request_id
from emulators.amocrm.query import as_ints, as_list, as_range, in_range
from emulators.amocrm.render import (
    ApiError,
    Reply,
    page_reply,
    self_link,
    total_reply,
    validation_error,
    with_set,
)

TASK_ENTITY_TYPES = ("leads", "contacts", "companies", "customers")
NOTE_TYPES = {"common", "call_in", "call_out", "service_message", "extended_service_message", "geolocation",
              "sms_in", "sms_out", "attachment"}


def account(ctx: Ctx) -> Reply:
    s, withs = ctx.store, with_set(ctx.query)
    body = {"id": s.account_id, "name": s.name, "subdomain": s.subdomain, "created_at": 1_600_000_000,
            "created_by": s.current_user_id, "updated_at": s.now(), "updated_by": s.current_user_id,
            "current_user_id": s.current_user_id, "country": "RU", "currency": s.currency, "currency_symbol": "₽",
            "customers_mode": s.customers_mode, "is_unsorted_on": True, "is_loss_reason_enabled": False,
            "is_helpbot_enabled": False, "is_technical_account": False, "contact_name_display_order": 1,
            "_links": self_link(ctx.base, "/api/v4/account"), "_embedded": {}}
    if "amojo_id" in withs:
        body["amojo_id"] = f"emulator-{s.account_id}"
    if "is_api_filter_enabled" in withs:  # Doc: amocrm.ru/developers/content/crm_platform/account-info (with=)
        body["is_api_filter_enabled"] = s.api_filter
    if "version" in withs:
        body["version"] = 11
    if "task_types" in withs:  # Doc: developers.kommo.com/reference/tasks-list - 1 follow-up, 2 meeting
        body["_embedded"]["task_types"] = [{"id": 1, "name": "Связаться", "color": None, "icon_id": None, "code": "FOLLOW_UP"},
                                           {"id": 2, "name": "Встреча", "color": None, "icon_id": None, "code": "MEETING"}]
    if "users_groups" in withs:
        body["_embedded"]["users_groups"] = [{"id": 0, "name": "Отдел продаж", "uuid": None}]
    if "datetime_settings" in withs:
        body["_embedded"]["datetime_settings"] = {
            "date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y", "short_time_pattern": "H:i",
            "date_format": "d.m.Y", "time_format": "H:i:s", "timezone": s.timezone, "timezone_offset": "+03:00"}
    return Reply(200, body)


def admin_only(ctx: Ctx) -> None:
    """Doc: developers.kommo.com/reference/users-list - "available for administrator users only", 403
    "Insufficient rights to call this method"; the webhooks API too (amocrm.ru/.../webhooks-api)."""
    if not ctx.store.is_admin():
        raise ApiError(403, "Insufficient rights to call this method")


def users(ctx: Ctx) -> Reply:
    admin_only(ctx)
    rows = list(ctx.store.users.values())
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "users", rows,
                      lambda u: {**u, "_links": self_link(ctx.base, f"/api/v4/users/{u['id']}")})


def user(ctx: Ctx) -> Reply:
    """Doc: developers.kommo.com/reference/users-list, "Getting user data by its ID" - GET /api/v4/users/{id},
    administrators only; `rights.is_admin` says whether that user is an account administrator."""
    admin_only(ctx)
    found = ctx.store.users.get(int(ctx.params["id"]))
    if found is None:
        raise ApiError(404, "User not found")
    return Reply(200, {**found, "_links": self_link(ctx.base, f"/api/v4/users/{found['id']}")})


# --- catalogs ---------------------------------------------------------------------------------


def catalogs(ctx: Ctx) -> Reply:
    rows = list(ctx.store.catalogs.values())
    if "id" in ctx.params:
        found = ctx.store.catalogs.get(int(ctx.params["id"]))
        if found is None:
            raise ApiError(404, "Catalog not found")
        return Reply(200, {**found, "_links": self_link(ctx.base, f"/api/v4/catalogs/{found['id']}")})
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "catalogs", rows,
                      lambda c: {**c, "_links": self_link(ctx.base, f"/api/v4/catalogs/{c['id']}")})


def elements(ctx: Ctx) -> Reply:
    cid = int(ctx.params["id"])
    if cid not in ctx.store.catalogs:
        raise ApiError(404, "Catalog not found")
    rows = list(ctx.store.elements.get(cid, {}).values())
    try:
        ids = as_ints(ctx.filters.get("id"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    if ids is not None:
        rows = [e for e in rows if e["id"] in ids]
    if ctx.query.get("query"):
        rows = [e for e in rows if str(ctx.query["query"]).casefold() in e["name"].casefold()]
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "elements", rows,
                      lambda e: {**e, "_links": self_link(ctx.base, f"/api/v4/catalogs/{cid}/elements/{e['id']}")})


# --- links --------------------------------------------------------------------------------------


def _link_view(store, lead_id: int) -> list[dict]:
    lead = store.leads[lead_id]
    out = [{"entity_id": lead_id, "entity_type": "leads", **link} for link in store.links.get(lead_id, [])]
    out += [{"entity_id": lead_id, "entity_type": "leads", "to_entity_id": c, "to_entity_type": "contacts",
             "metadata": {"main_contact": bool(main)}} for c, main in lead["contacts"]]
    out += [{"entity_id": lead_id, "entity_type": "leads", "to_entity_id": c, "to_entity_type": "companies",
             "metadata": None} for c in lead["companies"]]
    return out


def list_links(ctx: Ctx) -> Reply:
    f, store = ctx.filters, ctx.store
    try:
        lead_ids = [int(ctx.params["id"])] if "id" in ctx.params else sorted(as_ints(f.get("entity_id")) or [])
        to_ids = as_ints(f.get("to_entity_id"))
        to_catalog = as_ints(f.get("to_catalog_id"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    if not lead_ids:
        raise validation_error([("0", "NotBlank", "filter.entity_id", "This value should not be blank.")])
    to_type = f.get("to_entity_type")
    with store.lock:
        rows = [r for lead_id in lead_ids if lead_id in store.leads for r in _link_view(store, lead_id)
                if (not to_type or r["to_entity_type"] == to_type) and (to_ids is None or r["to_entity_id"] in to_ids)
                and (to_catalog is None or (r["metadata"] or {}).get("catalog_id") in to_catalog)]
    if not rows:
        return Reply(204)
    return total_reply(ctx.base, ctx.path, "links", rows)


def change_links(ctx: Ctx) -> Reply:
    store, unlink = ctx.store, ctx.path.endswith("unlink")
    items = ctx.items()
    with store.lock:
        failures, done = [], []
        for i, item in enumerate(items):
            lead_id = int(ctx.params["id"]) if "id" in ctx.params else item.get("entity_id")
            if lead_id not in store.leads:
                failures.append((request_id(item, i), "NotFound", "entity_id", "Entity not found"))
            elif item.get("to_entity_type") not in ("catalog_elements", "contacts", "companies"):
                failures.append((request_id(item, i), "NotSupportedChoice", "to_entity_type",
                                 "The value you selected is not a valid choice."))
            else:
                done.append((lead_id, item))
        if failures:
            raise validation_error(failures)
        for lead_id, item in done:
            lead, to_id, kind = store.leads[lead_id], int(item["to_entity_id"]), item["to_entity_type"]
            meta = dict(item.get("metadata") or {})
            if kind == "catalog_elements":
                rows = [r for r in store.links.get(lead_id, []) if r["to_entity_id"] != to_id]
                if not unlink:
                    rows.append({"to_entity_id": to_id, "to_entity_type": kind,
                                 "metadata": {"quantity": meta.get("quantity", 1), "catalog_id": meta.get("catalog_id")}})
                store.links[lead_id] = rows
            elif kind == "contacts":
                lead["contacts"] = [c for c in lead["contacts"] if c[0] != to_id]
                if not unlink:
                    lead["contacts"].append([to_id, bool(meta.get("main_contact")) or not lead["contacts"]])
            else:
                lead["companies"] = [] if unlink else [to_id]
            lead["updated_at"] = max(store.now(), lead["updated_at"] + 1)
        store.touch("leads")
    rows = [{"entity_id": lead_id, "entity_type": "leads", "to_entity_id": item["to_entity_id"],
             "to_entity_type": item["to_entity_type"], "metadata": item.get("metadata")} for lead_id, item in done]
    if unlink:
        return Reply(204)
    return total_reply(ctx.base, ctx.path, "links", rows)


# --- tasks ---------------------------------------------------------------------------------------


def _render_task(ctx: Ctx, t: dict) -> dict:
    return {**t, "_links": self_link(ctx.base, f"/api/v4/tasks/{t['id']}")}


def list_tasks(ctx: Ctx) -> Reply:
    f, store = ctx.filters, ctx.store
    if "id" in ctx.params:
        task = store.tasks.get(int(ctx.params["id"]))
        return Reply(204) if task is None else Reply(200, _render_task(ctx, task))
    try:
        ids, users = as_ints(f.get("id")), as_ints(f.get("responsible_user_id"))
        # Doc: amocrm-api-php TasksFilter - `task_type_id`, and the older `task_type`
        types = as_ints(f.get("task_type_id") if f.get("task_type_id") is not None else f.get("task_type"))
        entity_ids = as_ints(f.get("entity_id"))
        updated = as_range(f.get("updated_at"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    entity_types = set(as_list(f.get("entity_type"))) or None
    done = f.get("is_completed")
    with store.lock:
        rows = [t for t in store.tasks.values()
                if (ids is None or t["id"] in ids) and (users is None or t["responsible_user_id"] in users)
                and (types is None or t["task_type_id"] in types) and (entity_types is None or t["entity_type"] in entity_types)
                and (entity_ids is None or t["entity_id"] in entity_ids) and in_range(t["updated_at"], updated)
                and (done in (None, "") or t["is_completed"] == (str(done) in ("1", "true")))]
    order = ctx.query.get("order")
    if isinstance(order, dict) and order:
        field, direction = next(iter(order.items()))
        if field not in ("created_at", "complete_till", "id"):
            raise ApiError(400, f"Unsupported order: {field}")
        rows.sort(key=lambda t: (t[field], t["id"]), reverse=str(direction).lower() == "desc")
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "tasks", rows, lambda t: _render_task(ctx, t))


def add_tasks(ctx: Ctx) -> Reply:
    store, items = ctx.store, ctx.items()
    with store.lock:
        failures = []
        for i, item in enumerate(items):
            rid = request_id(item, i)
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                failures.append((rid, "NotBlank", "text", "This value should not be blank."))
            if not isinstance(item.get("complete_till"), int):
                failures.append((rid, "InvalidType", "complete_till", "This value should be of type int."))
            if item.get("entity_id") is not None:
                kind = item.get("entity_type")
                if kind not in TASK_ENTITY_TYPES:
                    failures.append((rid, "NotSupportedChoice", "entity_type", "The value you selected is not a valid choice."))
                elif kind != "customers" and item["entity_id"] not in store.collection(kind):
                    failures.append((rid, "NotFound", "entity_id", "Entity not found"))
            if item.get("responsible_user_id") is not None and item["responsible_user_id"] not in store.users:
                failures.append((rid, "NotSupportedChoice", "responsible_user_id", "The value you selected is not a valid choice."))
        if failures:
            raise validation_error(failures)
        out = []
        for i, item in enumerate(items):
            now = store.now()
            task = {"id": store.new_id("task"), "created_by": store.current_user_id, "updated_by": store.current_user_id,
                    "created_at": item.get("created_at") or now, "updated_at": item.get("updated_at") or now,
                    "responsible_user_id": item.get("responsible_user_id") or store.current_user_id, "group_id": 0,
                    "entity_id": item.get("entity_id"), "entity_type": item.get("entity_type") if item.get("entity_id") else None,
                    "is_completed": bool(item.get("is_completed", False)), "task_type_id": item.get("task_type_id") or 1,
                    "text": item["text"], "duration": item.get("duration") or 0, "complete_till": item["complete_till"],
                    "result": (item.get("result") or []), "account_id": store.account_id}
            store.tasks[task["id"]] = task
            store.emit("task", "add", task)
            out.append({"id": task["id"], "request_id": request_id(item, i), "_links": self_link(ctx.base, f"/api/v4/tasks/{task['id']}")})
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"tasks": out}})


def update_tasks(ctx: Ctx) -> Reply:
    store = ctx.store
    single = "id" in ctx.params
    items = [dict(ctx.body, id=int(ctx.params["id"]))] if single and isinstance(ctx.body, dict) else ctx.items()
    with store.lock:
        missing = [(request_id(it, i), "NotFound", "id", "Entity not found") for i, it in enumerate(items)
                   if it.get("id") not in store.tasks]
        if missing:
            raise validation_error(missing)
        out = []
        for i, item in enumerate(items):
            task = store.tasks[item["id"]]
            for key in ("text", "complete_till", "is_completed", "responsible_user_id", "task_type_id", "duration", "result"):
                if key in item:
                    task[key] = item[key]
            task["updated_at"] = max(store.now(), task["updated_at"] + 1)
            store.emit("task", "update", task)
            out.append({"id": task["id"], "updated_at": task["updated_at"], "request_id": request_id(item, i),
                        "_links": self_link(ctx.base, f"/api/v4/tasks/{task['id']}")})
    if single:
        return Reply(200, out[0])
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"tasks": out}})


# --- notes ---------------------------------------------------------------------------------------


def list_notes(ctx: Ctx) -> Reply:
    entity, f = ctx.params["entity"], ctx.filters
    try:
        ids = as_ints(f.get("id"))
        owners = {int(ctx.params["eid"])} if "eid" in ctx.params else as_ints(f.get("entity_id"))
        updated = as_range(f.get("updated_at"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    types = set(as_list(f.get("note_type"))) or None
    rows = [n for n in ctx.store.notes[entity].values()
            if (ids is None or n["id"] in ids) and (owners is None or n["entity_id"] in owners)
            and (types is None or n["note_type"] in types) and in_range(n["updated_at"], updated)]
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "notes", rows,
                      lambda n: {**n, "_links": self_link(ctx.base, f"/api/v4/{entity}/{n['entity_id']}/notes/{n['id']}")})


def add_notes(ctx: Ctx) -> Reply:
    entity, store, items = ctx.params["entity"], ctx.store, ctx.items()
    with store.lock:
        failures = []
        for i, item in enumerate(items):
            owner = int(ctx.params["eid"]) if "eid" in ctx.params else item.get("entity_id")
            if owner not in store.collection(entity):
                failures.append((request_id(item, i), "NotFound", "entity_id", "Entity not found"))
            if item.get("note_type") not in NOTE_TYPES:
                failures.append((request_id(item, i), "NotSupportedChoice", "note_type", "The value you selected is not a valid choice."))
        if failures:
            raise validation_error(failures)
        out = []
        for i, item in enumerate(items):
            owner = int(ctx.params["eid"]) if "eid" in ctx.params else item["entity_id"]
            now = store.now()
            note = {"id": store.new_id("note"), "entity_id": owner, "created_by": store.current_user_id,
                    "updated_by": store.current_user_id, "created_at": now, "updated_at": now,
                    "responsible_user_id": store.current_user_id, "group_id": 0, "note_type": item["note_type"],
                    "params": item.get("params") or {}, "account_id": store.account_id}
            store.notes[entity][note["id"]] = note
            out.append({"id": note["id"], "entity_id": owner, "request_id": request_id(item, i),
                        "_links": self_link(ctx.base, f"/api/v4/{entity}/{owner}/notes/{note['id']}")})
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"notes": out}})


# --- webhooks ------------------------------------------------------------------------------------


def list_webhooks(ctx: Ctx) -> Reply:
    admin_only(ctx)
    dest = ctx.filters.get("destination")
    rows = [w for w in ctx.store.webhooks.values() if dest in (None, "") or w["destination"] == dest]
    return total_reply(ctx.base, ctx.path, "webhooks", rows)


def add_webhook(ctx: Ctx) -> Reply:
    admin_only(ctx)
    body, store = ctx.body, ctx.store
    if not isinstance(body, dict) or not str(body.get("destination", "")).startswith(("http://", "https://")):
        raise validation_error([("0", "Url", "destination", "This value is not a valid URL.")])
    settings = body.get("settings")
    if not isinstance(settings, list) or not settings:
        raise validation_error([("0", "NotBlank", "settings", "This value should not be blank.")])
    with store.lock:
        hook = next((w for w in store.webhooks.values() if w["destination"] == body["destination"]), None)
        if hook is None:
            if len(store.webhooks) >= 100:  # Doc: A-wh - at most 100 webhooks per account
                raise ApiError(400, "Webhooks limit exceeded")
            now = store.now()
            hook = {"id": store.new_id("webhook"), "destination": body["destination"], "created_at": now,
                    "updated_at": now, "account_id": store.account_id, "created_by": store.current_user_id,
                    "sort": body.get("sort", 1), "disabled": False, "settings": []}
            store.webhooks[hook["id"]] = hook
        hook.update(settings=[str(s) for s in settings], disabled=False, updated_at=store.now())
    return Reply(200, hook)


def delete_webhook(ctx: Ctx) -> Reply:
    admin_only(ctx)
    dest = ctx.body.get("destination") if isinstance(ctx.body, dict) else None
    with ctx.store.lock:
        found = [k for k, w in ctx.store.webhooks.items() if w["destination"] == dest]
        if not found:
            raise ApiError(404, "Webhook not found")
        for k in found:
            del ctx.store.webhooks[k]
    return Reply(204)


# --- events ----------------------------------------------------------------------------------------

EVENTS_PAGE = 100  # Doc: amocrm.ru/developers/content/crm_platform/events-and-notes - at most 100 a page


def events(ctx: Ctx) -> Reply:
    """`filter[type]` (one or many), `filter[entity]`, `filter[created_at]` (a timestamp = from it on, or
    [from]/[to]); newest first. Doc: amocrm.ru/developers/content/crm_platform/events-and-notes."""
    f = ctx.filters
    try:
        created = as_range(f.get("created_at"))
        ids = set(as_list(f.get("id"))) or None
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    types = set(as_list(f.get("type"))) or None
    entities = set(as_list(f.get("entity"))) or None
    with ctx.store.lock:
        rows = [e for e in ctx.store.events if (types is None or e["type"] in types)
                and (entities is None or e["entity_type"] in entities) and (ids is None or e["id"] in ids)
                and in_range(e["created_at"], created)]
    rows.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "events", rows,
                      lambda e: {**e, "_links": self_link(ctx.base, f"/api/v4/events/{e['id']}")},
                      max_limit=EVENTS_PAGE)


ROUTES = [
    ("GET", r"/api/v4/events", events),
    ("GET", r"/api/v4/account", account),
    ("GET", r"/api/v4/users", users),
    ("GET", r"/api/v4/users/(?P<id>\d+)", user),
    ("GET", r"/api/v4/catalogs", catalogs),
    ("GET", r"/api/v4/catalogs/(?P<id>\d+)", catalogs),
    ("GET", r"/api/v4/catalogs/(?P<id>\d+)/elements", elements),
    ("GET", r"/api/v4/leads/links", list_links),
    ("GET", r"/api/v4/leads/(?P<id>\d+)/links", list_links),
    ("POST", r"/api/v4/leads/link", change_links),
    ("POST", r"/api/v4/leads/unlink", change_links),
    ("POST", r"/api/v4/leads/(?P<id>\d+)/link", change_links),
    ("POST", r"/api/v4/leads/(?P<id>\d+)/unlink", change_links),
    ("GET", r"/api/v4/tasks", list_tasks),
    ("POST", r"/api/v4/tasks", add_tasks),
    ("PATCH", r"/api/v4/tasks", update_tasks),
    ("GET", r"/api/v4/tasks/(?P<id>\d+)", list_tasks),
    ("PATCH", r"/api/v4/tasks/(?P<id>\d+)", update_tasks),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)/notes", list_notes),
    ("POST", r"/api/v4/(?P<entity>leads|contacts|companies)/notes", add_notes),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)/(?P<eid>\d+)/notes", list_notes),
    ("POST", r"/api/v4/(?P<entity>leads|contacts|companies)/(?P<eid>\d+)/notes", add_notes),
    ("GET", r"/api/v4/webhooks", list_webhooks),
    ("POST", r"/api/v4/webhooks", add_webhook),
    ("DELETE", r"/api/v4/webhooks", delete_webhook),
]
