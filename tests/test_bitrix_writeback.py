"""Bitrix24-only write-back protocol: card writes ride inside `batch` requests, never one call per card.

The write-back scenarios every CRM shares (cards, repeat deals, automation starts, refusals, recovery)
live in tests/contract/. `listing` is also used by other Bitrix24 tests.
"""

from __future__ import annotations

from datetime import timedelta

import requests

from connector.bitrix import BitrixAdapter, batching
from connector.bitrix.client import BATCH_LIMIT
from connector.model import customer_of_key
from connector.state import State
from connector.sync import run_sync
from emulators.bitrix import BitrixEmulator
from playbooks import load_playbook
from tests.conftest import TODAY


def call(portal, method: str, params: dict | None = None) -> dict:
    r = requests.post(portal.webhook_url + method, json=params or {}, timeout=30)
    assert r.status_code == 200, (method, r.status_code, r.text[:300])
    return r.json()


def listing(portal, method: str, params: dict | None = None, key: str | None = None) -> list[dict]:
    """Every row of a list method, page by page (start = 0, 50, ...)."""
    rows, start = [], 0
    while True:
        answer = call(portal, method, {**(params or {}), "start": start})
        page = answer["result"][key] if key else answer["result"]
        rows += page
        if "next" not in answer:
            return rows
        start = answer["next"]


def test_changed_cards_are_written_inside_batches_never_one_request_per_card(portal, tmp_path):
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    try:
        adapter.install()
        state = State(tmp_path / "s.db")
        run_sync(adapter, state, load_playbook(), today=TODAY)
        portal.reset_stats()
        later = run_sync(adapter, state, load_playbook(), today=TODAY + timedelta(days=120))
    finally:
        adapter.close()
    traffic = portal.stats()
    assert later.stats["fields_written"] > 0
    assert traffic["commands"]["crm.contact.update"] == later.stats["fields_written"]
    assert "crm.contact.update" not in traffic["requests"]


def test_a_runs_writes_are_read_back_a_slice_at_a_time_for_the_same_requests(tmp_path, monkeypatch):
    """The read-back of a run's writes (connector.sync.settle_race) holds one slice's answers at a time
    (at 200,000 customers every task's description at once was +150 MB): it still finds every key,
    and slices of whole batches cost no extra request."""
    with BitrixEmulator(customers=400, seed=7, today=TODAY) as portal:
        _read_back_in_slices(portal, tmp_path, monkeypatch)


def _read_back_in_slices(portal, tmp_path, monkeypatch) -> None:
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    try:
        report = run_sync(adapter, State(tmp_path / "s.db"), load_playbook(), today=TODAY)
        by_kind: dict[str, set[str]] = {}
        for key, ref in report.written.items():
            by_kind.setdefault(ref.kind, set()).add(customer_of_key(key))
        assert max(len(customers) for customers in by_kind.values()) > 50, "a kind read back in two slices"
        portal.reset_stats()
        whole = adapter.settle_written(report.written)
        whole_requests = portal.stats()["requests_total"]
        monkeypatch.setattr(batching, "SLICE", BATCH_LIMIT)  # one batch a slice
        portal.reset_stats()
        sliced = adapter.settle_written(report.written)
        sliced_requests = portal.stats()["requests_total"]
    finally:
        adapter.close()
    assert sliced == whole == report.written
    assert sliced_requests == whole_requests
