"""Bitrix24-only write-back protocol: card writes ride inside `batch` requests, never one call per card.

The write-back scenarios every CRM shares (cards, repeat deals, automation starts, refusals, recovery)
live in tests/contract/. `listing` is also used by other Bitrix24 tests.
"""

from __future__ import annotations

from datetime import timedelta

import requests

from connector.bitrix import BitrixAdapter
from connector.state import State
from connector.sync import run_sync
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
