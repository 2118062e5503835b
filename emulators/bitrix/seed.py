"""Fill a Portal from the synthetic shop: users, catalogue, contacts/companies, deals, rows.

Mapping (documented for the adapter and tests):
- manager N -> user N (user 1, the webhook's owner, is the admin); fired manager -> ACTIVE false;
- product category -> product section (crm.productsection.list), product -> crm.product with
  SECTION_ID, and the consumption cycle in property PROPERTY_101 (CODE "RS_CYCLE_DAYS");
- person customer -> contact; company customer -> company plus its contacts (COMPANY_ID set);
- opt-out -> user field UF_CRM_RS_NO_MARKETING = "Y" / "N" on the contact or company;
- bonuses paid on a won deal (Shop.bonus_payments) -> the deal's double user field UF_CRM_RS_BONUS_PAID;
- a person's gender -> the contact's HONORIFIC: HNR_RU_1 "г-н" / HNR_RU_2 "г-жа" (unset when unknown);
- deal -> deal in pipeline 0 (people) or 1 "Опт" (companies): won WON / C1:WON, lost LOSE / C1:LOSE,
  open a P stage; CLOSEDATE = the day it closed; DATE_MODIFY = a few hours after it closed;
- a deal's feedback answer (0-10) -> UF_CRM_RS_NPS, the referral code a first deal brought ->
  UF_CRM_RS_REFERRAL_CODE (deal user fields the shop already has).
"""

from __future__ import annotations

import gc
from datetime import datetime

from emulators.shop import DEAL_LOST, DEAL_WON, Shop, referral_code_of

from .protocol import day_floor, day_start
from .records import (
    Company,
    Contact,
    Deal,
    DiscountedRow,
    Product,
    ProductRow,
    Section,
    Task,
    User,
    UserField,
)
from .store import CATALOG_ID, HONORIFIC_BY_GENDER, OPEN_STAGES, OPT_OUT_FIELD, Portal, stage_code

BONUS_PAID_FIELD = "UF_CRM_RS_BONUS_PAID"  # the shop's loyalty program records payments with bonuses here

_EPOCH = datetime(1970, 1, 1)
_OFFSET = 3 * 3600  # the shop's naive times are portal (+03:00) times
_SEED_GUARD = 60  # seeded rows are modified at least this long before the emulator starts
_FREEZE_DEALS = 200_000
NPS_FIELD, REFERRAL_FIELD = "UF_CRM_RS_NPS", "UF_CRM_RS_REFERRAL_CODE"  # deal user fields of the shop


def _ts(dt: datetime) -> int:
    return int((dt - _EPOCH).total_seconds()) - _OFFSET


def seed_portal(portal: Portal, shop: Shop, now: int) -> None:
    """Load the shop; seeded DATE_MODIFY values are in the past (capped at `now` - 60 s).

    The cyclic GC is paused while millions of rows are created (it would rescan them all,
    over and over); big portals are then frozen out of its reach, as they hold no cycles.
    """
    cap = now - _SEED_GUARD
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _users(portal, shop)
        _catalogue(portal, shop, cap)
        _userfields(portal)
        _customers(portal, shop, cap)
        _deals(portal, shop, cap)
        _tasks(portal, shop, cap)
    finally:
        if gc_was_enabled:
            gc.enable()
    if len(shop.deals) >= _FREEZE_DEALS:
        gc.freeze()


def _users(portal: Portal, shop: Shop) -> None:
    for m in shop.managers:
        position = "Руководитель отдела продаж" if m.id == 1 else "Менеджер по продажам"
        portal.users.insert(m.id, User(m.id, m.first_name, m.last_name, m.email, m.active, position,
                                       is_admin=m.id == 1))


def _catalogue(portal: Portal, shop: Shop, cap: int) -> None:
    section_ids = {}
    for i, category in enumerate(shop.categories, start=1):
        section_ids[category] = i
        portal.sections.insert(i, Section(i, category, f"rs_category_{i}", CATALOG_ID))
    created = min(cap, day_start(shop.history_start))
    for p in shop.products:
        portal.products.insert(p.id, Product(p.id, p.name, p.price, p.currency, section_ids[p.category],
                                             f"rs-sku-{p.id}", p.cycle_days, created=created,
                                             term_days=p.term_days))


def _userfields(portal: Portal) -> None:
    # Doc: api-reference/crm/contacts/userfield/crm-contact-userfield-list.md (row shape)
    for entity in ("CRM_CONTACT", "CRM_COMPANY"):
        uid = portal.userfields.new_id()
        portal.userfields.insert(uid, UserField(uid, entity, OPT_OUT_FIELD, "string", xml_id="RS_NO_MARKETING",
                                                label="Отказ от рассылок (Y/N)",
                                                settings={"DEFAULT_VALUE": "N", "ROWS": 1}))
    # Doc: api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md (USER_TYPE_ID double)
    uid = portal.userfields.new_id()
    portal.userfields.insert(uid, UserField(uid, "CRM_DEAL", BONUS_PAID_FIELD, "double", xml_id="RS_BONUS_PAID",
                                            label="Оплачено бонусами", settings={"PRECISION": 2}))
    # the shop's own deal fields, filled by its feedback form and at checkout (a referral code)
    for name, label in ((NPS_FIELD, "Оценка 0-10"), (REFERRAL_FIELD, "Промокод друга")):
        uid = portal.userfields.new_id()
        portal.userfields.insert(uid, UserField(uid, "CRM_DEAL", name, "string", label=label))


def _multi(portal: Portal, phones, emails) -> dict | None:
    multi = {}
    if phones:
        multi["PHONE"] = [[portal._multi_id(), "MOBILE", v] for v in phones]
    if emails:
        multi["EMAIL"] = [[portal._multi_id(), "WORK", v] for v in emails]
    return multi or None


def _customers(portal: Portal, shop: Shop, cap: int) -> None:
    contacts, companies = portal.contacts, portal.companies
    for c in shop.customers:
        created = min(_ts(c.created), cap)
        modified = min(created + 3600, cap)
        opt = {OPT_OUT_FIELD: "Y" if c.no_marketing else "N"}
        if c.kind == "company":
            co_id = companies.last_id + 1
            companies.insert(co_id, Company(
                co_id, c.name, assigned=c.manager_id, created=created, modified=modified,
                multi=_multi(portal, c.phones, c.emails), uf=opt))
            portal.customer_refs[c.id] = ("company", co_id)
            members = []
            for person in c.contacts:
                cid = contacts.last_id + 1
                contacts.insert(cid, Contact(
                    cid, person.first_name, person.last_name, post="Закупщик", type_id="SUPPLIER",
                    company_id=co_id, assigned=c.manager_id, created=created, modified=modified,
                    multi=_multi(portal, (person.phone,) if person.phone else (),
                                 (person.email,) if person.email else ()),
                    uf={OPT_OUT_FIELD: opt[OPT_OUT_FIELD]}, honorific=HONORIFIC_BY_GENDER.get(person.gender or "")),
                    {"COMPANY_ID": co_id})
                members.append(cid)
            portal.company_contacts[co_id] = members
        else:
            cid = contacts.last_id + 1
            contacts.insert(cid, Contact(
                cid, c.first_name, c.last_name, company_id=None,
                birthdate=day_start(c.birthday) if c.birthday else None, assigned=c.manager_id,
                created=created, modified=modified, multi=_multi(portal, c.phones, c.emails), uf=opt,
                honorific=HONORIFIC_BY_GENDER.get(c.gender or "")), {"COMPANY_ID": 0})
            portal.customer_refs[c.id] = ("contact", cid)


def _deal_uf(d, paid: dict, refs: dict) -> dict | None:
    """A deal's user fields the shop fills: bonuses paid, the feedback answer, the referral code brought."""
    uf = {BONUS_PAID_FIELD: str(paid[d.id])} if d.id in paid else {}
    if d.nps is not None or d.referred_by is not None:
        uf[NPS_FIELD] = None if d.nps is None else str(d.nps)
        uf[REFERRAL_FIELD] = referral_code_of(refs[d.referred_by][1]) if d.referred_by is not None else None
    return uf or None


def _deals(portal: Portal, shop: Shop, cap: int) -> None:
    deals, rows_table = portal.deals, portal.product_rows
    refs, members = portal.customer_refs, portal.company_contacts
    semantics = portal.stage_semantics
    bought: set[int] = set()  # customers with a won deal so far (IS_RETURN_CUSTOMER)
    products = portal.products.rows
    row_id = rows_table.last_id
    deal_index = deals.indexes
    open_n = len(OPEN_STAGES)
    paid = shop.bonus_payments()
    for d in shop.deals:
        kind, ref = refs[d.customer_id]
        if kind == "company":
            company_id = ref
            contact_ids = tuple(members.get(ref, ())[:1])
        else:
            company_id, contact_ids = None, (ref,)
        cat = d.pipeline if d.pipeline in portal.categories else 0
        if d.status == DEAL_WON:
            code = "WON"
        elif d.status == DEAL_LOST:
            code = "LOSE"
        else:
            code = OPEN_STAGES[d.id % open_n]
        stage = stage_code(cat, code)
        created = min(_ts(d.created), cap)
        closed = min(_ts(d.closed), cap) if d.closed is not None else None
        modified = min((closed if closed is not None else created) + 3600 * (1 + d.id % 6), cap)
        is_return = d.status == DEAL_WON and d.customer_id in bought
        if d.status == DEAL_WON:
            bought.add(d.customer_id)
        closedate = day_floor(closed) if closed is not None else day_floor(created) + 7 * 86400
        deal = Deal(d.id, None, stage, cat, semantics[stage], "SALE", d.currency, d.amount,
                    not d.lines, contact_ids, company_id, None, closedate,
                    d.manager_id, d.manager_id, d.manager_id, created, modified,
                    closed if closed is not None else created, "", "STORE", is_return,
                    uf=_deal_uf(d, paid, refs))
        deals.rows[d.id] = deal
        deals.ids.append(d.id)
        _index(deal_index["CONTACT_ID"], contact_ids[0] if contact_ids else 0, d.id)
        _index(deal_index["COMPANY_ID"], company_id or 0, d.id)
        for n, line in enumerate(d.lines, start=1):
            row_id += 1
            product = products[line.product_id]
            if line.discount:  # a promo: 10 % off, the row's price after it
                rate = round(100 * line.discount / (line.price + line.discount), 2)
                row = DiscountedRow(row_id, d.id, line.product_id, product.name, line.price, line.quantity,
                                    sort=n * 10, discount_rate=rate, discount_sum=line.discount)
            else:
                row = ProductRow(row_id, d.id, line.product_id, product.name, line.price, line.quantity, sort=n * 10)
            rows_table.rows[row_id] = row
            rows_table.ids.append(row_id)
            _index(rows_table.indexes["OWNER_ID"], d.id, row_id)
    deals.last_id = max(deals.last_id, shop.deals[-1].id if shop.deals else 0)
    rows_table.last_id = row_id
    deals.touch()
    rows_table.touch()


def _index(index: dict, key, row_id: int) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = [row_id]
    else:
        bucket.append(row_id)


_TASKS = (("Обновить прайс-лист на сайте", "склад"), ("Позвонить поставщику зерна", "закупки"),
          ("Подготовить отчёт по продажам за месяц", "отчёты"), ("Проверить остатки фильтров", "склад"),
          ("Согласовать скидку для оптового клиента", "опт"))


def _tasks(portal: Portal, shop: Shop, cap: int) -> None:
    """A few everyday tasks so that task lists are not only the plugin's."""
    n_users = max(1, len(shop.managers))
    for i, (title, tag) in enumerate(_TASKS, start=1):
        created = cap - i * 86400
        crm = (f"D_{i}",) if i <= len(shop.deals) else ()
        task = Task(i, title, (i % n_users) + 1, 1, created, created, description=title,
                    deadline=created + 3 * 86400, tags=(tag,), crm=crm)
        portal.tags.setdefault(tag, len(portal.tags) + 1)
        portal.tasks.insert(i, task, {"TAG": task.tags, "UF_CRM_TASK": task.crm,
                                      "RESPONSIBLE_ID": task.responsible_id})
