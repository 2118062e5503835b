"""Leads, contacts and companies: list (filters, order, pages), get, add, update; tags and custom fields.

Doc: amocrm.ru/developers/content/crm_platform/leads-api, kommo.com/developers/content/api_v4/contacts-api,
api-filtration (filters), developers.kommo.com/reference/update-tags (tags on an entity).
"""

from __future__ import annotations

from emulators.amocrm.context import Ctx, request_id
from emulators.amocrm.query import as_ints, as_list, as_range, in_range
from emulators.amocrm.render import (
    ApiError,
    Reply,
    page_reply,
    render_entity,
    self_link,
    validation_error,
    with_set,
)
from emulators.amocrm.store import AccountStore

SINGULAR = {"leads": "lead", "contacts": "contact", "companies": "company"}
ORDER_FIELDS = {"id", "created_at", "updated_at"}
RANGE_FILTERS = ("created_at", "updated_at", "closed_at", "closest_task_at", "price")
MULTI_FILTERS = ("responsible_user_id", "created_by", "updated_by", "pipeline_id")


# --- reading ------------------------------------------------------------------------------------


def _first_status_pair(statuses: object) -> dict | None:
    """The one stage filter the API applies: the first `filter[statuses][i]` pair.

    Doc: developers.kommo.com/reference/leads-list - "Due to the service limitations, you can filter only
    one stage in one pipeline"; further pairs are not honoured.
    """
    if isinstance(statuses, dict):
        entries = [v for _, v in sorted(statuses.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0)]
    elif isinstance(statuses, list):
        entries = statuses
    else:
        return None
    return next((e for e in entries if isinstance(e, dict)), None)


def _matches_status(lead: dict, pair: dict | None) -> bool:
    if pair is None:
        return True
    pid, sid = pair.get("pipeline_id"), pair.get("status_id")
    return (pid in (None, "") or int(pid) == lead["pipeline_id"]) and (
        sid in (None, "") or int(sid) == lead["status_id"])


def _ordered_ids(store: AccountStore, entity: str, ctx: Ctx) -> list[int]:
    """Ids matching the filters in the requested order; cached per data version (big accounts).

    Doc: amocrm.ru/developers/content/crm_platform/filters-api - filtering of these lists is alpha, on for
    some accounts only (`/api/v4/account?with=is_api_filter_enabled`); where it is off the filter is ignored
    (the order is not), so a reader that trusts it reads the whole list.
    """
    f, order = (ctx.filters if store.api_filter else {}), ctx.query.get("order")
    key = (entity, repr(sorted(f.items(), key=str)), repr(order), str(ctx.query.get("query") or ""),
           "only_deleted" in with_set(ctx.query))
    version = store.versions.get(entity, 0)
    cached = store.cache.get(key)
    if cached and cached[0] == version:
        return cached[1]
    try:
        ids, ranges = as_ints(f.get("id")), {k: as_range(f.get(k)) for k in RANGE_FILTERS if f.get(k) is not None}
        multi = {k: as_ints(f.get(k)) for k in MULTI_FILTERS if f.get(k) is not None}
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    names = set(as_list(f.get("name"))) if f.get("name") is not None else None
    text = str(ctx.query.get("query") or "").casefold()
    status_pair = _first_status_pair(f.get("statuses")) if entity == "leads" else None
    deleted = entity == "leads" and "only_deleted" in with_set(ctx.query)
    rows = []
    for obj in (store.deleted_leads if deleted else store.collection(entity)).values():
        if ids is not None and obj["id"] not in ids:
            continue
        if any(not in_range(obj.get(k), bounds) for k, bounds in ranges.items()):
            continue
        if any(obj.get(k) not in values for k, values in multi.items() if values is not None):
            continue
        if names is not None and obj.get("name") not in names:
            continue
        if text and text not in str(obj.get("name", "")).casefold():
            continue
        if status_pair is not None and not _matches_status(obj, status_pair):
            continue
        rows.append(obj)
    field, direction = "id", "asc"
    if isinstance(order, dict) and order:
        field, direction = next(iter(order.items()))
        if field not in ORDER_FIELDS or str(direction).lower() not in ("asc", "desc"):
            raise ApiError(400, f"Unsupported order: {field}")
    rows.sort(key=lambda o: (o.get(field) or 0, o["id"]), reverse=str(direction).lower() == "desc")
    result = [o["id"] for o in rows]
    store.cache[key] = (version, result)
    return result


def list_entities(ctx: Ctx) -> Reply:
    entity = ctx.params["entity"]
    store = ctx.store
    with store.lock:
        ids = _ordered_ids(store, entity, ctx)
        coll, withs = store.collection(entity), with_set(ctx.query)
        if entity == "leads" and "only_deleted" in withs:
            # Doc: developers.kommo.com/reference/leads-list - deleted leads come as id, modification date
            # and is_deleted = true only
            bin_ = store.deleted_leads
            return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, entity, ids, lambda i: {
                "id": i, "updated_at": bin_[i]["updated_at"], "is_deleted": True,
                "_links": self_link(ctx.base, f"/api/v4/leads/{i}")})
        return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, entity, ids,
                          lambda i: render_entity(store, ctx.base, entity, coll[i], withs))


def get_entity(ctx: Ctx) -> Reply:
    entity, store = ctx.params["entity"], ctx.store
    with store.lock:
        obj = store.collection(entity).get(int(ctx.params["id"]))
        if obj is None:
            return Reply(204)  # Doc: amocrm-api-php - a missing entity answers 204 (NoContent)
        return Reply(200, render_entity(store, ctx.base, entity, obj, with_set(ctx.query)))


# --- writing ------------------------------------------------------------------------------------


def _custom_values(store: AccountStore, entity: str, values: object, rid: str, failures: list) -> list[dict] | None:
    if values is None:
        return None
    out = []
    for n, cf in enumerate(values if isinstance(values, list) else []):
        field = None
        if isinstance(cf, dict) and cf.get("field_id") is not None:
            field = store.field_by_id(entity, int(cf["field_id"]))
        elif isinstance(cf, dict) and cf.get("field_code"):
            field = store.field_by_code(entity, str(cf["field_code"]))
        if field is None:
            failures.append((rid, "NotSupportedChoice", f"custom_fields_values.{n}.field_id",
                             "The value you selected is not a valid choice."))
            continue
        items = []
        for v in cf.get("values") or []:
            if not isinstance(v, dict):
                continue
            item = {"value": v.get("value")}
            enum = next((e for e in field.get("enums") or [] if e["id"] == v.get("enum_id")
                         or e["value"] == v.get("enum_code")), None)
            if enum is not None:
                item["enum_id"] = enum["id"]
                if v.get("enum_code"):
                    item["enum_code"] = v["enum_code"]
            items.append(item)
        out.append({"field_id": field["id"], "field_name": field["name"], "field_code": field["code"],
                    "field_type": field["type"], "values": items})
    return out


def _merge_custom(old: list | None, new: list[dict] | None) -> list | None:
    if new is None:
        return old
    merged = {cf["field_id"]: cf for cf in old or []}
    for cf in new:
        if cf["values"]:
            merged[cf["field_id"]] = cf
        else:
            merged.pop(cf["field_id"], None)
    return list(merged.values()) or None


def _check_item(store: AccountStore, entity: str, item: dict, rid: str, failures: list) -> None:
    for key in ("price", "responsible_user_id", "status_id", "pipeline_id", "created_at", "updated_at",
                "closed_at"):
        if key in item and item[key] is not None and not isinstance(item[key], int):
            failures.append((rid, "InvalidType", key, "This value should be of type int."))
    if "name" in item and item["name"] is not None and not isinstance(item["name"], str):
        failures.append((rid, "InvalidType", "name", "This value should be of type string."))
    if entity == "leads" and isinstance(item.get("status_id"), int):
        pid = item.get("pipeline_id") or min(store.pipelines)
        if (pid, item["status_id"]) not in store.status_ids():
            failures.append((rid, "NotSupportedChoice", "status_id", "The value you selected is not a valid choice."))


def add_entities(ctx: Ctx) -> Reply:
    entity, store = ctx.params["entity"], ctx.store
    items = ctx.items()
    with store.lock:
        failures: list = []
        prepared = []
        for i, item in enumerate(items):
            rid = request_id(item, i)
            _check_item(store, entity, item, rid, failures)
            prepared.append((rid, item, _custom_values(store, entity, item.get("custom_fields_values"), rid, failures)))
        if failures:
            raise validation_error(failures)  # a refused batch writes nothing
        out = []
        for rid, item, custom in prepared:
            obj = _new_entity(store, entity, item, custom)
            store.emit(entity, "add", obj)
            out.append({"id": obj["id"], "request_id": rid, "_links": self_link(ctx.base, f"/api/v4/{entity}/{obj['id']}")})
        store.touch(entity)
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {entity: out}})


def _new_entity(store: AccountStore, entity: str, item: dict, custom: list | None) -> dict:
    now = store.now()
    obj = {"id": store.new_id(SINGULAR[entity]), "name": item.get("name") or "",
           "responsible_user_id": item.get("responsible_user_id") or store.current_user_id, "group_id": 0,
           "created_by": item.get("created_by", store.current_user_id),
           "updated_by": item.get("updated_by", store.current_user_id),
           "created_at": item.get("created_at") or now, "updated_at": item.get("updated_at") or now,
           "closest_task_at": None, "is_deleted": False, "custom_fields_values": custom or None,
           "account_id": store.account_id, "tags": []}
    embedded = item.get("_embedded") if isinstance(item.get("_embedded"), dict) else {}
    if entity == "leads":
        pid = item.get("pipeline_id") or min(store.pipelines)
        status = item.get("status_id") or store.pipelines[pid]["statuses"][1]["id"]
        obj.update(price=item.get("price") or 0, status_id=status, pipeline_id=pid, loss_reason_id=None,
                   closed_at=item.get("closed_at") or (now if status in (142, 143) else None), score=None,
                   labor_cost=None, source_id=None, is_price_modified_by_robot=False,
                   contacts=[[int(c["id"]), i == 0] for i, c in enumerate(embedded.get("contacts") or [])
                             if isinstance(c, dict) and c.get("id")],
                   companies=[int(c["id"]) for c in (embedded.get("companies") or [])[:1]
                              if isinstance(c, dict) and c.get("id")])
        store.leads[obj["id"]] = obj
    elif entity == "contacts":
        first, last = item.get("first_name") or "", item.get("last_name") or ""
        obj.update(name=obj["name"] or f"{first} {last}".strip(), first_name=first, last_name=last,
                   is_unsorted=False, companies=[int(c["id"]) for c in (embedded.get("companies") or [])[:1]
                                                 if isinstance(c, dict) and c.get("id")])
        store.contacts[obj["id"]] = obj
    else:
        obj["contacts"] = []
        store.companies[obj["id"]] = obj
    store.apply_tags(entity, obj, item)
    return obj


def update_entities(ctx: Ctx) -> Reply:
    entity, store = ctx.params["entity"], ctx.store
    single = "id" in ctx.params
    items = [dict(ctx.body, id=int(ctx.params["id"]))] if single and isinstance(ctx.body, dict) else ctx.items()
    with store.lock:
        coll = store.collection(entity)
        failures: list = []
        prepared = []
        for i, item in enumerate(items):
            rid = request_id(item, i)
            if not isinstance(item.get("id"), int) or item["id"] not in coll:
                failures.append((rid, "NotFound", "id", "Entity not found"))
                continue
            _check_item(store, entity, item, rid, failures)
            prepared.append((rid, item, _custom_values(store, entity, item.get("custom_fields_values"), rid, failures)))
        if failures:
            raise validation_error(failures)
        out = []
        for rid, item, custom in prepared:
            obj = coll[item["id"]]
            changes = {k: item[k] for k in ("name", "price", "status_id", "pipeline_id", "responsible_user_id",
                                            "first_name", "last_name", "loss_reason_id") if k in item and k in obj}
            if custom is not None:
                changes["custom_fields_values"] = _merge_custom(obj.get("custom_fields_values"), custom)
            before = dict(obj)
            store.apply_tags(entity, obj, item)
            if entity == "leads":
                store.set_lead_fields(obj, changes)
                if "closed_at" in item:
                    obj["closed_at"] = item["closed_at"]
            else:
                obj.update(changes)
                obj["updated_at"] = max(store.now(), int(obj.get("updated_at") or 0) + 1)
            if "updated_at" in item and isinstance(item["updated_at"], int):
                obj["updated_at"] = item["updated_at"]
            obj["updated_by"] = store.current_user_id
            store.touch(entity)
            store.emit(entity, "update", obj, before)
            out.append({"id": obj["id"], "updated_at": obj["updated_at"], "request_id": rid,
                        "_links": self_link(ctx.base, f"/api/v4/{entity}/{obj['id']}")})
    if single:
        return Reply(200, out[0])
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {entity: out}})


# --- pipelines, custom fields, tags -----------------------------------------------------------


def pipelines(ctx: Ctx) -> Reply:
    store, base = ctx.store, ctx.base
    wanted = int(ctx.params["id"]) if "id" in ctx.params else None
    out = []
    for p in store.pipelines.values():
        if wanted is not None and p["id"] != wanted:
            continue
        statuses = [{**s, "_links": self_link(base, f"/api/v4/leads/pipelines/{p['id']}/statuses/{s['id']}")}
                    for s in p["statuses"]]
        body = {k: v for k, v in p.items() if k != "statuses"}
        out.append({**body, "_links": self_link(base, f"/api/v4/leads/pipelines/{p['id']}"),
                    "_embedded": {"statuses": statuses}})
    if wanted is not None:
        if not out:
            raise ApiError(404, "Pipeline not found")
        if ctx.path.endswith("/statuses"):
            return Reply(200, {"_total_items": len(out[0]["_embedded"]["statuses"]),
                               "_links": self_link(base, ctx.path), "_embedded": out[0]["_embedded"]})
        return Reply(200, out[0])
    return Reply(200, {"_total_items": len(out), "_links": self_link(base, ctx.path), "_embedded": {"pipelines": out}})


def custom_fields(ctx: Ctx) -> Reply:
    key = ctx.params.get("entity") or f"catalog:{ctx.params['id']}"
    fields = ctx.store.custom_fields.get(key, [])
    limit = int(ctx.query.get("limit") or 50)
    # Doc: amocrm.ru/developers/content/crm_platform/custom-fields - `limit` up to 250, yet 50 fields a page
    query = dict(ctx.query, limit=str(limit if limit > 250 else min(limit, 50)))
    return page_reply(ctx.base, ctx.path, ctx.pairs, query, "custom_fields", fields,
                      lambda f: {**f, "account_id": ctx.store.account_id,
                                 "_links": self_link(ctx.base, f"{ctx.path}/{f['id']}")})


def add_custom_fields(ctx: Ctx) -> Reply:
    key = ctx.params.get("entity") or f"catalog:{ctx.params['id']}"
    store, out = ctx.store, []
    with store.lock:
        items = ctx.items()
        # Doc: amocrm.ru/developers/content/crm_platform/custom-fields - a field's `code` names it (writes may
        # use it instead of the id), so a code already taken, or given twice, is refused: 400, nothing added
        taken = {str(f.get("code")).casefold() for f in store.custom_fields.get(key, []) if f.get("code")}
        failures = []
        for i, item in enumerate(items):
            if not item.get("name") or not item.get("type"):
                failures.append((request_id(item, i), "NotBlank", "name", "This value should not be blank."))
            code = str(item.get("code") or "").casefold()
            if code and code in taken:
                failures.append((request_id(item, i), "NotUnique", "code", "This value is already used."))
            if code:
                taken.add(code)
        if failures:
            raise validation_error(failures)
        for i, item in enumerate(items):
            fid = 600_000 + store.new_id("field")
            field = {"id": fid, "name": item["name"], "type": item["type"], "code": item.get("code"),
                     "sort": item.get("sort", 500), "is_api_only": bool(item.get("is_api_only")),
                     "enums": [{"id": fid * 10 + n, "value": e.get("value"), "sort": e.get("sort", n)}
                               for n, e in enumerate(item.get("enums") or [])] or None,
                     "group_id": None, "required_statuses": [], "is_deletable": True, "is_predefined": False,
                     "entity_type": key if ":" not in key else "catalogs", "remind": None, "triggers": [],
                     "currency": None, "hidden_statuses": [], "chained_lists": None}
            store.custom_fields.setdefault(key, []).append(field)
            out.append({**field, "request_id": request_id(item, i), "_links": self_link(ctx.base, f"{ctx.path}/{fid}")})
    # Doc: developers.kommo.com/docs/http-codes - custom fields answer 201 Created
    return Reply(201, {"_total_items": len(out), "_links": self_link(ctx.base, ctx.path),
                       "_embedded": {"custom_fields": out}})


def list_tags(ctx: Ctx) -> Reply:
    entity, f = ctx.params["entity"], ctx.filters
    tags = list(ctx.store.tags[entity].values())
    if f.get("name") is not None:
        tags = [t for t in tags if t["name"] == str(f["name"])]
    if f.get("id") is not None:
        ids = as_ints(f.get("id")) or set()
        tags = [t for t in tags if t["id"] in ids]
    if ctx.query.get("query"):
        tags = [t for t in tags if str(ctx.query["query"]).casefold() in t["name"].casefold()]
    return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "tags", tags,
                      lambda t: {"id": t["id"], "name": t["name"], "color": t["color"] if entity == "leads" else None})


def add_tags(ctx: Ctx) -> Reply:
    entity, store, out = ctx.params["entity"], ctx.store, []
    with store.lock:
        for i, item in enumerate(ctx.items()):
            if not item.get("name"):
                raise validation_error([(request_id(item, i), "NotBlank", "name", "This value should not be blank.")])
            tag_id = store.tag_id(entity, str(item["name"]))
            if entity == "leads" and item.get("color"):
                store.tags[entity][tag_id]["color"] = item["color"]
            tag = store.tags[entity][tag_id]
            out.append({"id": tag_id, "name": tag["name"], "color": tag["color"], "request_id": request_id(item, i)})
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"tags": out}})


ROUTES = [
    ("GET", r"/api/v4/leads/pipelines", pipelines),
    ("GET", r"/api/v4/leads/pipelines/(?P<id>\d+)", pipelines),
    ("GET", r"/api/v4/leads/pipelines/(?P<id>\d+)/statuses", pipelines),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)/custom_fields", custom_fields),
    ("POST", r"/api/v4/(?P<entity>leads|contacts|companies)/custom_fields", add_custom_fields),
    ("GET", r"/api/v4/catalogs/(?P<id>\d+)/custom_fields", custom_fields),
    ("POST", r"/api/v4/catalogs/(?P<id>\d+)/custom_fields", add_custom_fields),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)/tags", list_tags),
    ("POST", r"/api/v4/(?P<entity>leads|contacts|companies)/tags", add_tags),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)", list_entities),
    ("POST", r"/api/v4/(?P<entity>leads|contacts|companies)", add_entities),
    ("PATCH", r"/api/v4/(?P<entity>leads|contacts|companies)", update_entities),
    ("GET", r"/api/v4/(?P<entity>leads|contacts|companies)/(?P<id>\d+)", get_entity),
    ("PATCH", r"/api/v4/(?P<entity>leads|contacts|companies)/(?P<id>\d+)", update_entities),
]
