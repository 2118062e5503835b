"""The shared synthetic shop -> an amoCRM account, with the shop's ids as the account's ids.

Contacts and companies carry the customer ids, leads the deal ids, catalog elements the product
ids, users the manager ids, so a Bitrix24 portal seeded with the same shop holds the same people
and purchases. Won deals are leads in status 142 with `closed_at`, lost ones in 143, open ones in
a working status. Line items are lead -> catalog element links with a quantity. The opt-out flag
is the contact (or company) checkbox field `NO_MARKETING` ("Не присылать рассылки"); a person's gender
is the account's own select field "Пол" (no code, id GENDER_FIELD_ID: amoCRM has no gender field, an admin
makes one), left empty when the shop does not know it; a foreign
currency is the lead's select field `CURRENCY`, since amoCRM keeps one currency per account and
an integer `price` (Doc: amocrm.ru/developers/content/crm_platform/leads-api); a feedback answer is the
lead's numeric field `RS_NPS`, the referral code a first purchase brought its text field `RS_REFERRAL_CODE`.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from emulators.amocrm.store import LOST_STATUS_ID, WON_STATUS_ID, AccountStore
from emulators.shop import DEAL_LOST, DEAL_WON, Shop, ShopCustomer, referral_code_of

PRODUCTS_CATALOG_ID = 5001
PIPELINE_BASE_ID = 7_000_001
WORK_STATUSES = ("Первичный контакт", "Переговоры", "Принимают решение")
# Doc: reference §3 - enum codes of the system multitext fields
PHONE_ENUMS = ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")
EMAIL_ENUMS = ("WORK", "PRIV", "OTHER")
GENDER_FIELD_ID = 200006  # the contacts' select "Пол" (AMOCRM_GENDER_FIELD=200006 points the plugin at it)
GENDER_OPTIONS = {"M": "Мужской", "F": "Женский"}


def _ts(moment: datetime, tz: ZoneInfo) -> int:
    return int(moment.replace(tzinfo=tz).timestamp())


def _day_ts(day: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, time()).replace(tzinfo=tz).timestamp())


def _field(fid: int, name: str, ftype: str, code: str | None, entity: str, *, sort: int, enums=None,
           predefined: bool = False) -> dict:
    return {"id": fid, "name": name, "type": ftype, "code": code, "sort": sort, "is_api_only": False,
            "enums": [{"id": fid * 10 + i, "value": v, "sort": (i + 1) * 2} for i, v in enumerate(enums)]
            if enums else None, "group_id": None, "required_statuses": [], "is_deletable": not predefined,
            "is_predefined": predefined, "entity_type": entity, "remind": None, "triggers": [],
            "currency": None, "hidden_statuses": [], "chained_lists": None}


def _value(field: dict, value, enum_code: str | None = None) -> dict:
    item: dict = {"value": value}
    if field.get("enums"):
        wanted = enum_code or value
        enum = next((e for e in field["enums"] if e["value"] == wanted), None)
        if enum is not None:
            item["enum_id"] = enum["id"]
            if enum_code:
                item["enum_code"] = enum_code
    return {"field_id": field["id"], "field_name": field["name"], "field_code": field["code"],
            "field_type": field["type"], "values": [item]}


def _multi(field: dict, values: tuple[str, ...], code: str) -> dict | None:
    if not values:
        return None
    out = _value(field, values[0], code)
    for v in values[1:]:
        out["values"].append({**out["values"][0], "value": v})
    return out


def seed_account(store: AccountStore, shop: Shop) -> None:
    tz = ZoneInfo(store.timezone)
    fields = _custom_fields(store)
    for m in shop.managers:
        store.users[m.id] = {"id": m.id, "name": f"{m.first_name} {m.last_name}", "email": m.email, "lang": "ru",
                             "rights": {"is_active": m.active, "is_free": False, "is_admin": m.id == 1,
                                        "leads": {"view": "A", "edit": "A", "add": "A", "delete": "A",
                                                  "export": "A"}}}
    store.current_user_id = shop.managers[0].id if shop.managers else 1
    for index, title in enumerate(shop.pipelines):
        pid = PIPELINE_BASE_ID + index
        statuses = [{"id": pid * 10, "name": "Неразобранное", "sort": 10, "is_editable": False, "type": 1,
                     "color": "#c1c1c1"}]
        statuses += [{"id": pid * 10 + i + 1, "name": name, "sort": 20 + 10 * i, "is_editable": True, "type": 0,
                      "color": "#99ccff"} for i, name in enumerate(WORK_STATUSES)]
        statuses += [{"id": WON_STATUS_ID, "name": "Успешно реализовано", "sort": 10000, "is_editable": False,
                      "type": 0, "color": "#CCFF66"},
                     {"id": LOST_STATUS_ID, "name": "Закрыто и не реализовано", "sort": 11000,
                      "is_editable": False, "type": 0, "color": "#D5D8DB"}]
        for s in statuses:
            s.update(pipeline_id=pid, account_id=store.account_id)
        store.pipelines[pid] = {"id": pid, "name": title, "sort": 1 + index, "is_main": index == 0,
                                "is_unsorted_on": True, "is_archive": False, "account_id": store.account_id,
                                "statuses": statuses}
    store.catalogs[PRODUCTS_CATALOG_ID] = {
        "id": PRODUCTS_CATALOG_ID, "name": "Товары", "created_by": 1, "updated_by": 1, "sort": 10,
        "type": "products", "can_add_elements": True, "can_show_in_cards": True, "can_link_multiple": True,
        "can_be_deleted": False, "sdk_widget_code": None, "account_id": store.account_id,
        "created_at": _day_ts(shop.history_start, tz), "updated_at": _day_ts(shop.history_start, tz)}
    store.elements[PRODUCTS_CATALOG_ID] = {}
    cat = fields[f"catalog:{PRODUCTS_CATALOG_ID}"]
    start = _day_ts(shop.history_start, tz)
    for p in shop.products:
        values = [_value(cat["SKU"], f"SKU-{p.id:05d}"), _value(cat["PRICE"], p.price),
                  _value(cat["GROUP"], p.category)]
        if p.cycle_days:
            values.append(_value(cat["CYCLE_DAYS"], p.cycle_days))
        if p.term_days:
            values.append(_value(cat["TERM_DAYS"], p.term_days))
        store.elements[PRODUCTS_CATALOG_ID][p.id] = {
            "id": p.id, "name": p.name, "created_by": 1, "updated_by": 1, "created_at": start, "updated_at": start,
            "is_deleted": False, "custom_fields_values": values, "catalog_id": PRODUCTS_CATALOG_ID,
            "account_id": store.account_id}
    person_id = len(shop.customers)  # company buyers' contact persons get ids after every customer id
    latest = start
    for c in shop.customers:
        created = _ts(c.created, tz)
        latest = max(latest, created)
        if c.kind == "company":
            members = []
            for person in c.contacts:
                person_id += 1
                members.append(person_id)
                store.contacts[person_id] = _contact(store, fields["contacts"], person_id, person.first_name,
                                                     person.last_name, (person.email,) if person.email else (),
                                                     (person.phone,) if person.phone else (), None, c, created,
                                                     tz, companies=[c.id], opted_out=c.no_marketing,
                                                     gender=person.gender)
            store.companies[c.id] = _company(store, fields["companies"], c, created, members)
        else:
            store.contacts[c.id] = _contact(store, fields["contacts"], c.id, c.first_name, c.last_name, c.emails,
                                            c.phones, c.birthday, c, created, tz, companies=[],
                                            opted_out=c.no_marketing, gender=c.gender)
    paid = shop.bonus_payments()
    pipeline_ids = sorted(store.pipelines)
    for d in shop.deals:
        customer = shop.customer(d.customer_id)
        pid = pipeline_ids[min(d.pipeline, len(pipeline_ids) - 1)]
        created = _ts(d.created, tz)
        closed = _ts(d.closed, tz) if d.closed else None
        status = WON_STATUS_ID if d.status == DEAL_WON else LOST_STATUS_ID if d.status == DEAL_LOST \
            else pid * 10 + 1 + d.id % len(WORK_STATUSES)
        if customer.kind == "company":
            company = store.companies[customer.id]
            main = company["contacts"][0] if company["contacts"] else None  # the buyer, as in the Bitrix24 portal
            contacts, companies = ([[main, True]] if main else []), [customer.id]
        else:
            contacts, companies = [[customer.id, True]], []
        store.leads[d.id] = {
            "id": d.id, "name": f"Заказ №{d.id}", "price": int(round(d.amount)), "responsible_user_id": d.manager_id,
            "group_id": 0, "status_id": status, "pipeline_id": pid, "loss_reason_id": None, "created_by": 0,
            "updated_by": 0, "created_at": created, "updated_at": closed or created, "closed_at": closed,
            "closest_task_at": None, "is_deleted": False, "score": None, "account_id": store.account_id,
            "labor_cost": None, "source_id": None, "is_price_modified_by_robot": False,
            "custom_fields_values": _lead_values(fields["leads"], d, store.currency, paid),
            "tags": [], "contacts": contacts, "companies": companies}
        latest = max(latest, closed or created)
        if d.lines:  # a lead links an element once: two lines of one product are one link, quantities added
            quantities: dict[int, float] = {}
            for line in d.lines:
                quantities[line.product_id] = quantities.get(line.product_id, 0.0) + line.quantity
            store.links[d.id] = [{"to_entity_id": pid, "to_entity_type": "catalog_elements",
                                  "metadata": {"quantity": qty, "catalog_id": PRODUCTS_CATALOG_ID,
                                               "price_id": cat["PRICE"]["id"]}} for pid, qty in quantities.items()]
    store.reserve_ids("lead", max(store.leads, default=0))
    store.reserve_ids("contact", max(list(store.contacts) + list(store.companies), default=0))
    store.reserve_ids("company", max(list(store.contacts) + list(store.companies), default=0))
    store.reserve_ids("element", max((p.id for p in shop.products), default=0))
    store.reserve_ids("task", 10_000)
    store.reserve_ids("note", 50_000)
    store.reserve_ids("tag", 100)
    store.align_clock(latest)


def _lead_values(fields: dict[str, dict], d, currency: str, paid: dict) -> list[dict] | None:
    """A lead's own field values: a foreign currency, bonuses paid, the feedback answer, the referral code,
    the promo code."""
    values = []
    if d.currency != currency:
        values.append(_value(fields["CURRENCY"], d.currency))
    if d.id in paid:
        values.append(_value(fields["RS_BONUS_PAID"], f"{paid[d.id]:g}"))
    if d.nps is not None:
        values.append(_value(fields["RS_NPS"], d.nps))
    if d.referred_by is not None:  # the shop's ids are the account's ids
        values.append(_value(fields["RS_REFERRAL_CODE"], referral_code_of(d.referred_by)))
    if d.promo:
        values.append(_value(fields["PROMO"], d.promo))
    return values or None


def _custom_fields(store: AccountStore) -> dict[str, dict[str, dict]]:
    contacts = [_field(200001, "Телефон", "multitext", "PHONE", "contacts", sort=4, enums=PHONE_ENUMS,
                       predefined=True),
                _field(200002, "Email", "multitext", "EMAIL", "contacts", sort=6, enums=EMAIL_ENUMS,
                       predefined=True),
                _field(200003, "Должность", "text", "POSITION", "contacts", sort=2, predefined=True),
                _field(200004, "День рождения", "birthday", None, "contacts", sort=510),
                _field(200005, "Не присылать рассылки", "checkbox", "NO_MARKETING", "contacts", sort=520),
                _field(GENDER_FIELD_ID, "Пол", "select", None, "contacts", sort=530,
                       enums=tuple(GENDER_OPTIONS.values()))]
    companies = [_field(300001, "Телефон", "multitext", "PHONE", "companies", sort=4, enums=PHONE_ENUMS,
                        predefined=True),
                 _field(300002, "Email", "multitext", "EMAIL", "companies", sort=6, enums=EMAIL_ENUMS,
                        predefined=True),
                 _field(300003, "Web", "url", "WEB", "companies", sort=8, predefined=True),
                 _field(300005, "Не присылать рассылки", "checkbox", "NO_MARKETING", "companies", sort=520)]
    leads = [_field(400001, "Валюта", "select", "CURRENCY", "leads", sort=510, enums=("RUB", "USD", "EUR")),
             # the shop's loyalty program records payments with bonuses here (Shop.bonus_payments)
             _field(400002, "Оплачено бонусами", "numeric", "RS_BONUS_PAID", "leads", sort=520),
             # the shop's own lead fields: its feedback form's 0-10 answer, the code a friend gave at checkout
             _field(400003, "Оценка 0-10", "numeric", "RS_NPS", "leads", sort=530),
             _field(400004, "Промокод друга", "text", "RS_REFERRAL_CODE", "leads", sort=540),
             _field(400005, "Промокод", "text", "PROMO", "leads", sort=550)]
    catalog = [_field(500001, "Артикул", "text", "SKU", "catalogs", sort=1, predefined=True),
               _field(500002, "Цена", "price", "PRICE", "catalogs", sort=2, predefined=True),
               _field(500003, "Группа", "category", "GROUP", "catalogs", sort=3, predefined=True),
               _field(500004, "Срок потребления, дней", "numeric", "CYCLE_DAYS", "catalogs", sort=10),
               _field(500005, "Срок подписки или обслуживания, дней", "numeric", "TERM_DAYS", "catalogs", sort=11)]
    store.custom_fields.update({"contacts": contacts, "companies": companies, "leads": leads,
                                f"catalog:{PRODUCTS_CATALOG_ID}": catalog})
    return {key: {f["code"] or f["type"]: f for f in value} for key, value in store.custom_fields.items()}


def _contact(store, fields, cid, first, last, emails, phones, birthday, owner: ShopCustomer, created, tz,
             *, companies, opted_out, gender=None) -> dict:
    values = [v for v in (_multi(fields["PHONE"], phones, "MOB"), _multi(fields["EMAIL"], emails, "PRIV")) if v]
    if birthday:
        values.append(_value(fields["birthday"], _day_ts(birthday, tz)))
    if opted_out:
        values.append(_value(fields["NO_MARKETING"], True))
    if gender in GENDER_OPTIONS:
        values.append(_value(fields["select"], GENDER_OPTIONS[gender]))  # "Пол", the only select of contacts
    return {"id": cid, "name": f"{first} {last}".strip(), "first_name": first, "last_name": last,
            "responsible_user_id": owner.manager_id, "group_id": 0, "created_by": 0, "updated_by": 0,
            "created_at": created, "updated_at": created, "closest_task_at": None, "is_deleted": False,
            "is_unsorted": False, "custom_fields_values": values or None, "account_id": store.account_id,
            "tags": [], "companies": companies}


def _company(store, fields, c: ShopCustomer, created, members) -> dict:
    values = [v for v in (_multi(fields["PHONE"], c.phones, "WORK"), _multi(fields["EMAIL"], c.emails, "WORK")) if v]
    if c.no_marketing:
        values.append(_value(fields["NO_MARKETING"], True))
    return {"id": c.id, "name": c.name, "responsible_user_id": c.manager_id, "group_id": 0, "created_by": 0,
            "updated_by": 0, "created_at": created, "updated_at": created, "closest_task_at": None,
            "is_deleted": False, "custom_fields_values": values or None, "account_id": store.account_id,
            "tags": [], "contacts": members}
