"""The app's own writes come back as portal events: they must not set off syncs of their own, while a
manager's change - even on a card the app has just written - still gets its sync and its written action.
Two real servers (the Bitrix24 emulator and the webhook app), no mocks."""

from __future__ import annotations

import time
from datetime import datetime

import requests
from web_support import admin, tasks_by_marker, wait_for


def runs(app) -> list[dict]:
    return requests.get(app.url + "/status", headers=admin(), timeout=5).json()["runs"]


def settle(portal, app) -> None:
    """Every event delivered and every job done (an echo may set off one more check, then nothing)."""
    for _ in range(3):
        assert portal.app.outbound.wait_idle(15)
        assert app.worker.wait_idle(30), app.worker.last_error


def written_contacts(portal) -> list[int]:
    """Contacts holding the app's segment field: the cards the first sync wrote."""
    return sorted(i for i, c in portal.store.contacts.rows.items() if c.uf.get("UF_CRM_RS_SEGMENT"))


def test_the_apps_own_writes_set_off_no_sync_run(portal, installed):
    settle(portal, installed)
    echoes = [d for d in portal.app.outbound.sent("event") if d["data"]["event"] == "ONCRMCONTACTUPDATE"]
    assert len(echoes) >= len(written_contacts(portal)) > 10  # the card writes did come back as events
    done = runs(installed)
    assert len(done) == 1, [(r["written"], r["requests"]) for r in done]  # the first sync, nothing after
    assert done[0]["written"] > 0 and done[0]["error"] is None
    assert installed.worker.stats["quiet"] >= 1  # the echoes were looked at, and ended there


def test_a_manager_editing_a_card_the_app_just_wrote_still_gets_a_sync(portal, installed):
    contact = written_contacts(portal)[0]
    # the echoes of the first sync may still be arriving. The app takes an event of one record with the `ts`
    # second of another as a resend (connector/bitrix/app.py), so the edit waits for a second of its own
    wait_for(lambda: int(time.time()) > max(int(d["data"]["ts"]) for d in portal.app.outbound.sent("event")))  # any day: the next second
    before = len(runs(installed))
    r = requests.post(portal.webhook_url + "crm.contact.update", timeout=10, json={
        "id": contact, "fields": {"PHONE": [{"VALUE": "+79990001122", "VALUE_TYPE": "WORK"}]}})
    assert r.status_code == 200, r.text
    settle(portal, installed)
    after = runs(installed)
    assert len(after) == before + 1 and after[0]["error"] is None, (before, after, installed.worker.stats)
    state = installed.runtime.open_state()
    try:  # which planned from the card as the manager left it
        card = next(state.customers(installed.runtime.account(), [str(contact)]))
    finally:
        state.close()
    assert "+79990001122" in card.phones


def test_a_manager_closing_a_deal_still_gets_its_task(portal, installed):
    settle(portal, installed)
    contact = written_contacts(portal)[3]
    deal = portal.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
    key = f"v1:{contact}:calendar:{deal}:thanks"  # day 2 after a purchase on 06-13 is today, 06-15
    wait_for(lambda: tasks_by_marker(portal)[key] == 1, timeout=20)
    settle(portal, installed)
    assert len(runs(installed)) == 2 and tasks_by_marker(portal)[key] == 1  # the first sync and the deal's
