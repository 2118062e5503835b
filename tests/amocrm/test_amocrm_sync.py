"""Exactly-once apply into amoCRM over HTTP: reruns, lost answers, refusals, kills, a lost ledger, expiry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from amo_support import TODAY, oauth_adapter, token_adapter

from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook

ROOT = Path(__file__).resolve().parents[2]


def sync(emu, state, *, adapter=None, **kw):
    adapter = adapter or token_adapter(emu)
    try:
        return run_sync(adapter, state, load_playbook(), today=TODAY, **kw)
    finally:
        adapter.close()


def test_first_run_writes_the_plan_and_second_run_writes_nothing(account, tmp_path):
    state = State(tmp_path / "s.db")
    first = sync(account, state)
    assert first.error is None and first.stats["written"] == len(first.plan) > 0
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in first.plan} and max(held.values()) == 1
    second = sync(account, state)
    assert second.stats["written"] == 0 and second.stats["skipped"] == len(first.plan)
    assert account.tasks_by_marker() == held
    assert account.stats()["requests"].get("POST /api/v4/tasks") == -(-len(first.plan) // 50)


def test_tasks_sit_on_the_customers_card_with_the_deadline_and_the_manager(account, tmp_path):
    report = sync(account, State(tmp_path / "s.db"))
    by_key = {t["text"].rsplit("rs:", 1)[1]: t for t in account.store.tasks.values()}
    active = {u for u, user in account.store.users.items() if user["rights"]["is_active"]}
    assert min(a.due for a in report.plan) < TODAY, "the shop has steps whose day passed (a first run)"
    for action in report.plan[:20]:
        task = by_key[action.key]
        assert (task["entity_type"], task["entity_id"]) == ("contacts", int(action.customer_id))
        assert task["text"].startswith(action.title)
        # never overdue on the day it is written; a step due later keeps its own day
        due = time.strftime("%Y-%m-%d", time.gmtime(task["complete_till"] + 3 * 3600))
        assert due == max(action.due, TODAY).isoformat()
        assert task["responsible_user_id"] in active


def test_a_write_whose_answer_is_lost_is_settled_by_its_markers(account, tmp_path):
    state = State(tmp_path / "s.db")
    account.drop_next(1, call="POST /api/v4/tasks")  # applied, then the connection is cut
    first = sync(account, state)
    assert first.error is not None, "the batch's fate was unknown, so the run stopped"
    assert first.stats["written"] == min(50, len(first.plan)), "its markers proved the lost batch written"
    second = sync(account, state)
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in second.plan} and max(held.values()) == 1
    assert second.stats["written"] == len(second.plan) - first.stats["written"]


def test_duplicates_are_closed_and_a_lost_ledger_is_rebuilt_from_the_markers(account, tmp_path):
    first = sync(account, State(tmp_path / "a.db"))
    some = next(t for t in account.store.tasks.values())
    # a resend by someone else: the same marker twice in the account
    requests.post(f"{account.base_url}/api/v4/tasks", headers={"Authorization": f"Bearer {account.access_token}"},
                  json=[{k: some[k] for k in ("text", "complete_till", "entity_id", "entity_type")}], timeout=10)
    again = sync(account, State(tmp_path / "b.db"))  # a brand-new state file: the ledger is gone
    assert again.stats["pulled"]["ledger_rebuilt"] == len(first.plan)
    assert again.stats["written"] == 0 and again.stats["duplicates_removed"] == 1
    assert max(account.tasks_by_marker().values()) == 1
    closed = [t for t in account.store.tasks.values() if t["is_completed"]]
    assert len(closed) == 1 and "rs-duplicate:" in closed[0]["text"]


def test_a_refused_write_is_reported_and_retried_next_run(account, tmp_path):
    state = State(tmp_path / "s.db")
    account.fail_next(1, status=400, call="POST /api/v4/tasks")  # validation refuses the batch's first task
    first = sync(account, state)
    assert len(first.failed) == 1 and first.stats["written"] == len(first.plan) - 1
    second = sync(account, state)
    assert second.stats["written"] == 1 and not second.failed
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in first.plan} and max(held.values()) == 1


def test_a_dry_run_writes_nothing_and_moves_no_cursor(account, tmp_path):
    state = State(tmp_path / "s.db")
    report = sync(account, state, dry_run=True)
    assert report.plan and report.stats["would_write"] == len(report.plan)
    assert account.stats()["objects"]["task"] == 0
    assert state.cursor(f"amocrm:{account.base_url.split('//', 1)[1]}") is None


def test_token_expiry_in_the_middle_of_a_sync_loses_nothing(account, tmp_path):
    state = State(tmp_path / "s.db")
    adapter = oauth_adapter(account, tmp_path / "s.db", code=account.issue_auth_code())
    calls = []

    def progress(message: str) -> None:
        calls.append(message)
        if len(calls) in (2, 6):  # once while pulling, once while writing
            account.expire_access_tokens()

    report = sync(account, state, adapter=adapter, progress=progress)
    assert report.error is None and report.stats["written"] == len(report.plan)
    assert account.stats()["token_refreshes"] == 2
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in report.plan} and max(held.values()) == 1


def test_a_run_killed_while_writing_then_rerun_leaves_one_task_per_key(account, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="amocrm", AMOCRM_BASE_URL=account.base_url, AMOCRM_ACCESS_TOKEN=account.access_token,
               STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    as_of = ["--as-of", TODAY.isoformat()]
    account.set_latency(400, call="POST /api/v4/tasks")
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sync", *as_of], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while account.stats()["objects"]["task"] == 0 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    time.sleep(0.2)  # the next batch is in flight now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    account.set_latency(0, call="POST /api/v4/tasks")
    written_before_kill = account.stats()["objects"]["task"]
    rerun = subprocess.run([sys.executable, "-m", "connector", "sync", "--format", "json", *as_of], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    held = account.tasks_by_marker()
    assert set(held) == {p["key"] for p in out["plan"]} and max(held.values()) == 1
    assert 0 < written_before_kill < len(out["plan"])


def test_a_gateway_timeout_shrinks_the_batches_and_nothing_is_written_twice(account, tmp_path):
    """A batch too big for the gateway is applied, then answered 504: the markers settle it, the rest
    of the run goes in smaller batches, and every key ends with exactly one task."""
    state = State(tmp_path / "s.db")
    account.set_gateway_timeout_over(20)
    report = sync(account, state)
    assert report.error is None and report.stats["written"] == len(report.plan) > 40
    assert report.stats["batch_size"] == 12, "50 -> 25 -> 12 entities a request"
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in report.plan} and max(held.values()) == 1
    posts = account.stats()["requests"]["POST /api/v4/tasks"]
    # 50 (applied, 504), 25 (applied, 504), then the rest by 12; markers proved the first two written
    assert posts == 2 + -(-(len(report.plan) - 75) // 12)
    assert sync(account, state).stats["written"] == 0


def test_a_batch_the_gateway_dropped_unapplied_is_resent_in_halves(account, tmp_path):
    state = State(tmp_path / "s.db")
    account.fail_next(1, 504, call="POST /api/v4/tasks")  # nothing applied
    report = sync(account, state)
    assert report.error is None and report.stats["written"] == len(report.plan) > 50
    assert report.stats["batch_size"] == 25
    held = account.tasks_by_marker()
    assert set(held) == {a.key for a in report.plan} and max(held.values()) == 1
