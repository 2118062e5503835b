"""The Bitrix24 app against a real portal's strictness (issue 15): robot calls with or without
`auth[application_token]`, answered in seconds from one customer's data; installs by a non-administrator;
deleted deals leaving the history. Two real servers, no mocks."""

from __future__ import annotations

import secrets
from datetime import datetime

import requests
from web_support import admin, post_form, wait_for

from connector.bitrix.app import CALENDAR, CLASSIFY
from connector.bitrix.app_auth import CRM
from connector.state import State
from emulators.bitrix.outbound import php_form


def robot_call(portal, token: str) -> dict:
    return next(d["data"] for d in reversed(portal.app.outbound.sent("robot")) if d["data"]["event_token"] == token)


def won_deal_of(portal) -> tuple[int, int]:
    contact = sorted(portal.store.contacts.rows)[6]
    return contact, portal.add_deal(contact, won=True, amount=2500, closed=datetime(2026, 6, 13, 11, 0))


def test_a_robot_call_without_application_token_is_answered_when_the_portal_confirms_its_token(portal, installed):
    contact, deal = won_deal_of(portal)
    token = portal.app.run_robot(CLASSIFY, f"DEAL_{deal}", application_token=False)
    sent = robot_call(portal, token) if portal.app.outbound.wait_idle(10) else None
    assert sent is not None and "application_token" not in sent["auth"]  # as the docs list the call
    answer = wait_for(lambda: portal.app.returned(token), timeout=15)["return_values"]
    assert answer["segment"] and answer["lifecycle"] in ("new", "active", "sleeping", "lost")
    # and with it, as before
    token = portal.app.run_robot(CALENDAR, f"DEAL_{deal}")
    assert wait_for(lambda: portal.app.returned(token), timeout=15)["return_values"]["planned_actions"] >= 1


def test_forged_robot_calls_are_401_and_never_answered(portal, installed):
    contact, deal = won_deal_of(portal)
    token = portal.app.run_robot(CLASSIFY, f"DEAL_{deal}", application_token=False)
    wait_for(lambda: portal.app.returned(token), timeout=15)
    real = robot_call(portal, token)
    answered = len(portal.app.returns)
    forged = [
        {**real, "auth": {**real["auth"], "access_token": secrets.token_hex(16)}},  # a token the portal never gave
        {**real, "auth": {**real["auth"], "member_id": "f" * 32}},  # a real token, someone else's portal
        {**real, "auth": {**real["auth"], "application_token": "0" * 32}},  # a wrong application_token
        {**real, "auth": {"member_id": real["auth"]["member_id"]}},  # nothing to check at all
    ]
    for body in forged:
        body = {**body, "event_token": "x|y|" + secrets.token_hex(4)}
        r = post_form(installed.url + "/bitrix/robot", php_form(body))
        assert r.status_code == 401, (r.status_code, r.text)
    assert installed.robots.wait_idle(10) and len(portal.app.returns) == answered


def test_a_robot_is_answered_in_seconds_while_a_slow_sync_is_still_running(portal, installed):
    contact, deal = won_deal_of(portal)
    assert installed.worker.wait_idle(30)
    syncs = installed.worker.stats["syncs"]
    portal.set_latency(4000, call="crm.product.list")  # every sync reads the catalogue; a robot never does
    portal.touch_purchase(2, comments="starts a slow sync")
    wait_for(lambda: installed.worker.snapshot()["busy"], timeout=10)
    token = portal.app.run_robot(CLASSIFY, f"DEAL_{deal}")
    wait_for(lambda: portal.app.returned(token), timeout=15)
    assert installed.worker.snapshot()["busy"] and installed.worker.stats["syncs"] == syncs  # the sync still runs
    portal.clear_faults()
    assert installed.worker.wait_idle(60)


def test_a_non_administrators_install_binds_events_skips_robots_and_says_why(portal, webapp):
    portal.set_rights(admin=False)
    assert portal.app.install(webapp.url + "/bitrix/install") == 200
    assert webapp.worker.wait_idle(30)
    stored = webapp.installs.get(CRM)
    assert stored["robots"] == [] and portal.app.robots() == {}
    assert any("administrator" in line and "robots" in line for line in stored["missing"])
    assert {b["event"] for b in portal.app.bindings()} >= {"ONCRMDEALADD", "ONCRMDEALDELETE"}
    status = requests.get(webapp.url + "/status", headers=admin(), timeout=5).json()
    assert status["installs"]["bitrix"]["missing"] == stored["missing"]
    assert status["runs"] and status["runs"][0]["error"] is None  # the first sync ran all the same


def snapshot_purchases(webapp, portal) -> set[str]:
    state = State(webapp.settings.state_path)
    try:
        return {p.id for c in state.customers(f"{CRM}:{portal.host}:{portal.port}") for p in c.purchases}
    finally:
        state.close()


def test_a_won_deal_deleted_in_the_portal_leaves_the_history_at_once(portal, installed):
    contact, deal = won_deal_of(portal)
    wait_for(lambda: str(deal) in snapshot_purchases(installed, portal), timeout=20)
    assert installed.worker.wait_idle(30)
    r = requests.post(portal.webhook_url + "crm.deal.delete", json={"id": deal}, timeout=10)
    assert r.json()["result"] is True
    assert portal.app.outbound.wait_idle(10)
    event = portal.app.outbound.sent("event")[-1]
    assert event["data"]["event"] == "ONCRMDEALDELETE" and event["status"] == 200
    wait_for(lambda: str(deal) not in snapshot_purchases(installed, portal), timeout=20)
    assert installed.worker.wait_idle(30)
    assert str(deal) not in snapshot_purchases(installed, portal)  # the sync after it did not bring it back
