"""A won deal deleted in Bitrix24 leaves the history (issue 15, item 10): the full re-read drops what the
portal no longer holds (the webhook app drops it at once on ONCRMDEALDELETE: tests/webapp)."""

from __future__ import annotations

import requests

from connector.bitrix import BitrixAdapter
from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook
from tests.conftest import TODAY


def sync(portal, state: State, *, full: bool = False):
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    try:
        return run_sync(adapter, state, load_playbook(), today=TODAY, dry_run=True, full=full), adapter.account
    finally:
        adapter.close()


def test_a_deleted_won_deal_leaves_the_history_on_the_full_re_read(portal, tmp_path):
    state = State(tmp_path / "s.db")
    _report, account = sync(portal, state, full=True)
    history = {p.id: c.id for c in state.customers(account) for p in c.purchases}
    repeat = [d for d, c in history.items() if list(history.values()).count(c) >= 2]  # a repeat buyer's deal
    deal = sorted(repeat, key=int)[len(repeat) // 2]
    r = requests.post(portal.webhook_url + "crm.deal.delete", json={"id": int(deal)}, timeout=10)
    assert r.json()["result"] is True
    report, _ = sync(portal, state, full=True)
    after = {p.id for c in state.customers(account) for p in c.purchases}
    assert deal not in after and after == set(history) - {deal}
    assert report.stats["pulled"]["removed"] >= 1
    customer = next(c for c in report.evaluation.customers if c.customer_id == history[deal])
    assert customer.purchases == sum(1 for d, c in history.items() if c == history[deal]) - 1
