"""The Bitrix24 adapter's pull, over HTTP against the emulator, checked against an independent read."""

from __future__ import annotations

import math

from fast_bitrix24 import Bitrix

from connector.bitrix import BitrixAdapter
from connector.crm import Cursor


def pull_all(adapter, since=None):
    customers, purchases, removed, cursor = {}, {}, [], None
    for page in adapter.pull(since):
        customers.update({c.id: c for c in page.customers})
        purchases.update({p.id: p for p in page.purchases})
        removed += page.removed_purchase_ids
        cursor = page.cursor or cursor
    return customers, purchases, removed, cursor


def won_deals_the_plain_way(portal):
    """Ground truth by another route: fast-bitrix24's own get_all, as a script would do it."""
    bx = Bitrix(portal.webhook_url, verbose=False)
    return bx.get_all("crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S"},
                                        "select": ["ID", "OPPORTUNITY", "CURRENCY_ID", "CONTACT_ID"]})


def test_full_pull_returns_every_won_deal_with_its_amount_and_currency(portal):
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        _customers, purchases, _removed, cursor = pull_all(adapter)
    finally:
        adapter.close()
    truth = {d["ID"]: d for d in won_deals_the_plain_way(portal) if d.get("CONTACT_ID")}
    assert set(purchases) == set(truth)
    for deal_id, deal in truth.items():
        assert purchases[deal_id].amount == float(deal["OPPORTUNITY"])
        assert purchases[deal_id].currency == deal["CURRENCY_ID"]
    assert len({p.currency for p in purchases.values()}) > 1, "the shop has several currencies"
    assert cursor is not None


def test_full_pull_brings_product_rows_of_every_won_deal(portal):
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        _c, purchases, _r, _cur = pull_all(adapter)
    finally:
        adapter.close()
    bx = Bitrix(portal.webhook_url, verbose=False)
    sample = sorted(purchases, key=int)[:: max(1, len(purchases) // 15)]
    for deal_id in sample:
        rows = bx.call("crm.deal.productrows.get", {"id": deal_id}, raw=True)["result"]
        assert sorted((str(r["PRODUCT_ID"]), float(r["QUANTITY"])) for r in rows) == sorted(
            (i.product_id, i.quantity) for i in purchases[deal_id].items)
    assert any(not p.items for p in purchases.values()), "deals without products stay purchases"


def test_full_pull_stays_near_the_request_lower_bound(portal):
    stats_before = portal.stats()["requests_total"]
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        customers, purchases, _r, _c = pull_all(adapter)
        used = adapter.request_count()
    finally:
        adapter.close()
    assert portal.stats()["requests_total"] - stats_before == used, "the adapter counts every request"
    rows = sum(len(p.items) for p in purchases.values())
    objects = portal.stats()["objects"]
    lists = [objects["contact"], len(purchases), rows, objects["product"]]
    bound = sum(max(1, math.ceil(n / 2500)) for n in lists)
    # the first pages of every list share one request; product rows never cost a call per deal
    assert used <= bound + 1
    assert used < len(purchases) / 10


def test_incremental_pull_reads_only_what_changed(portal):
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        _c, purchases, _r, cursor = pull_all(adapter)
        won_ids = sorted(purchases, key=int)
        portal.touch_purchase(int(won_ids[0]), OPPORTUNITY="777.00")
        portal.touch_purchase(int(won_ids[1]), STAGE_ID="LOSE")
        before = adapter.request_count()
        _c2, changed, removed, cursor2 = pull_all(adapter, Cursor(cursor.modified_since))
        used = adapter.request_count() - before
    finally:
        adapter.close()
    # the touched deal, plus at most the few deals changed within the re-read window behind the cursor
    assert won_ids[0] in changed and won_ids[1] not in changed
    assert len(changed) <= 5
    assert changed[won_ids[0]].amount == 777.0
    assert removed == [won_ids[1]], "a won deal moved to lost leaves the history"
    assert cursor2.modified_since >= cursor.modified_since
    assert used <= 6, "an incremental pull of two changed deals costs a handful of requests"


def test_a_deal_that_cannot_be_mapped_is_skipped_and_counted_and_the_pull_goes_on(portal):
    truth = sorted((d["ID"] for d in won_deals_the_plain_way(portal)), key=int)
    portal.touch_purchase(int(truth[0]), CONTACT_ID="0")  # its contact was unlinked in the portal
    adapter = BitrixAdapter(portal.webhook_url)
    try:
        pages = list(adapter.pull(None))
    finally:
        adapter.close()
    purchases = {p.id for page in pages for p in page.purchases}
    assert truth[0] not in purchases and truth[1] in purchases
    assert sum(page.skipped for page in pages) >= 1
