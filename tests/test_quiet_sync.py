"""The quiet check an event's sync makes first (connector/quiet.py), against the Bitrix24 emulator over
HTTP: the app's own card writes leave nothing to do; a manager's edit, a new day or another playbook
always do, even when the run after the check never came."""

from __future__ import annotations

from datetime import timedelta

import requests

from connector.bitrix import BitrixAdapter
from connector.crm import PullPage
from connector.quiet import nothing_to_do
from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook
from tests.conftest import TODAY


def synced(portal, tmp_path) -> tuple[BitrixAdapter, State]:
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    adapter.install()
    state = State(tmp_path / "s.db")
    assert run_sync(adapter, state, load_playbook(), today=TODAY).stats["fields_written"] > 0
    return adapter, state


def runs(state: State) -> int:
    return len(state.last_runs(100))


def test_the_apps_own_card_writes_leave_nothing_to_do(portal, tmp_path):
    adapter, state = synced(portal, tmp_path)
    try:
        written = [i for i, c in portal.store.contacts.rows.items() if c.uf.get("UF_CRM_RS_SEGMENT")]
        assert written  # changed in the portal since the run's cursor: the incremental pull reads them again
        assert nothing_to_do(adapter, state, TODAY, "") is True
        assert nothing_to_do(adapter, state, TODAY, "") is True and runs(state) == 1
        assert nothing_to_do(adapter, state, TODAY + timedelta(days=1), "") is False  # a new day makes steps due
        assert nothing_to_do(adapter, state, TODAY, "2") is False  # a playbook saved since
    finally:
        adapter.close()
        state.close()


def test_a_managers_edit_is_planned_from_even_when_the_run_after_the_check_never_came(portal, tmp_path):
    adapter, state = synced(portal, tmp_path)
    try:
        contact = next(i for i, c in portal.store.contacts.rows.items() if c.uf.get("UF_CRM_RS_SEGMENT"))
        r = requests.post(portal.webhook_url + "crm.contact.update", timeout=10, json={
            "id": contact, "fields": {"EMAIL": [{"VALUE": "manager-typed@example.org", "VALUE_TYPE": "WORK"}]}})
        assert r.status_code == 200, r.text
        assert nothing_to_do(adapter, state, TODAY, "") is False  # the change, not planned from yet
        assert nothing_to_do(adapter, state, TODAY, "") is False  # and again, until a run plans from it
        run_sync(adapter, state, load_playbook(), today=TODAY)
        assert nothing_to_do(adapter, state, TODAY, "") is True
    finally:
        adapter.close()
        state.close()


def test_a_purchase_dropped_outside_a_pull_is_planned_from(portal, tmp_path):
    """A deal deleted in the portal leaves the snapshot at once (its ONCRMDEALDELETE, connector/bitrix/app.py),
    with no pull and no cursor moved: until a run plans from that, no event's sync is skipped."""
    adapter, state = synced(portal, tmp_path)
    try:
        deal = next(iter(state.customers(adapter.account))).purchases[0].id
        state.absorb(adapter.account, PullPage(removed_purchase_ids=[deal]), run_id=0)
        assert nothing_to_do(adapter, state, TODAY, "") is False
    finally:
        adapter.close()
        state.close()
