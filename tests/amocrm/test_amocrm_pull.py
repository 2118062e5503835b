"""The amoCRM adapter's pull, over HTTP against the emulator, checked against the shop it was seeded from."""

from __future__ import annotations

import math
from collections import Counter

from amo_support import TODAY, pull_all, token_adapter

from connector.amocrm.pull import LAG_SECONDS, pages
from connector.crm import Cursor
from emulators.amocrm import AmoEmulator


def test_full_pull_equals_the_accounts_ground_truth(account):
    adapter = token_adapter(account)
    try:
        customers, purchases, products, removed, cursor = pull_all(adapter)
    finally:
        adapter.close()
    shop, store = account.shop, account.store
    won = [d for d in shop.deals if d.won]
    assert set(purchases) == {str(d.id) for d in won}
    for deal in won:
        p = purchases[str(deal.id)]
        main = next(c for c, is_main in store.leads[deal.id]["contacts"] if is_main)
        assert p.customer_id == str(main)
        assert p.date == deal.closed.date(), "closed_at read in the account's zone gives the shop's day"
        assert p.amount == round(deal.amount) and p.currency == deal.currency
        quantities = Counter()
        for line in deal.lines:  # one link per product: two lines of one product add up
            quantities[str(line.product_id)] += line.quantity
        assert sorted((i.product_id, i.quantity) for i in p.items) == sorted(quantities.items())
        assert p.manager_id == str(deal.manager_id)
    people = [c for c in shop.customers if c.kind == "person"]
    for person in people:
        c = customers[str(person.id)]
        assert (c.name, c.emails, c.phones, c.birthday) == (person.name, person.emails, person.phones, person.birthday)
        assert (c.fields.get("no_marketing") == "1") == person.no_marketing
    assert set(products) == {str(p.id) for p in shop.products}
    cycled = next(p for p in shop.products if p.cycle_days)
    assert products[str(cycled.id)].cycle_days == cycled.cycle_days
    assert products[str(cycled.id)].category == cycled.category
    assert removed == [] and cursor is not None
    assert len({p.currency for p in purchases.values()}) > 1, "foreign-currency leads keep their currency"


def test_full_pull_reads_250_a_page_near_the_lower_bound():
    with AmoEmulator(customers=300, seed=42, today=TODAY) as emu:
        adapter = token_adapter(emu)
        try:
            customers, purchases, products, _r, _c = pull_all(adapter)
            used = adapter.request_count()
        finally:
            adapter.close()
        stats = emu.stats()
    assert stats["requests_total"] == used, "the adapter counts every request it makes"
    assert stats["requests"]["GET /api/v4/leads"] == math.ceil(len(purchases) / 250)
    assert stats["requests"]["GET /api/v4/contacts"] == math.ceil(len(customers) / 250)
    bound = sum(math.ceil(n / 250) for n in (len(customers), len(purchases), len(products)))
    # plus the account (time zone, currency), the pipelines (won status filter) and the catalog list
    assert used <= bound + 3, (used, bound)


def test_an_empty_result_is_204_and_an_empty_page_not_an_error(account):
    adapter = token_adapter(account)
    try:
        future = Cursor(str(account.store.now() + 7 * 86400))
        customers, purchases, _p, removed, cursor = pull_all(adapter, future)
        statuses = account.stats()["requests"]
        # a list that fills its last page exactly: `next` is there, and following it meets a 204
        rows = [r for page in pages(adapter.client, "/api/v4/catalogs/5001/elements", "elements", limit=20)
                for r in page]
    finally:
        adapter.close()
    assert customers == {} and purchases == {} and removed == []
    assert cursor is None, "nothing read: the saved cursor stays as it was"
    assert statuses["GET /api/v4/contacts"] == 1 and statuses["GET /api/v4/leads"] == 1
    assert len(rows) == len(account.shop.products) == 40
    assert account.stats()["requests"]["GET /api/v4/catalogs/{id}/elements"] == 1 + 3


def test_incremental_pull_reads_only_what_changed(account):
    adapter = token_adapter(account)
    try:
        _c, purchases, _p, _r, cursor = pull_all(adapter)
        won_ids = sorted(purchases, key=int)
        account.touch_purchase(int(won_ids[0]), price=777)
        account.touch_purchase(int(won_ids[1]), status_id=143)  # a manager moves a won lead to lost
        before = adapter.request_count()
        _c2, changed, _p2, removed, cursor2 = pull_all(adapter, cursor)
        used = adapter.request_count() - before
    finally:
        adapter.close()
    assert won_ids[0] in changed and changed[won_ids[0]].amount == 777.0
    lag_floor = int(cursor.modified_since) - LAG_SECONDS
    rereads = set(changed) - {won_ids[0]}
    assert all(account.store.leads[int(i)]["updated_at"] >= lag_floor for i in rereads), \
        "besides the change, only leads inside the deliberate re-read window come back"
    assert removed == [won_ids[1]], "a won lead moved to lost leaves the history"
    assert int(cursor2.modified_since) > int(cursor.modified_since)
    assert used <= 5, "catalogs, elements, contacts, leads: a handful of requests"


def test_company_mode_makes_companies_the_customers(account):
    adapter = token_adapter(account, customer_key="company")
    try:
        customers, purchases, _p, _r, _c = pull_all(adapter)
    finally:
        adapter.close()
    companies = {str(c.id) for c in account.shop.customers if c.kind == "company"}
    assert set(customers) == companies and all(c.kind == "company" for c in customers.values())
    company_deals = {str(d.id) for d in account.shop.deals if d.won and str(d.customer_id) in companies}
    assert set(purchases) == company_deals, "leads without a company are skipped in B2B mode"
    assert {p.customer_id for p in purchases.values()} <= companies
