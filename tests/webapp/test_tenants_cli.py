"""`repeat-sales tenants list|show|remove` and `sync --tenant ID | --all-tenants` on two portals that installed
one app through `serve` (real HTTP); the CLI runs as a user runs it, in its own process."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest
import requests
from pydantic import SecretStr
from web_support import CUSTOMERS, TODAY, bitrix_settings, tasks_by_marker, wait_for, write_playbook

from connector import tenant_settings, tenants
from connector.feedback import answers_of
from connector.state import State
from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator
from tests.conftest import ROOT, run_cli
from tests.store_engines import ENGINES, fresh_schema

CLIENT_ID, SECRET = "app.1a2b3c4d5e6f70.81726354", "another-marketplace-apps-secret-xyz789"


BOTH = pytest.mark.parametrize("two", ENGINES, indirect=True)
SQLITE = pytest.mark.parametrize("two", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def two(request, tmp_path_factory):
    """Portals A (the default tenant) and B installed the app; `serve` stopped, the portals still up.
    Its param is the state's engine (PostgreSQL: each tenant a schema)."""
    tmp = tmp_path_factory.mktemp("tenants-cli")
    extra = {}
    if request.param == "postgresql":
        extra["STATE_URL"] = fresh_schema(request.getfixturevalue("pg_url"), "tenantscli")
    portals = [BitrixEmulator(customers=CUSTOMERS, seed=7, today=TODAY, app_client_id=CLIENT_ID,
                              app_client_secret=SECRET).start() for _ in range(2)]
    settings = bitrix_settings(portals[0], tmp, **extra)
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    try:
        for emu in portals:
            requests.post(f"{emu.base_url}/_emulator/app/install", json={"handler": app.url + "/bitrix/install"},
                          timeout=30).raise_for_status()
            wait_for(lambda emu=emu: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=60)
        for host in app.tenants.values():
            assert host.worker.wait_idle(60), host.worker.last_error
    finally:
        app.stop(timeout=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=CLIENT_ID, BITRIX_APP_CLIENT_SECRET=SECRET,
               BITRIX_OAUTH_URL=portals[0].base_url, STATE_URL=settings.STATE_URL, PLAYBOOK=write_playbook(tmp),
               PLAYBOOK_LANG="en", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    yield portals, settings, env
    for emu in portals:
        emu.stop()


def cli(env, *args):
    result = run_cli(list(args), env)
    return result.returncode, result.stdout, result.stderr


@BOTH
def test_tenants_list_and_show_name_every_portal_without_a_secret(two):
    (a, b), settings, env = two
    code, out, err = cli(env, "tenants", "list", "--format", "json")
    assert code == 0, err
    listed = json.loads(out)["tenants"]
    assert [(t["tenant"], t["portal"]) for t in listed] == [("default", a.app.domain), (b.app.member_id, b.app.domain)]
    code, out, _ = cli(env, "tenants", "list")
    assert code == 0 and "Tenants: 2" in out and b.app.member_id in out and a.app.domain in out
    code, out, err = cli(env, "tenants", "show", b.app.member_id, "--format", "json")
    shown = json.loads(out)
    state = State(tenants.state_target(settings, b.app.member_id))
    all_runs = state.last_runs(50)
    state.close()
    assert code == 0 and shown["portal"] == b.app.domain and shown["fields"] > 0 and shown["runs"]
    assert ("schema rs_" in shown["state"] or "_tenant_" in shown["state"]) == settings.STATE_URL.startswith("postgresql")
    assert "ONCRMDEALADD" in shown["events"] and [r["id"] for r in shown["runs"]] == [r["id"] for r in all_runs][:5]
    assert all_runs[-1]["stats"]["written"] > 0  # its first sync wrote its plan
    stored = tenants.registry(settings).for_tenant(b.app.member_id).get("bitrix")
    for secret in (stored["access_token"], stored["refresh_token"], stored["application_token"]):
        assert secret not in out
    for bad, words in (("f" * 32, "no tenant"), ("../state", "not a tenant id")):
        code, _, err = cli(env, "tenants", "show", bad)
        assert code == 2 and words in err and "Traceback" not in err


@SQLITE
def test_sync_one_tenant_or_all_of_them(two):
    (a, b), settings, env = two
    contact = sorted(b.store.contacts.rows)[3]
    deal = b.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
    key = f"v1:{contact}:calendar:{deal}:thanks"
    a_tasks = dict(tasks_by_marker(a))
    code, out, err = cli(env, "sync", "--tenant", b.app.member_id, "--format", "json")
    assert code == 0, err
    (only,) = json.loads(out)["tenants"]
    assert only["tenant"] == b.app.member_id and only["stats"]["written"] >= 1
    assert tasks_by_marker(b)[key] == 1 and dict(tasks_by_marker(a)) == a_tasks  # B's deal, B's task only
    code, out, err = cli(env, "sync", "--all-tenants", "--format", "json")
    assert code == 0, err
    done = json.loads(out)["tenants"]
    assert [t["tenant"] for t in done] == ["default", b.app.member_id]
    assert [t["stats"]["written"] for t in done] == [0, 0]  # each ran before: nothing doubled
    code, out, err = cli(env, "sync", "--all-tenants")
    assert code == 0 and f"tenant {b.app.member_id} ({b.app.domain})" in out


@SQLITE
def test_report_of_one_tenant_reads_its_own_state(two):
    (a, b), settings, env = two
    code, out, err = cli(env, "report", "--tenant", b.app.member_id, "--as-of", TODAY.isoformat())
    assert code == 0, err
    assert f"bitrix:{b.app.domain}" in out and a.app.domain not in out
    code, out, err = cli(env, "report", "--as-of", TODAY.isoformat())
    assert code == 0 and f"bitrix:{a.app.domain}" in out and b.app.domain not in out, err
    for bad, words in (("f" * 32, "no tenant"), ("../x", "not a tenant id")):
        code, _, err = cli(env, "report", "--tenant", bad)
        assert code == 2 and words in err and "Traceback" not in err


@SQLITE
def test_a_feedback_answer_goes_to_the_tenant_whose_address_it_was_sent_to(two):
    """A tenant with its own FEEDBACK_SECRET has its own /feedback/<secret> address on the shared `serve`."""
    (a, b), settings, env = two
    a_secret, b_secret = "feedback-address-of-portal-a-0123", "feedback-address-of-portal-b-4567"
    registry = tenants.registry(settings)
    tenant_settings.set_values(settings, registry, b.app.member_id, [f"FEEDBACK_SECRET={b_secret}"])
    app = WebApp(settings.model_copy(update={"FEEDBACK_SECRET": SecretStr(a_secret)}), port=0,
                 today=lambda: TODAY).start()
    try:
        deal = str(min(b.store.deals.rows))
        for secret, score in ((b_secret, 9), (a_secret, 3)):
            r = requests.post(f"{app.url}/feedback/{secret}", json={"purchase_id": deal, "score": score}, timeout=30)
            assert r.status_code == 200, r.text
        assert requests.post(f"{app.url}/feedback/not-{b_secret}", json={"purchase_id": deal, "score": 1},
                             timeout=30).status_code == 403
    finally:
        app.stop(timeout=30)
        tenant_settings.unset(settings, registry, b.app.member_id, "FEEDBACK_SECRET")
    for tenant, emu, score in ((b.app.member_id, b, 9), ("default", a, 3)):
        state = State(tenants.state_target(settings, tenant))
        try:
            assert answers_of(state, f"bitrix:{emu.app.domain}") == {deal: score}, tenant
        finally:
            state.close()


def new_task_titles(emu, before: set[int]) -> list[str]:
    with emu.store.lock:
        return [t.title for t in emu.store.tasks.rows.values() if t.id not in before]


def task_ids(emu) -> set[int]:
    with emu.store.lock:
        return set(emu.store.tasks.rows)


@SQLITE
def test_each_tenant_has_its_own_settings_overrides_and_its_own_language(two):
    (a, b), settings, env = two
    member = b.app.member_id
    for pair, words in (("TIMEZONE=Mars/Base", "TIMEZONE: must be an IANA zone"),
                        ("PLAYBOOK_LANG=de", "PLAYBOOK_LANG:"), ("SCHEDULE_EVERY_MINUTES=0", "SCHEDULE_EVERY_MINUTES:"),
                        ("STATE_URL=sqlite:///other.db", "STATE_URL: is the app's own setting"),
                        ("BITRIX_APP_CLIENT_SECRET=x", "BITRIX_APP_CLIENT_SECRET: is the app's own setting"),
                        ("NO_SUCH=1", "NO_SUCH: is not a setting"), ("TIMEZONE", "KEY=VALUE")):
        code, _, err = cli(env, "tenants", "set", member, "PLAYBOOK_LANG=ru", pair)
        assert code == 2 and words in err and "Traceback" not in err, (pair, err)
    assert json.loads(cli(env, "tenants", "show", member, "--format", "json")[1])["settings"] == {}  # none kept
    code, _, err = cli(env, "tenants", "set", "default", "TIMEZONE=Europe/Berlin")
    assert code == 2 and ".env" in err
    feedback = "a-feedback-secret-of-portal-b-only"
    code, out, err = cli(env, "tenants", "set", member, "PLAYBOOK=", "PLAYBOOK_LANG=ru", "TIMEZONE=Asia/Vladivostok",
                         f"FEEDBACK_SECRET={feedback}")
    assert code == 0 and "PLAYBOOK_LANG=ru" in out and feedback not in out, err
    code, out, err = cli(env, "tenants", "show", member, "--format", "json")
    assert json.loads(out)["settings"] == {"FEEDBACK_SECRET": "***", "PLAYBOOK": "", "PLAYBOOK_LANG": "ru",
                                           "TIMEZONE": "Asia/Vladivostok"}
    own = tenants.settings_for(settings, member, "bitrix")
    assert (own.PLAYBOOK, own.PLAYBOOK_LANG, own.TIMEZONE) == (None, "ru", "Asia/Vladivostok")
    assert own.FEEDBACK_SECRET.get_secret_value() == feedback and settings.PLAYBOOK_LANG == "en"
    # a new purchase in each portal: B's manager reads Russian, A's English (the .env's)
    before = {emu: task_ids(emu) for emu in (a, b)}
    for emu in (a, b):
        for contact in sorted(emu.store.contacts.rows)[10:16]:
            emu.add_deal(contact, won=True, amount=5100, closed=datetime(2026, 6, 13, 12, 0))
    code, out, err = cli(env, "sync", "--all-tenants", "--format", "json")
    assert code == 0, err
    b_titles, a_titles = new_task_titles(b, before[b]), new_task_titles(a, before[a])
    assert b_titles and all(t.startswith("Поблагодарить") for t in b_titles), b_titles
    assert a_titles and all(t.startswith("Thank") for t in a_titles), a_titles
    code, out, err = cli(env, "tenants", "unset", member, "TIMEZONE")
    assert code == 0 and "TIMEZONE" in out
    assert tenants.settings_for(settings, member, "bitrix").TIMEZONE is None
    code, _, err = cli(env, "tenants", "unset", member, "STATE_KEY")
    assert code == 2 and "STATE_KEY: is the app's own setting" in err


@SQLITE
def test_a_running_serve_follows_tenants_set_and_unset_without_a_restart(two):
    """`tenants set` / `unset` typed while `serve` runs: the tenant's new feedback address answers, its next sync
    speaks the language set, and after `unset` the address is gone - no restart."""
    (a, b), settings, env = two
    member, secret = b.app.member_id, "feedback-address-set-while-serving-89ab"
    registry = tenants.registry(settings)
    for name in ("FEEDBACK_SECRET", "PLAYBOOK", "PLAYBOOK_LANG"):  # what earlier tests left
        tenant_settings.unset(settings, registry, member, name)
    deal = str(min(b.store.deals.rows))

    def answer(score: int) -> int:
        return requests.post(f"{app.url}/feedback/{secret}", json={"purchase_id": deal, "score": score},
                             timeout=30).status_code

    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    try:
        assert answer(5) == 404  # no tenant has a feedback address
        code, out, err = cli(env, "tenants", "set", member, f"FEEDBACK_SECRET={secret}", "PLAYBOOK=",
                             "PLAYBOOK_LANG=ru")
        assert code == 0, err
        before = task_ids(b)
        for contact in sorted(b.store.contacts.rows)[20:24]:
            b.add_deal(contact, won=True, amount=5300, closed=datetime(2026, 6, 13, 12, 0))
        wait_for(lambda: answer(8) == 200, timeout=15)  # recorded in B; B's sync follows
        titles = wait_for(lambda: new_task_titles(b, before), timeout=60)
        assert all(t.startswith("Поблагодарить") for t in titles), titles
        code, out, err = cli(env, "tenants", "unset", member, "FEEDBACK_SECRET")
        assert code == 0, err
        wait_for(lambda: answer(8) == 404, timeout=15)  # the same answer: one taken before serve saw the unset changes nothing
    finally:
        app.stop(timeout=30)
        for name in ("FEEDBACK_SECRET", "PLAYBOOK", "PLAYBOOK_LANG"):
            tenant_settings.unset(settings, registry, member, name)
    state = State(tenants.state_target(settings, member))
    try:
        assert answers_of(state, f"bitrix:{b.app.domain}") == {deal: 8}
    finally:
        state.close()


@SQLITE
def test_install_of_a_bitrix_tenant_prepares_its_portal_again_as_the_app_install_did(two):
    """An admin of portal B deleted a card field and a robot, and B's install keeps the field list of an older
    version: `install --tenant B` makes both again there on B's tokens, refreshes the stored list that `tenants
    show` counts, and asks portal A nothing."""
    (a, b), settings, env = two
    tenant = b.app.member_id
    with b.store.lock:
        field = next(u for u in b.store.userfields.rows.values() if u.field_name.startswith("UF_CRM_RS_"))
        b.store.userfields.delete(field.id)
    robot = sorted(b.app.robots())[0]
    with b.app.lock:
        b.app.installed.robots.pop(robot)
    with tenants.registry(settings).for_tenant(tenant).locked("bitrix") as slot:
        full = len(slot.data["fields"])
        slot.save({**slot.data, "fields": slot.data["fields"][:1]})
    a_requests = a.stats()["requests_total"]
    code, out, err = cli(env, "install", "--tenant", tenant, "--format", "json")
    assert code == 0, err
    said = json.loads(out)
    assert f"robot {robot}" in said["created"] and any(field.field_name.removeprefix("UF_CRM_") in x
                                                         for x in said["created"]), said
    assert robot in b.app.robots() and b.store.userfield(field.entity_id, field.field_name) is not None
    code, out, err = cli(env, "tenants", "show", tenant, "--format", "json")
    assert code == 0 and json.loads(out)["fields"] == full > 1, out
    assert a.stats()["requests_total"] == a_requests  # A was not asked anything
    code, out, err = cli(env, "install", "--tenant", tenant, "--format", "json")  # again: nothing new
    said = json.loads(out)
    assert code == 0 and said["created"] == [] and "automation trigger rs_sms" in said["existing"], out


@BOTH
def test_remove_asks_for_yes_then_deletes_the_tenants_tokens_and_state(two):
    (a, b), settings, env = two
    assert tenants.state_exists(settings, b.app.member_id)
    assert tenants.stored_tenants(settings) == [b.app.member_id]
    code, _, err = cli(env, "tenants", "remove", b.app.member_id)
    assert code == 2 and "--yes" in err and tenants.state_exists(settings, b.app.member_id)
    code, _, err = cli(env, "tenants", "remove", "default", "--yes")
    assert code == 2 and "default" in err
    code, out, err = cli(env, "tenants", "remove", b.app.member_id, "--yes")
    assert code == 0 and "tokens" in out, err
    assert not tenants.state_exists(settings, b.app.member_id) and tenants.stored_tenants(settings) == []
    assert tenants.registry(settings).for_tenant(b.app.member_id).get("bitrix") is None
    code, out, _ = cli(env, "tenants", "list", "--format", "json")
    assert [t["tenant"] for t in json.loads(out)["tenants"]] == ["default"]
    assert tenants.registry(settings).get("bitrix")["member_id"] == a.app.member_id  # the default untouched
