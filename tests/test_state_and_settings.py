"""Local state and settings: the run lock, the ledger's states, and validation that names the variable."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date

import pytest

from connector.crm import CrmRef
from connector.errors import SettingsError, StateLocked
from connector.model import Action, ActionKind
from connector.settings import load_settings
from connector.state import State


def action(key: str) -> Action:
    return Action(key=key, kind=ActionKind.TASK, customer_id="5", rule="calendar", step="thanks",
                  due=date(2026, 1, 2), title="Thank the customer")


def test_a_second_run_is_refused_while_the_first_holds_the_lock(state_target):
    first, second = State(state_target), State(state_target)
    with first.lock("sync"):
        with pytest.raises(StateLocked) as err:
            with second.lock("sync"):
                pass
        assert "another run" in str(err.value)
    with second.lock("sync"):  # released: the next run goes ahead
        pass


HOLD_LOCK = ("import sys,time; from connector.state import State; s=State(sys.argv[1]); "
             "cm=s.lock('sync'); cm.__enter__(); print('held', flush=True); time.sleep(600)")


def test_the_lock_of_a_killed_run_frees_itself(state_target):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(state_target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StateLocked) as err, State(state_target).lock("sync"):
            pass
        assert f":{holder.pid})" in str(err.value), "the message names the holding process"
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    state = State(state_target)
    for _ in range(100):  # PostgreSQL ends the killed session's lock as soon as it sees the socket close
        try:
            with state.lock("sync"):  # the holder's process is gone
                return
        except StateLocked:
            time.sleep(0.05)
    pytest.fail("the killed run's lock was never freed")


def test_ledger_moves_pending_to_done_and_keeps_failed_for_retry(state_target):
    state = State(state_target)
    a, b = action("v1:5:calendar:9:thanks"), action("v1:5:calendar:9:feedback")
    state.mark_pending("acc", [a, b])
    assert state.ledger_status("acc", [a.key, b.key]) == {a.key: "pending", b.key: "pending"}
    state.mark_done("acc", {a.key: CrmRef("task", "11")}, date(2026, 1, 2))
    state.mark_failed("acc", {b.key: "Contact not found"})
    assert state.applied_dates("acc") == {a.key: date(2026, 1, 2)}
    assert [(x.key, s) for x, s in state.unfinished("acc")] == [(b.key, "failed")]
    assert state.unfinished("other-account") == []


def test_settings_name_the_variable_and_the_fix(monkeypatch):
    with pytest.raises(SettingsError) as err:
        load_settings(BITRIX_WEBHOOK_URL="https://portal.bitrix24.ru/api/abc")
    assert err.value.env_name == "BITRIX_WEBHOOK_URL" and "/rest/" in str(err.value)
    with pytest.raises(SettingsError) as err:
        load_settings(STATE_URL="postgres://x")
    assert err.value.env_name == "STATE_URL"
    with pytest.raises(SettingsError) as err:
        load_settings(TIMEZONE="Mars/Olympus")
    assert err.value.env_name == "TIMEZONE"
    settings = load_settings(BITRIX_WEBHOOK_URL="https://p.bitrix24.ru/rest/1/secretcode")
    assert settings.BITRIX_WEBHOOK_URL.get_secret_value().endswith("/rest/1/secretcode/")
    assert "secretcode" not in repr(settings)


def test_a_missing_webhook_is_named_when_the_crm_needs_it():
    settings = load_settings(BITRIX_WEBHOOK_URL="")
    with pytest.raises(SettingsError) as err:
        settings.require("BITRIX_WEBHOOK_URL")
    assert err.value.exit_code == 2 and "BITRIX_WEBHOOK_URL" in str(err.value)


def test_the_snapshot_reads_back_what_was_pulled_and_lean_reads_drop_only_redundant_titles(state_target):
    from connector.crm import PullPage
    from connector.model import Customer, LineItem, Purchase

    state = State(state_target)
    coffee = (LineItem("3", "Кофе 1 кг", 2.0, 1590.0, "Кофе"),)
    page = PullPage(customers=[Customer("7", name="Ольга", phones=("+79000000007",))],
                    purchases=[Purchase("11", "7", date(2026, 5, 1), 3180.0, items=coffee, title="Заказ #11"),
                               Purchase("12", "7", date(2026, 6, 1), 500.0, title="Доставка"),
                               Purchase("13", "8", date(2026, 6, 2), 900.0, items=coffee, title="Заказ #13")])
    state.absorb("acct", page, run_id=1)
    full = {c.id: c for c in state.customers("acct")}
    assert [p.title for p in full["7"].purchases] == ["Заказ #11", "Доставка"]
    assert full["7"].purchases[0].items == coffee and full["7"].phones == ("+79000000007",)
    assert full["8"].purchases[0].id == "13", "a deal whose contact was not pulled keeps its history"
    lean = {c.id: c for c in state.customers("acct", lean=True)}
    assert [p.title for p in lean["7"].purchases] == ["", "Доставка"], "a title is kept where no item names it"
    assert [c.id for c in state.customers("acct", ["8"])] == ["8"]


def test_threads_opening_a_new_state_file_at_once_all_get_it(tmp_path):
    """The webapp's worker and its request threads may create the file together (seen once in CI)."""
    import threading

    from connector.state import State

    errors, start = [], threading.Barrier(8)

    def open_it(path):
        start.wait()
        try:
            State(path).close()
        except Exception as exc:  # what the user would see instead of a state file
            errors.append(exc)

    for n in range(40):
        path = tmp_path / f"new{n}.db"
        threads = [threading.Thread(target=open_it, args=(path,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
