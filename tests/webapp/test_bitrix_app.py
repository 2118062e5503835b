"""The Bitrix24 app end to end: the emulator installs it, sends it events and runs its robots;
the app answers at once and the worker writes into the portal. No mocks: two real servers."""

from __future__ import annotations

import re
from datetime import datetime

import requests
from web_support import TODAY, admin, post_form, tasks_by_marker, wait_for

from emulators.bitrix.outbound import php_form


def app_call(portal, method: str, params: dict | None = None) -> dict:
    """The portal's own API, as the installed app (its own fresh token)."""
    r = requests.post(f"{portal.base_url}/rest/{method}", json={"auth": portal.app.issue_token(), **(params or {})},
                      timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def runs(app) -> list[dict]:
    return requests.get(app.url + "/status", headers=admin(), timeout=5).json()["runs"]


def test_install_verifies_tokens_binds_events_and_registers_robots(portal, installed):
    stored = installed.installs.get("bitrix")
    install_form = portal.app.outbound.sent("install")[-1]["data"]["auth"]
    assert stored["member_id"] == portal.app.member_id
    assert stored["application_token"] == install_form["application_token"]
    # verified by renewing the install's refresh token with our client secret: the pair stored is the new one
    assert portal.app.refreshes == 1 and stored["refresh_token"] != install_form["refresh_token"]
    handler = installed.public_url + "/bitrix/events"
    bound = {(b["event"], b["handler"]) for b in app_call(portal, "event.get")}
    assert {("ONCRMDEALADD", handler), ("ONCRMDEALUPDATE", handler), ("ONAPPUNINSTALL", handler)} <= bound
    assert app_call(portal, "bizproc.robot.list") == ["rs_classify_customer", "rs_post_purchase_calendar"]
    robot = portal.app.robots()["rs_classify_customer"]
    assert robot["HANDLER"] == installed.public_url + "/bitrix/robot" and "segment" in robot["RETURN_PROPERTIES"]
    # prepared as `repeat-sales install` does: the card fields are there
    assert "UF_CRM_RS_SEGMENT" in {f["FIELD_NAME"] for f in app_call(portal, "crm.contact.userfield.list")}
    assert "contact field UF_CRM_RS_SEGMENT" in stored["fields"]
    first, *echoes = reversed(runs(installed))  # its own card writes come back as events: syncs writing nothing
    assert first["written"] > 0 and first["error"] is None and all(r["written"] == 0 for r in echoes)


def test_a_won_deal_event_writes_its_task_within_seconds_and_resends_change_nothing(portal, installed):
    contact = sorted(portal.store.contacts.rows)[3]
    deal = portal.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
    key = f"v1:{contact}:calendar:{deal}:thanks"  # day 2 after a purchase on 06-13 is today, 06-15
    wait_for(lambda: tasks_by_marker(portal)[key] == 1, timeout=15)
    assert installed.worker.wait_idle(15)
    before = (len(runs(installed)), dict(tasks_by_marker(portal)))
    event = next(d["data"] for d in reversed(portal.app.outbound.sent("event"))
                 if d["data"]["data"]["FIELDS"]["ID"] == str(deal))
    for _ in range(3):  # the CRM resends: answered, deduplicated, no sync
        r = post_form(installed.url + "/bitrix/events", php_form(event))
        assert r.status_code == 200 and r.json().get("duplicate") is True
    older = {**event, "ts": str(int(event["ts"]) - 100)}  # an out-of-order old delivery: a sync, no new task
    assert post_form(installed.url + "/bitrix/events", php_form(older)).status_code == 200
    assert installed.worker.wait_idle(15)
    assert dict(tasks_by_marker(portal)) == before[1] and max(before[1].values()) == 1
    assert len(runs(installed)) <= before[0] + 1


def test_a_burst_of_events_is_coalesced_into_few_syncs(portal, installed):
    syncs = installed.worker.stats["syncs"]
    for deal_id in range(1, 31):
        portal.touch_purchase(deal_id, comments=f"edit {deal_id}")
    assert portal.app.outbound.wait_idle(10)
    assert installed.worker.wait_idle(15)
    assert installed.worker.stats["syncs"] - syncs <= 5  # 30 events -> a few syncs (one or two when idle)
    assert installed.worker.stats["coalesced"] >= 15


def test_robots_answer_through_event_send(portal, installed):
    contact = sorted(portal.store.contacts.rows)[5]
    deal = portal.add_deal(contact, won=True, amount=3100, closed=datetime(2026, 6, 13, 10, 0))
    token = portal.app.run_robot("rs_classify_customer", f"DEAL_{deal}")
    answer = wait_for(lambda: portal.app.returned(token), timeout=15)["return_values"]
    assert re.fullmatch(r"[1-5]{3}", answer["rfm"]) and answer["segment"] and answer["tier"]
    assert answer["lifecycle"] in ("new", "active", "sleeping", "lost") and answer["value"] in ("vip", "middle", "base")

    token = portal.app.run_robot("rs_post_purchase_calendar", f"DEAL_{deal}")
    answer = wait_for(lambda: portal.app.returned(token), timeout=15)["return_values"]
    assert answer == {"planned_actions": 1, "next_step_date": "2026-06-20"}  # thanks now, feedback on day 7
    # answered first; the sync the call asked for writes the step right after
    wait_for(lambda: tasks_by_marker(portal)[f"v1:{contact}:calendar:{deal}:thanks"] == 1, timeout=15)

    call = next(d["data"] for d in reversed(portal.app.outbound.sent("robot")) if d["data"]["event_token"] == token)
    sent = len(portal.app.returns)
    r = post_form(installed.url + "/bitrix/robot", php_form(call))  # a resent robot call is not answered twice
    assert r.json().get("duplicate") is True and installed.robots.wait_idle(10) and len(portal.app.returns) == sent


def test_forged_requests_are_refused_and_change_nothing(portal, installed):
    portal.touch_purchase(2, comments="one real event to copy")
    assert portal.app.outbound.wait_idle(10) and installed.worker.wait_idle(15)
    real = portal.app.outbound.sent("event")[-1]["data"]
    stats, stored, count = dict(installed.worker.stats), installed.installs.get("bitrix"), len(runs(installed))
    forged = [
        ({**real, "auth": {**real["auth"], "application_token": "0" * 32}}, 401),
        ({**real, "auth": {**real["auth"], "member_id": "f" * 32}}, 401),
        ({k: v for k, v in real.items() if k != "auth"}, 401),
        ({**real, "ts": "1", "auth": {"member_id": real["auth"]["member_id"]}}, 401),
    ]
    for body, status in forged:
        assert post_form(installed.url + "/bitrix/events", php_form(body)).status_code == status
        robot = {**body, "event_token": "x|y|z", "code": "rs_classify_customer", "document_id": ["crm", "D", "DEAL_1"]}
        assert post_form(installed.url + "/bitrix/robot", php_form(robot)).status_code == status
    # another portal's install with made-up tokens: the auth server does not confirm them, no tenant is made
    other = {"event": "ONAPPINSTALL", "auth": {"access_token": "a" * 32, "refresh_token": "b" * 32,
                                                "member_id": "e" * 32, "application_token": "c" * 32}}
    assert post_form(installed.url + "/bitrix/install", php_form(other)).status_code == 200
    assert installed.tenants["e" * 32].worker.wait_idle(15)
    assert [t["tenant"] for t in installed.registry.tenants()] == ["default"]
    # this portal's member_id with made-up tokens: the auth server does not renew them, nothing is stored
    same = {**other, "auth": {**other["auth"], "member_id": real["auth"]["member_id"]}}
    assert post_form(installed.url + "/bitrix/install", php_form(same)).status_code == 200
    assert installed.worker.wait_idle(15)
    assert installed.installs.get("bitrix") == stored and len(runs(installed)) == count
    assert installed.worker.stats["syncs"] == stats.get("syncs") and installed.worker.stats["job_errors"] == 1
    # a replayed genuine install (its refresh token is spent) is a duplicate
    replay = portal.app.outbound.sent("install")[-1]["data"]
    assert post_form(installed.url + "/bitrix/install", php_form(replay)).json().get("duplicate") is True


def test_an_expired_access_token_is_renewed_and_the_new_pair_stored_first(portal, installed):
    before = installed.installs.get("bitrix")
    portal.app.expire_access_tokens()
    contact = sorted(portal.store.contacts.rows)[7]
    deal = portal.add_deal(contact, won=True, amount=999, closed=datetime(2026, 6, 13, 9, 0))
    wait_for(lambda: tasks_by_marker(portal)[f"v1:{contact}:calendar:{deal}:thanks"] == 1, timeout=15)
    after = installed.installs.get("bitrix")
    assert after["refresh_token"] != before["refresh_token"] and portal.app.refreshes == 2


def test_a_full_queue_is_503_and_the_uninstall_event_forgets_the_install(portal, installed):
    portal.app.uninstall()  # ONAPPUNINSTALL carries only the application_token: verified, then the install goes
    wait_for(lambda: installed.installs.get("bitrix") is None, timeout=10)
    real = portal.app.outbound.sent("event")[-1]["data"]
    assert real["event"] == "ONAPPUNINSTALL"
    assert post_form(installed.url + "/bitrix/events", php_form({**real, "event": "ONCRMDEALUPDATE",
                                                                 "data": {"FIELDS": {"ID": "1"}}})).status_code == 401
    # reinstall, then stop the worker: a verified event cannot be queued -> 503, and it is not marked seen
    assert portal.app.install(installed.url + "/bitrix/install") == 200
    assert installed.worker.wait_idle(30) and installed.installs.get("bitrix")
    installed.worker.stop(10)
    portal.touch_purchase(3, comments="after stop")
    assert portal.app.outbound.wait_idle(10)
    assert portal.app.outbound.sent("event")[-1]["status"] == 503
    health = requests.get(installed.url + "/healthz", timeout=5)
    assert (health.status_code, health.json()) == (503, {"status": "worker stopped"})
    assert TODAY.isoformat() == "2026-06-15"


def test_unverifiable_installs_store_nothing_and_are_rate_limited(portal, webapp):
    answers = []
    for i in range(7):
        form = {"event": "ONAPPINSTALL", "auth": {"access_token": f"a{i}" * 8, "refresh_token": f"r{i}" * 8,
                                                   "member_id": portal.app.member_id, "application_token": f"t{i}" * 8}}
        answers.append(post_form(webapp.url + "/bitrix/install", php_form(form)).status_code)
    assert answers == [200] * 5 + [429] * 2  # each check costs an auth-server call: at most 5 per 10 minutes
    assert webapp.worker.wait_idle(15)
    assert webapp.installs.get("bitrix") is None and webapp.worker.stats["job_errors"] == 5
    assert portal.app.bindings() == [] and webapp.worker.stats["syncs"] == 0


def test_an_install_still_being_answered_outlives_another_portals_install(portal, installed):
    """Two portals installing at once: the first's request is still being answered (its job not yet
    stored) when the second's arrives. The second must not take the first for a refused install and drop
    its host - with 100 portals installing, a worker then failed on the first's dropped schema."""
    form = {"event": "ONAPPINSTALL", "auth": {"access_token": "a" * 32, "refresh_token": "r" * 32,
                                               "member_id": "second0portal", "application_token": "t" * 32}}
    with installed.answering("first0portal", unverified=True) as first:
        assert post_form(installed.url + "/bitrix/install", php_form(form)).status_code == 200
        assert installed.tenants.get("first0portal") is first and first.worker.alive()
    assert installed.tenant("second0portal").worker.wait_idle(15)
    assert "second0portal" not in installed.tenants or not installed.tenant("second0portal").installs.get("bitrix")
