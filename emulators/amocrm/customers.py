"""Customers mode ("Покупатели"): customers linked to contacts, their purchases kept as transactions, their
next purchase date, and bonus points.

Doc: amocrm.ru/developers/content/crm_platform/customers-api -
`GET /api/v4/customers` (page, limit <= 250, `filter[id]`, `with=contacts`): `next_date`, `next_price`,
`periodicity`, `ltv`, `purchases_count`, `average_check`, `_embedded.contacts[] {id, is_main}`;
`PATCH /api/v4/customers` (array with `id`) edits them; `GET /api/v4/customers/transactions` and
`/api/v4/customers/{id}/transactions` list transactions (`price`, `comment`, `completed_at`, `customer_id`,
`created_at`; 250 a page at most), `POST /api/v4/customers/{id}/transactions` adds them (they are never
edited, only added or deleted); `POST /api/v4/customers/{id}/bonus_points` with `earn` or `redeem`
answers the balance `{bonus_points}`. With Customers off (`customers_mode` disabled) the lists are empty.

Seeded (modes `periodicity`, `segments`): every person who bought on two or more occasions has a
customer; the first won deal stays a lead, the later ones are that customer's transactions (under the
deal's id) and leave the leads, as a shop that records repeat purchases on customers would.
"""

from __future__ import annotations

from emulators.amocrm.context import Ctx, request_id
from emulators.amocrm.query import as_ints, as_range, in_range
from emulators.amocrm.render import ApiError, Reply, page_reply, self_link, validation_error
from emulators.amocrm.store import WON_STATUS_ID, AccountStore

ON_MODES = ("periodicity", "segments", "dynamic")
CUSTOMER_BASE_ID = 800_000


def seed_customers(store: AccountStore) -> None:
    if store.customers_mode not in ON_MODES:
        return
    won: dict[int, list[dict]] = {}
    for lead in store.leads.values():
        main = next((c for c, is_main in lead.get("contacts") or [] if is_main), None)
        if lead["status_id"] == WON_STATUS_ID and main in store.contacts and not lead.get("companies"):
            won.setdefault(main, []).append(lead)
    for cid, leads in sorted(won.items()):
        if len(leads) < 2:
            continue
        leads.sort(key=lambda x: (x["closed_at"] or 0, x["id"]))
        contact = store.contacts[cid]
        customer_id = CUSTOMER_BASE_ID + cid
        customer = {"id": customer_id, "name": contact["name"], "next_price": 0, "next_date": None,
                    "responsible_user_id": contact["responsible_user_id"], "status_id": 1, "periodicity": 0,
                    "created_by": 0, "updated_by": 0, "created_at": leads[1]["closed_at"],
                    "updated_at": leads[-1]["closed_at"], "closest_task_at": None, "is_deleted": False,
                    "custom_fields_values": None, "ltv": 0, "purchases_count": 0, "average_check": 0,
                    "account_id": store.account_id, "contacts": [cid], "bonus_points": 0}
        store.customers[customer_id] = customer
        for lead in leads[1:]:
            store.leads.pop(lead["id"])
            store.links.pop(lead["id"], None)
            store.transactions[lead["id"]] = {
                "id": lead["id"], "comment": lead["name"], "price": lead["price"], "completed_at": lead["closed_at"],
                "customer_id": customer_id, "created_by": 0, "updated_by": 0, "created_at": lead["closed_at"],
                "updated_at": lead["closed_at"], "is_deleted": False, "account_id": store.account_id}
        _totals(store, customer)
    store.reserve_ids("transaction", max([*store.transactions, *store.leads], default=0))


def _totals(store: AccountStore, customer: dict) -> None:
    prices = [t["price"] for t in store.transactions.values() if t["customer_id"] == customer["id"]]
    customer.update(ltv=sum(prices), purchases_count=len(prices),
                    average_check=int(sum(prices) / len(prices)) if prices else 0)


def _render_customer(ctx: Ctx, customer: dict, with_contacts: bool) -> dict:
    out = {k: v for k, v in customer.items() if k not in ("contacts", "bonus_points")}
    out["_links"] = self_link(ctx.base, f"/api/v4/customers/{customer['id']}")
    if with_contacts:
        out["_embedded"] = {"contacts": [{"id": c, "is_main": n == 0} for n, c in enumerate(customer["contacts"])],
                            "companies": []}
    return out


def list_customers(ctx: Ctx) -> Reply:
    try:
        ids = as_ints(ctx.filters.get("id"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    withs = str(ctx.query.get("with") or "").split(",")
    with ctx.store.lock:
        rows = [c for cid, c in sorted(ctx.store.customers.items()) if ids is None or cid in ids]
        return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "customers", rows,
                          lambda c: _render_customer(ctx, c, "contacts" in withs))


def update_customers(ctx: Ctx) -> Reply:
    store, items = ctx.store, ctx.items()
    with store.lock:
        missing = [(request_id(it, i), "NotFound", "id", "Entity not found") for i, it in enumerate(items)
                   if it.get("id") not in store.customers]
        bad = [(request_id(it, i), "InvalidType", "next_date", "This value should be of type int.")
               for i, it in enumerate(items) if "next_date" in it and not isinstance(it["next_date"], int | None)]
        if missing or bad:
            raise validation_error(missing + bad)
        out = []
        for i, item in enumerate(items):
            customer = store.customers[item["id"]]
            for name in ("next_date", "next_price", "name", "periodicity", "responsible_user_id"):
                if name in item:
                    customer[name] = item[name]
            customer["updated_at"] = max(store.now(), customer["updated_at"] + 1)
            out.append({"id": customer["id"], "updated_at": customer["updated_at"], "request_id": request_id(item, i),
                        "_links": self_link(ctx.base, f"/api/v4/customers/{customer['id']}")})
        store.touch("customers")
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"customers": out}})


def list_transactions(ctx: Ctx) -> Reply:
    try:
        ids = as_ints(ctx.filters.get("id"))
        created = as_range(ctx.filters.get("created_at"))
    except ValueError:
        raise ApiError(400, "Invalid filter value") from None
    owner = int(ctx.params["id"]) if "id" in ctx.params else None
    with ctx.store.lock:
        if owner is not None and owner not in ctx.store.customers:
            raise ApiError(404, "Customer not found")
        rows = [t for tid, t in sorted(ctx.store.transactions.items())
                if (ids is None or tid in ids) and (owner is None or t["customer_id"] == owner)
                and in_range(t["created_at"], created)]
        return page_reply(ctx.base, ctx.path, ctx.pairs, ctx.query, "transactions", rows, lambda t: {
            **t, "_links": self_link(ctx.base, f"/api/v4/customers/{t['customer_id']}/transactions/{t['id']}"),
            "_embedded": {"customer": {"id": t["customer_id"]}}})


def add_transactions(ctx: Ctx) -> Reply:
    store, items, owner = ctx.store, ctx.items(), int(ctx.params["id"])
    with store.lock:
        customer = store.customers.get(owner)
        if customer is None:
            raise ApiError(404, "Customer not found")
        bad = [(request_id(it, i), "InvalidType", "price", "This value should be of type int.")
               for i, it in enumerate(items) if not isinstance(it.get("price"), int)]
        if bad:
            raise validation_error(bad)
        out = []
        for i, item in enumerate(items):
            now = store.now()
            tid = store.new_id("transaction")
            store.transactions[tid] = {"id": tid, "comment": str(item.get("comment") or ""), "price": item["price"],
                                       "completed_at": int(item.get("completed_at") or now), "customer_id": owner,
                                       "created_by": store.current_user_id, "updated_by": store.current_user_id,
                                       "created_at": now, "updated_at": now, "is_deleted": False,
                                       "account_id": store.account_id}
            out.append({"id": tid, "customer_id": owner, "request_id": request_id(item, i)})
        _totals(store, customer)
        customer["updated_at"] = max(store.now(), customer["updated_at"] + 1)
    return Reply(200, {"_links": self_link(ctx.base, ctx.path), "_embedded": {"transactions": out}})


def bonus_points(ctx: Ctx) -> Reply:
    store, owner = ctx.store, int(ctx.params["id"])
    body = ctx.body if isinstance(ctx.body, dict) else {}
    earn, redeem = body.get("earn"), body.get("redeem")
    if (earn is None) == (redeem is None) or not isinstance(earn if earn is not None else redeem, int) \
            or (earn if earn is not None else redeem) <= 0:
        raise validation_error([("0", "InvalidType", "earn", "Send one of earn or redeem, a positive integer.")])
    with store.lock:
        customer = store.customers.get(owner)
        if customer is None:
            raise ApiError(404, "Customer not found")
        if redeem is not None and redeem > customer["bonus_points"]:
            raise validation_error([("0", "TooHigh", "redeem", "Not enough bonus points.")])
        customer["bonus_points"] += earn if earn is not None else -redeem
        return Reply(200, {"bonus_points": customer["bonus_points"]})


ROUTES = [
    ("GET", r"/api/v4/customers", list_customers),
    ("PATCH", r"/api/v4/customers", update_customers),
    ("GET", r"/api/v4/customers/transactions", list_transactions),
    ("GET", r"/api/v4/customers/(?P<id>\d+)/transactions", list_transactions),
    ("POST", r"/api/v4/customers/(?P<id>\d+)/transactions", add_transactions),
    ("POST", r"/api/v4/customers/(?P<id>\d+)/bonus_points", bonus_points),
]
