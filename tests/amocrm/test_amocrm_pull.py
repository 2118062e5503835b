"""amoCRM-only pull protocol: an empty result is 204, a list that fills its last page ends in a 204,
companies as the customers. Pull scenarios every CRM shares are in tests/contract/test_pull.py."""

from __future__ import annotations

from amo_support import pull_all, token_adapter

from connector.amocrm.pull import pages
from connector.crm import Cursor


def test_an_empty_result_is_204_and_an_empty_page_not_an_error(account):
    adapter = token_adapter(account)
    try:
        future = Cursor(str(account.store.now() + 7 * 86400))
        customers, purchases, _p, removed, cursor = pull_all(adapter, future)
        statuses = account.stats()["requests"]
        # a list that fills its last page exactly: `next` is there, and following it meets a 204
        rows = [r for page in pages(adapter.client, "/api/v4/catalogs/5001/elements", "elements", limit=21)
                for r in page]
    finally:
        adapter.close()
    assert customers == {} and purchases == {} and removed == []
    assert cursor is None, "nothing read: the saved cursor stays as it was"
    assert statuses["GET /api/v4/contacts"] == 1 and statuses["GET /api/v4/leads"] == 1
    assert len(rows) == len(account.shop.products) == 42  # two pages of 21
    assert account.stats()["requests"]["GET /api/v4/catalogs/{id}/elements"] == 1 + 3


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
