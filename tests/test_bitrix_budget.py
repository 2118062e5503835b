"""The Bitrix24 adapter lives within the portal's operating-time budget: it slows down before a
method's limit, waits out a short block, and ends the run with the pull's position saved when the
wait is long; the next run goes on there, no page read twice, none skipped, nothing written before
the pull is complete. Over HTTP against the emulator; assertions read its stats, never a clock.
"""

from __future__ import annotations

import pytest

from connector.bitrix import BitrixAdapter
from connector.bitrix.budget import OperatingBudget
from connector.crm import Cursor
from connector.errors import CrmRateLimited
from connector.state import State
from connector.sync import run_sync
from emulators.bitrix import BitrixEmulator
from playbooks import load_playbook

from .conftest import TODAY
from .contract.bitrix_harness import keyset_pages

ROWS = "crm.item.productrow.list"


def pull_all(adapter, since: Cursor | None = None) -> dict:
    """Everything one pull brings, counted; the cursor it ends on."""
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


def truth(portal) -> dict[str, int]:
    """What the portal holds: contacts, won deals, the product rows of won deals."""
    won = portal.store.won_deals()
    return {"crm.contact.list": len(portal.store.contacts), "crm.deal.list": len(won),
            ROWS: sum(len(portal.store.rows_of(d.id)) for d in won)}


def assert_each_page_read_once(portal) -> None:
    """Rows served (cumulative over runs) equal what the portal holds; keyset pages, exactly the ones needed."""
    calls = portal.stats()["list_calls"]
    for method, n in truth(portal).items():
        assert calls[method]["rows"] == n, (method, calls[method])
        assert calls[method]["offset"] == calls[method]["counted"] == 0
    # (deals are also listed by the write-back's marker reads; contacts only by the pull)
    contacts = calls["crm.contact.list"]
    assert contacts["keyset"] - contacts["unresolved"] == keyset_pages(truth(portal)["crm.contact.list"])


def sync(portal, state: State, budget: OperatingBudget | None = None, progress=None):
    adapter = BitrixAdapter(portal.webhook_url, budget=budget)
    try:
        return run_sync(adapter, state, load_playbook(), today=TODAY, progress=progress)
    finally:
        adapter.close()


def test_the_pull_slows_down_before_a_methods_limit_and_draws_no_429():
    # 20 s a method in a 4-s window (time scale 150); every product-rows page costs 0.08 s more: ~24 s in all
    with BitrixEmulator(customers=1500, seed=11, today=TODAY, operating_limit_seconds=20, time_scale=150) as portal:
        portal.add_operating(0.08, call=ROWS)
        budget = OperatingBudget(limit_seconds=20, window_seconds=4)
        adapter = BitrixAdapter(portal.webhook_url, budget=budget, requests_per_second=2.0 * 150, request_pool=45)
        try:
            seen = pull_all(adapter)
        finally:
            adapter.close()
        stats = portal.stats()
        assert seen["line_items"] == truth(portal)[ROWS]
        assert stats["refused"] == {}, "the adapter waited before the portal had to refuse"
        assert budget.waited > 0 and stats["operating"][ROWS]["total"] > 20
        assert stats["operating"][ROWS]["peak"] < 20
        assert_each_page_read_once(portal)


@pytest.mark.parametrize("where", ["command", "request"])
def test_a_short_block_is_waited_out_and_the_pull_goes_on(portal, where):
    portal.fail_next(1, 429, call=ROWS if where == "command" else None)  # OPERATION_TIME_LIMIT, documented body
    budget = OperatingBudget(window_seconds=0.2)  # this portal's block ends soon
    adapter = BitrixAdapter(portal.webhook_url, budget=budget)
    try:
        seen = pull_all(adapter)
    finally:
        adapter.close()
    assert seen["purchases"] == truth(portal)["crm.deal.list"] and seen["line_items"] == truth(portal)[ROWS]
    assert budget.waited > 0
    assert_each_page_read_once(portal)


def test_a_portal_that_keeps_refusing_ends_the_run_instead_of_sending_forever(portal):
    portal.fail_next(100, 429)  # every request refused for its operating time, each block short
    adapter = BitrixAdapter(portal.webhook_url, budget=OperatingBudget(window_seconds=0.05))
    try:
        with pytest.raises(CrmRateLimited) as stopped:
            pull_all(adapter)
    finally:
        adapter.close()
    assert stopped.value.resume_at is not None
    assert portal.stats()["requests_total"] == 4, "the first request and three more after short blocks"


@pytest.mark.parametrize("where", ["command", "request"])
def test_a_long_block_ends_the_run_with_its_position_saved_and_the_next_run_goes_on(tmp_path, where):
    with BitrixEmulator(customers=600, seed=11, today=TODAY) as portal:
        state = State(tmp_path / "state.db")
        pages = []

        def block_mid_pull(_message: str) -> None:  # after the 3rd page is in, the portal refuses deals
            pages.append(1)
            if len(pages) == 3:
                portal.fail_next(1, 429, call="crm.deal.list" if where == "command" else None)

        tasks_before = portal.stats()["objects"]["task"]
        with pytest.raises(CrmRateLimited) as stopped:
            sync(portal, state, progress=block_mid_pull)
        text = str(stopped.value)
        assert "operating-time limit" in text or "OPERATION_TIME_LIMIT" in text
        assert "saved position" in text and stopped.value.exit_code == 1
        assert "\n" not in text and portal.webhook_token not in text
        account = f"bitrix:{portal.host}:{portal.port}"
        saved = state.pull_position(account)
        assert saved is not None and saved["mode"] == "full" and saved["position"]["deals"]["after"] > 0
        assert portal.stats()["objects"]["task"] == tasks_before, "nothing is written on an incomplete pull"

        second = sync(portal, state)
        assert second.stats["pulled"]["resumed"] == 1 and second.stats["written"] > 0
        assert state.pull_position(account) is None
        assert state.counts(account)["purchases"] == truth(portal)["crm.deal.list"]
        assert_each_page_read_once(portal)
        third = sync(portal, state)
        assert third.stats["written"] == 0 and "resumed" not in third.stats["pulled"]
        state.close()
