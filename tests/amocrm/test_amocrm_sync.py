"""amoCRM-only exactly-once protocol: OAuth tokens expiring mid-sync, 504s that shrink the batches, and
duplicates closed (API v4 deletes no task). Scenarios every CRM shares are in tests/contract/."""

from __future__ import annotations

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


def test_a_duplicate_task_is_closed_with_its_marker_defused_not_deleted(account, tmp_path):
    sync(account, State(tmp_path / "a.db"))
    some = next(t for t in account.store.tasks.values())
    # a resend by someone else: the same marker twice in the account
    requests.post(f"{account.base_url}/api/v4/tasks", headers={"Authorization": f"Bearer {account.access_token}"},
                  json=[{k: some[k] for k in ("text", "complete_till", "entity_id", "entity_type")}], timeout=10)
    again = sync(account, State(tmp_path / "b.db"))  # a brand-new state file rebuilds its ledger from markers
    assert again.stats["written"] == 0 and again.stats["duplicates_removed"] == 1
    assert max(account.tasks_by_marker().values()) == 1
    closed = [t for t in account.store.tasks.values() if t["is_completed"]]
    assert len(closed) == 1 and "rs-duplicate:" in closed[0]["text"]


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
