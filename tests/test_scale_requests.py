"""Request counts of both CRMs' pulls against the API's lower bound, on a portal of ~9,000 deals.

The small version of benchmarks/scale_sync.py: counts only, never timings. The lower bound is
ceil(items / items-per-request) for each list: Bitrix24 carries 2,500 list rows a request (a
`batch` of 50 pages of 50), amoCRM 250 a page (a lead's products ride inside the lead).
"""

from __future__ import annotations

import math

import pytest

from connector.amocrm import AmoAdapter
from connector.bitrix import BitrixAdapter
from connector.crm import Cursor
from connector.demo import ITEMS_PER_REQUEST, lower_bound
from emulators.amocrm import AmoEmulator
from emulators.bitrix import BitrixEmulator

from .conftest import TODAY

CUSTOMERS = 1500  # ~8,800 deals, ~15,000 product rows
SEED = 11
WITHIN = 1.15  # the target: a full pull within 1.15x of the lower bound


def pull_all(adapter, since: Cursor | None = None) -> dict:
    seen = {"customers": 0, "purchases": 0, "removed": 0, "line_items": 0, "products": 0}
    cursor = None
    for page in adapter.pull(since):
        seen["customers"] += len(page.customers)
        seen["purchases"] += len(page.purchases)
        seen["removed"] += len(page.removed_purchase_ids)
        seen["line_items"] += sum(len(p.items) for p in page.purchases)
        seen["products"] += len(page.products)
        cursor = page.cursor or cursor
    seen["cursor"] = cursor
    return seen


def bound(crm: str, seen: dict) -> int:
    items = {"customers": seen["customers"], "deals": seen["purchases"] + seen["removed"],
             "products": seen["products"]}
    if crm == "bitrix":
        items["product_rows"] = seen["line_items"]
    return lower_bound(items, ITEMS_PER_REQUEST[crm])


def pages(n: int) -> int:
    return max(1, math.ceil(n / 50))


def keyset_pages(n: int) -> int:
    """Keyset pages that read n rows: the full ones, then the short (maybe empty) one that ends the list."""
    return n // 50 + 1


# --- Bitrix24 ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def portal():
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture(scope="module")
def bitrix_full(portal):
    """One full pull, shared by the Bitrix24 tests: what it read and what it cost."""
    portal.reset_stats()
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        seen = pull_all(adapter)
        seen["requests"] = adapter.request_count()
    finally:
        adapter.close()
    seen["stats"] = portal.stats()
    return seen


def test_bitrix_full_pull_is_within_115_percent_of_the_lower_bound(bitrix_full):
    assert bitrix_full["purchases"] > 7000 and bitrix_full["line_items"] > 12000, "a portal of thousands of deals"
    assert bitrix_full["stats"]["requests_total"] == bitrix_full["requests"], "every request is counted"
    assert bitrix_full["requests"] <= WITHIN * bound("bitrix", bitrix_full)


def test_bitrix_every_list_costs_its_pages_and_product_rows_never_a_call_per_deal(bitrix_full):
    commands, lists = bitrix_full["stats"]["commands"], bitrix_full["stats"]["list_calls"]
    for method, n in (("crm.contact.list", bitrix_full["customers"]), ("crm.deal.list", bitrix_full["purchases"])):
        # a page per 50 rows and the short one that ends it; past the end, at most the rest of one
        # chain of 50 (references to a page that was never full), no counted and no offset pages
        assert lists[method]["rows"] == n and lists[method]["keyset"] - lists[method]["unresolved"] == keyset_pages(n)
        assert commands[method] == lists[method]["keyset"] <= keyset_pages(n) + 49
    # rows of 250 deals per keyset read: only each read's last page is short
    rows = lists["crm.item.productrow.list"]
    assert rows["rows"] == bitrix_full["line_items"]
    assert rows["keyset"] - rows["unresolved"] <= WITHIN * pages(bitrix_full["line_items"])
    assert all(v["counted"] == v["offset"] == v["unordered"] == 0 for v in lists.values()), lists
    assert "crm.deal.productrows.get" not in commands and "crm.productrow.list" not in commands
    assert bitrix_full["requests"] <= bitrix_full["purchases"] / 500


def test_bitrix_incremental_pull_is_proportional_to_what_changed(portal, bitrix_full):
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        full = pull_all(adapter)  # this adapter's own cursor
        changed = {}
        for share in (0.01, 0.05):
            won = sorted(int(d.id) for d in portal.store.won_deals())
            touched = won[:: round(1 / share)]
            for deal_id in touched:
                portal.touch_purchase(deal_id, OPPORTUNITY="1234.00")
            portal.reset_stats()
            seen = pull_all(adapter, full["cursor"])
            stats = portal.stats()
            seen.update(commands=stats["commands"], requests=stats["requests_total"], lists=stats["list_calls"])
            changed[share] = (len(touched), seen)
            full["cursor"] = seen["cursor"]
    finally:
        adapter.close()
    for _share, (touched, seen) in changed.items():
        deals_read = seen["purchases"] + seen["removed"]
        assert touched <= deals_read <= touched + 5, "the changed deals, plus the few in the re-read window"
        assert seen["customers"] == 0
        deals = seen["lists"]["crm.deal.list"]
        assert deals["rows"] == deals_read and deals["keyset"] - deals["unresolved"] == keyset_pages(deals_read)
        rows = seen["lists"]["crm.item.productrow.list"]
        assert rows["keyset"] - rows["unresolved"] <= pages(seen["line_items"]) + math.ceil(deals_read / 250)
        assert seen["requests"] <= bound("bitrix", seen)
    small, large = changed[0.01][1], changed[0.05][1]
    assert small["lists"]["crm.deal.list"]["rows"] * 3 <= large["lists"]["crm.deal.list"]["rows"]
    assert large["requests"] < bitrix_full["requests"] / 2


# --- amoCRM ------------------------------------------------------------------------------------

ACCOUNT_REQUESTS = 4  # /account, /catalogs, the catalog's elements, /leads/pipelines (full pulls only)


@pytest.fixture(scope="module")
def account():
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture(scope="module")
def amo_full(account):
    account.reset_stats()
    adapter = AmoAdapter(account.base_url, access_token=account.access_token)
    try:
        seen = pull_all(adapter)
        seen["requests"] = adapter.request_count()
    finally:
        adapter.close()
    seen["stats"] = account.stats()
    return seen


def test_amocrm_full_pull_is_within_115_percent_of_the_lower_bound(amo_full):
    assert amo_full["purchases"] > 7000
    assert amo_full["stats"]["requests_total"] == amo_full["requests"]
    assert amo_full["requests"] <= WITHIN * bound("amocrm", amo_full)
    requests = amo_full["stats"]["requests"]
    assert requests["GET /api/v4/leads"] <= math.ceil(amo_full["purchases"] / 250) + 1  # + a final 204 at most
    assert requests["GET /api/v4/contacts"] <= math.ceil(amo_full["customers"] / 250) + 1
    assert amo_full["requests"] <= bound("amocrm", amo_full) + ACCOUNT_REQUESTS


def test_amocrm_incremental_pull_is_proportional_to_what_changed(account, amo_full):
    results = {}
    cursor = amo_full["cursor"]
    for share in (0.01, 0.05):
        won = sorted(i for i, lead in account.store.leads.items() if lead["status_id"] == 142)
        touched = won[:: round(1 / share)]
        for lead_id in touched:
            account.touch_purchase(lead_id, price=1234)
        account.reset_stats()
        adapter = AmoAdapter(account.base_url, access_token=account.access_token)
        try:
            seen = pull_all(adapter, cursor)
        finally:
            adapter.close()
        seen["stats"] = account.stats()
        results[share] = (len(touched), seen)
        cursor = seen["cursor"]
    for touched, seen in results.values():
        assert touched <= seen["purchases"] + seen["removed"] <= touched + 5
        leads_pages = seen["stats"]["requests"]["GET /api/v4/leads"]
        assert leads_pages <= math.ceil(touched / 250) + 1
        assert seen["stats"]["requests_total"] <= bound("amocrm", seen) + ACCOUNT_REQUESTS
    assert results[0.05][1]["stats"]["requests_total"] < amo_full["requests"] / 5
