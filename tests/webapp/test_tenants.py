"""Three portals sharing one app, one `serve`: each is a tenant with its own tokens, state and playbook, and
a request signed for one tenant never reads or writes another. Real HTTP only: the emulated portals install
the app through their control API (`POST /_emulator/app/install`) and send their own events, robot calls
and page openings. The tests that prove isolation run on both engines of the state (SQLite files, PostgreSQL
schemas); the others on SQLite."""

from __future__ import annotations

import pytest
import requests
from pages_support import ADMIN_USER, hidden_fields, open_form, post
from web_support import CUSTOMERS, TODAY, admin, bitrix_settings, post_form, tasks_by_marker, wait_for

from connector import tenants
from connector.state import State
from connector.webapp import WebApp
from connector.webapp.pages import versions
from emulators.bitrix import BitrixEmulator
from emulators.bitrix.outbound import php_form
from tests.store_engines import ENGINES, fresh_schema

CLIENT_ID, SECRET = "app.6a7b8c9d0e1f23.45678901", "one-marketplace-apps-secret-abcdef0123"


def state_of(app: WebApp, tenant: str) -> State:
    return State(tenants.state_target(app.settings, tenant))


def runs_of(app: WebApp, tenant: str) -> list[dict]:
    state = state_of(app, tenant)
    try:
        return state.last_runs(50)
    finally:
        state.close()


def checks(app: WebApp, tenant: str) -> int:
    """How often the tenant's worker synced, or checked and found nothing but the app's own writes."""
    stats = app.tenants[tenant].worker.stats
    return stats["syncs"] + stats["quiet"]


def settled(app: WebApp, portals) -> None:
    for emu in portals:
        assert emu.app.outbound.wait_idle(15)
    for host in list(app.tenants.values()):
        assert host.worker.wait_idle(60) and host.robots.wait_idle(30), host.worker.last_error



BOTH = pytest.mark.parametrize("hosted", ENGINES, indirect=True)  # isolation: proven on each engine
SQLITE = pytest.mark.parametrize("hosted", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def hosted(request, tmp_path_factory):
    """Portals A, B, C (seeded alike: one shop, three portals) with one app; A is the `.env`'s (default).
    Its param is the state's engine: on PostgreSQL every tenant is a schema of one database."""
    tmp = tmp_path_factory.mktemp("tenants")
    extra = {}
    if request.param == "postgresql":
        extra["STATE_URL"] = fresh_schema(request.getfixturevalue("pg_url"), "tenants")
    portals = [BitrixEmulator(customers=CUSTOMERS, seed=7, today=TODAY, app_client_id=CLIENT_ID,
                              app_client_secret=SECRET).start() for _ in range(3)]
    app = WebApp(bitrix_settings(portals[0], tmp, **extra), port=0, today=lambda: TODAY).start()
    try:
        for emu in portals:
            r = requests.post(f"{emu.base_url}/_emulator/app/install", timeout=30,
                              json={"handler": app.url + "/bitrix/install", "app_url": app.url + "/bitrix/app"})
            assert r.status_code == 200 and r.json()["status"] == 200
            wait_for(lambda emu=emu: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=60)
        settled(app, portals)
        yield app, portals
    finally:
        app.stop(timeout=30)
        for emu in portals:
            emu.stop()


@BOTH
def test_each_portal_is_a_tenant_with_its_own_tokens_state_and_first_sync(hosted):
    app, (a, b, c) = hosted
    ids = [app.registry.tenant_of("bitrix", emu.app.member_id) for emu in (a, b, c)]
    assert ids == ["default", b.app.member_id, c.app.member_id]
    for tenant, emu in zip(ids, (a, b, c), strict=True):
        stored = app.tenants[tenant].installs.get("bitrix")
        assert stored["member_id"] == emu.app.member_id and stored["domain"] == emu.app.domain
        assert "contact field UF_CRM_RS_SEGMENT" in stored["fields"]  # prepared as `install` does
        runs = runs_of(app, tenant)
        assert runs and {r["account"] for r in runs} == {f"bitrix:{emu.app.domain}"}  # its own portal only
        assert runs[-1]["stats"]["written"] > 0 and sum(tasks_by_marker(emu).values()) > 0
    # one shop, three portals: each got the same plan, written once
    assert tasks_by_marker(a) == tasks_by_marker(b) == tasks_by_marker(c)
    assert len({str(tenants.state_target(app.settings, t)) for t in ids}) == 3


@BOTH
def test_an_event_signed_for_one_tenant_never_reaches_another(hosted):
    app, (a, b, c) = hosted
    with b.store.lock:
        won = next(d.id for d in sorted(b.store.deals.rows.values(), key=lambda d: d.id) if d.semantic == "S")
    b.touch_purchase(won, title="a real event of portal B")  # a purchase renamed: a change a sync reads
    settled(app, (a, b, c))
    real = b.app.outbound.sent("event")[-1]["data"]
    a_token = app.tenants["default"].installs.get("bitrix")["application_token"]
    before = {t: len(runs_of(app, t)) for t in app.tenants}
    forged = [
        {**real, "auth": {**real["auth"], "application_token": a_token}},  # B's member_id, A's token
        {**real, "auth": {**real["auth"], "member_id": a.app.member_id}},  # A's member_id, B's token
        {**real, "auth": {**real["auth"], "member_id": "f" * 32}},  # a portal nobody installed
        {**real, "auth": {**real["auth"], "member_id": "../../etc"}},
    ]
    for body in forged:
        assert post_form(app.url + "/bitrix/events", php_form(body)).status_code == 401
        robot = {**body, "event_token": "x|y|z", "code": "rs_classify_customer", "document_id": ["crm", "D", "DEAL_1"]}
        assert post_form(app.url + "/bitrix/robot", php_form(robot)).status_code == 401
    settled(app, (a, b, c))
    assert {t: len(runs_of(app, t)) for t in app.tenants} == before
    # the genuine one (a resend of a new ts) has B's worker look at B's portal (a sync, or its check that
    # finds the change read already: connector.quiet), and B only
    looked = {t: checks(app, t) for t in app.tenants}
    fresh = {**real, "ts": str(int(real["ts"]) + 1)}
    assert post_form(app.url + "/bitrix/events", php_form(fresh)).json()["status"] == "queued"
    settled(app, (a, b, c))
    after = {t: checks(app, t) for t in app.tenants}
    assert after[b.app.member_id] > looked[b.app.member_id]
    assert after["default"] == looked["default"] and after[c.app.member_id] == looked[c.app.member_id]
    assert {t: len(runs_of(app, t)) for t in app.tenants if t != b.app.member_id} == {
        t: n for t, n in before.items() if t != b.app.member_id}


@SQLITE
def test_a_robot_of_one_portal_is_answered_from_its_own_data_on_its_own_portal(hosted):
    app, (a, b, c) = hosted
    with c.store.lock:
        deal = next(d.id for d in sorted(c.store.deals.rows.values(), key=lambda d: d.id)
                    if d.semantic == "S" and d.contact_ids)
    returns = [len(emu.app.returns) for emu in (a, b)]
    token = c.app.run_robot("rs_classify_customer", f"DEAL_{deal}")
    answer = wait_for(lambda: c.app.returned(token), timeout=30)["return_values"]
    assert answer["segment"] and answer["rfm"]
    settled(app, (a, b, c))
    assert [len(emu.app.returns) for emu in (a, b)] == returns


@BOTH
def test_pages_and_settings_save_stay_inside_the_tenant(hosted):
    app, (a, b, c) = hosted
    opened = open_form(b, user_id=ADMIN_USER)
    assert post(opened).status_code == 200
    # B's own opening with A's (or an unknown) member_id: nothing shown
    assert post(opened, {"member_id": a.app.member_id}).status_code == 401
    assert post(opened, {"member_id": "0" * 32}).status_code == 401
    fields = hidden_fields(post(opened).text)
    settings = app.url + "/bitrix/app/settings"
    saved = requests.post(settings, data={**fields, "action": "save", "guards.holdout.percent": "7"}, timeout=120)
    assert saved.status_code == 200
    for tenant, count in (("default", 0), (b.app.member_id, 1), (c.app.member_id, 0)):
        state = state_of(app, tenant)
        try:
            assert len(versions.listing(state)) == count, tenant
        finally:
            state.close()
    assert app.tenants[b.app.member_id].runtime.playbook_version == 1
    assert app.tenants["default"].runtime.playbook_version == 0
    # B's form (its AUTH_ID, its csrf) with A's member_id cannot save into A
    forged = requests.post(settings, data={**fields, "member_id": a.app.member_id, "action": "save",
                                           "guards.holdout.percent": "9"}, timeout=120)
    assert forged.status_code == 401 and app.tenants["default"].runtime.playbook_version == 0


@SQLITE
def test_status_shows_the_default_tenants_runs_and_names_every_tenant(hosted):
    app, (a, b, c) = hosted
    body = requests.get(app.url + "/status", headers=admin(), timeout=10).json()
    assert {r["account"] for r in body["runs"]} == {f"bitrix:{a.app.domain}"}
    assert body["tenants"] == sorted(["default", b.app.member_id, c.app.member_id])
    assert body["installs"]["bitrix"]["portal"] == a.app.domain


def test_installs_from_portals_not_yet_known_are_few_at_once(portal, installed):
    """Made-up member_ids cost a check with the auth server each: at most five wait for it at once."""
    portal.set_latency(1500, call="oauth.token")  # the auth server is slow to answer: the checks are still running
    try:
        answers = []
        for i in range(7):
            made_up = {"event": "ONAPPINSTALL", "auth": {"access_token": "a" * 32, "refresh_token": f"{i}" * 32,
                                                          "member_id": f"{i}" * 32, "application_token": "c" * 32}}
            answers.append(post_form(installed.url + "/bitrix/install", php_form(made_up)).status_code)
        assert answers == [200] * 5 + [429] * 2
    finally:
        portal.set_latency(0, call="oauth.token")
    for i in range(5):
        assert installed.tenants[f"{i}" * 32].worker.wait_idle(30)
    assert [t["tenant"] for t in installed.registry.tenants()] == ["default"]  # none confirmed, none kept
