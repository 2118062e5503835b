"""Runs that meet the account's limits and bad answers end cleanly where they stood (issue 15, amoCRM 9, 11, 13).

A long 429 wait, an IP block or an answer that is not the API's JSON: a clear message, exit 1, what
was read kept and the pull's position saved, the next run resumes there and nothing is written twice.
A token without an administrator's rights still assigns every task; Customers mode is said in the summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from amo_support import CUSTOMERS, SEED, TODAY, Sleeps, pull_all, token_adapter

from connector.errors import CrmError, CrmRateLimited
from connector.render import render_sync
from connector.state import State
from connector.sync import run_sync
from emulators.amocrm import AmoEmulator
from playbooks import load_playbook

ROOT = Path(__file__).resolve().parents[2]


def sync(emu, state, *, adapter=None, progress=None, **kw):
    adapter = adapter or token_adapter(emu, sleep=Sleeps())
    try:
        return run_sync(adapter, state, load_playbook(), today=TODAY, progress=progress, **kw)
    finally:
        adapter.close()


def purchases_held(emu, state) -> set[str]:
    return {p.id for c in state.customers(f"amocrm:{emu.host}:{emu.port}") for p in c.purchases}


def truth(emu) -> set[str]:
    adapter = token_adapter(emu)
    try:
        return set(pull_all(adapter)[1])
    finally:
        adapter.close()


def fail_after_first_leads_page(emu, status: int = 429, *, kind: str | None = None, n: int = 1):
    """A progress hook: once the first page of leads is in, the next lead request(s) go wrong."""
    armed = []

    def hook(_message: str) -> None:
        if not armed and emu.stats()["requests"].get("GET /api/v4/leads", 0) >= 1:
            armed.append(1)
            if kind is None:
                emu.fail_next(n, status=status, call="GET /api/v4/leads")
            else:
                emu.answer_badly_next(n, kind, call="GET /api/v4/leads", status=status)
    return hook


# --- 9. 429 with a long wait, and blocks ---------------------------------------------------------------

@pytest.fixture(params=[True, False], ids=["filters-on", "filters-off"])
def either(request):
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, api_filter=request.param) as emu:
        yield emu


def leads_pages_of_a_full_pull(emu) -> int:
    before = emu.stats()["requests"].get("GET /api/v4/leads", 0)
    truth(emu)
    return emu.stats()["requests"]["GET /api/v4/leads"] - before


def test_a_long_rate_limit_wait_ends_the_run_and_the_next_run_resumes_where_it_stopped(either, tmp_path):
    state, sleeps = State(tmp_path / "s.db"), Sleeps()
    either.retry_after = 300  # Doc: developers.kommo.com/docs/http-codes - the real account's `retry_after`
    with pytest.raises(CrmRateLimited) as caught:
        sync(either, state, adapter=token_adapter(either, sleep=sleeps), progress=fail_after_first_leads_page(either))
    message = str(caught.value)
    assert "wait 300 s" in message and "the next run resumes there" in message
    assert sleeps == [], "a wait longer than a minute is not sat out in-process, nor retried in a loop"
    assert either.stats()["requests"]["GET /api/v4/leads"] == 2, "the first page, then the 429: no retry"
    assert state.cursor(f"amocrm:{either.host}:{either.port}").modified_since.startswith("resume:")
    either.reset_stats()
    second = sync(either, state, dry_run=True)  # the pull alone: a first real run also reads markers back
    requests_ = either.stats()["requests"]
    assert second.error is None
    assert "GET /api/v4/contacts" not in requests_, "the customers were read before the stop"
    assert requests_["GET /api/v4/leads"] <= leads_pages_of_a_full_pull(either) - 1 + 1, "one page read again at most"
    assert purchases_held(either, state) == truth(either), "no lead skipped"


def test_an_incremental_pull_stopped_midway_resumes_and_misses_no_change(either, tmp_path):
    state = State(tmp_path / "s.db")
    assert sync(either, state).error is None
    touched = sorted(int(i) for i in truth(either))[::2][:600]  # three pages of changes
    for lead_id in touched:
        either.touch_purchase(lead_id, price=4321)
    either.reset_stats()
    either.retry_after = 300
    with pytest.raises(CrmRateLimited):
        sync(either, state, progress=fail_after_first_leads_page(either))
    assert either.stats()["requests"]["GET /api/v4/leads"] == 2
    either.reset_stats()
    assert sync(either, state, dry_run=True).error is None
    assert either.stats()["requests"]["GET /api/v4/leads"] <= 3, "what was left, plus a page or the re-read window"
    held = {p.id: p.amount for c in state.customers(f"amocrm:{either.host}:{either.port}") for p in c.purchases}
    assert all(held[str(i)] == 4321 for i in touched), "every change is in the history"


def cli_env(emu, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="amocrm", AMOCRM_BASE_URL=emu.base_url, AMOCRM_ACCESS_TOKEN=emu.access_token,
               STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    return env


def test_a_blocked_account_stops_the_run_with_exit_1_and_the_next_run_goes_on(account, tmp_path):
    env = cli_env(account, tmp_path)
    # Doc: amocrm-api-php#434 - a blocked client gets nginx's 403 page for every request
    account.answer_badly_next(1, "html", call="GET /api/v4/leads", status=403)
    run = subprocess.run([sys.executable, "-m", "connector", "sync"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "access blocked" in run.stderr and "support" in run.stderr and "resumes there" in run.stderr
    assert account.stats()["requests"]["GET /api/v4/leads"] == 1, "a block is not retried"
    assert account.stats()["objects"]["task"] == 0
    again = subprocess.run([sys.executable, "-m", "connector", "sync"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert account.stats()["requests"]["GET /api/v4/contacts"] == 1, "the second run did not read them again"
    assert max(account.tasks_by_marker().values()) == 1


# --- bad answers: HTML in place of JSON, a body cut short ----------------------------------------------

@pytest.mark.parametrize("kind", ["html", "truncated"])
def test_a_bad_answer_once_is_read_again_and_the_pull_completes(account, tmp_path, kind):
    sleeps = Sleeps()
    state = State(tmp_path / "s.db")
    report = sync(account, state, adapter=token_adapter(account, sleep=sleeps),
                  progress=fail_after_first_leads_page(account, 200, kind=kind))
    assert report.error is None and len(sleeps) == 1
    assert purchases_held(account, state) == truth(account)


@pytest.mark.parametrize(("kind", "says"), [("html", "an HTML page, not the API's JSON"),
                                             ("truncated", "cut short")])
def test_bad_answers_that_persist_end_the_run_clearly_and_the_next_run_resumes(account, tmp_path, kind, says):
    state = State(tmp_path / "s.db")
    with pytest.raises(CrmError) as caught:
        sync(account, state, adapter=token_adapter(account, sleep=Sleeps(), max_attempts=3),
             progress=fail_after_first_leads_page(account, 200, kind=kind, n=3))
    assert caught.value.exit_code == 1 and says in str(caught.value) and "resumes there" in str(caught.value)
    assert account.access_token not in str(caught.value)
    account.reset_stats()
    assert sync(account, state).error is None
    assert "GET /api/v4/contacts" not in account.stats()["requests"]
    assert purchases_held(account, state) == truth(account)


@pytest.mark.parametrize("kind", ["html", "truncated"])
def test_a_write_whose_answer_is_bad_is_never_written_twice(account, tmp_path, kind):
    state = State(tmp_path / "s.db")
    account.answer_badly_next(1, kind, call="POST /api/v4/tasks")  # the tasks are created, the answer is bad
    first = sync(account, state)
    assert first.error is not None, "the batch's fate was unknown, so the run stopped"
    second = sync(account, state)
    held = account.tasks_by_marker()
    assert second.error is None and set(held) == {a.key for a in second.plan} and max(held.values()) == 1


# --- 11. users are admin-only --------------------------------------------------------------------------

@pytest.mark.parametrize("admin", [True, False], ids=["admin", "not-admin"])
def test_tasks_go_to_the_customers_manager_or_the_fallback_with_or_without_an_admin_token(tmp_path, admin):
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, admin=admin) as emu:
        listed = requests.get(emu.base_url + "/api/v4/users", timeout=10,
                              headers={"Authorization": f"Bearer {emu.access_token}"})
        assert listed.status_code == (200 if admin else 403)
        fallback = emu.store.current_user_id
        report = sync(emu, State(tmp_path / "s.db"))
        assert report.error is None and not report.failed and report.stats["written"] > 0
        managers = {str(c["id"]): c["responsible_user_id"] for c in emu.store.contacts.values()}
        active = {u for u, user in emu.store.users.items() if user["rights"]["is_active"]}
        notices = [n["message"] for n in report.stats["crm_notices"]]
    for task in emu.store.tasks.values():
        manager = managers.get(str(task["entity_id"]))
        if admin:  # a deactivated manager's task goes to the fallback
            assert task["responsible_user_id"] == (manager if manager in active else fallback)
        else:  # the users list is closed: the manager as the card names them
            assert task["responsible_user_id"] == (manager or fallback)
    assert any("администратор" in n for n in notices) is not admin


# --- 13. Customers mode ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["periodicity", "segments", "disabled"])
def test_customers_mode_is_said_in_the_run_summary(tmp_path, mode):
    with AmoEmulator(customers=40, seed=SEED, today=TODAY, customers_mode=mode) as emu:
        report = sync(emu, State(tmp_path / "s.db"), dry_run=True)
    summary = render_sync(report, dry_run=True)
    said = f"«Покупатели» (режим {mode})" in summary
    assert said is (mode != "disabled")
