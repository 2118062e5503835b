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
    commands = bitrix_full["stats"]["commands"]
    assert commands["crm.contact.list"] == pages(bitrix_full["customers"])
    assert commands["crm.deal.list"] == pages(bitrix_full["purchases"])
    # rows of 250 deals per paged read: only each read's last page is short
    assert commands["crm.item.productrow.list"] <= WITHIN * pages(bitrix_full["line_items"])
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
            seen.update(commands=stats["commands"], requests=stats["requests_total"])
            changed[share] = (len(touched), seen)
            full["cursor"] = seen["cursor"]
    finally:
        adapter.close()
    for _share, (touched, seen) in changed.items():
        deals_read = seen["purchases"] + seen["removed"]
        assert touched <= deals_read <= touched + 5, "the changed deals, plus the few in the re-read window"
        assert seen["customers"] == 0
        assert seen["commands"]["crm.deal.list"] == pages(deals_read)
        assert seen["commands"]["crm.item.productrow.list"] <= pages(seen["line_items"]) + math.ceil(deals_read / 250)
        assert seen["requests"] <= bound("bitrix", seen)
    small, large = changed[0.01][1], changed[0.05][1]
    assert small["commands"]["crm.deal.list"] * 3 <= large["commands"]["crm.deal.list"]
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
