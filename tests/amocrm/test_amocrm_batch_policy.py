"""Sync writes in the adapter's declared batch policy: its size, and whether a failed batch shrinks
the rest of the run (amoCRM's 504) or stops it until the next run settles the batch by its markers."""

from __future__ import annotations

from amo_support import TODAY, token_adapter

from connector.crm import BatchPolicy
from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook


def test_writes_go_in_the_batch_size_the_adapter_declares(account, tmp_path):
    adapter = token_adapter(account)
    adapter.batch = BatchPolicy(size=10)
    try:
        report = run_sync(adapter, State(tmp_path / "s.db"), load_playbook(), today=TODAY)
    finally:
        adapter.close()
    assert report.error is None and report.stats["written"] == len(report.plan) > 20
    assert account.stats()["requests"]["POST /api/v4/tasks"] == -(-len(report.plan) // 10)


def test_a_policy_that_does_not_shrink_stops_writing_at_the_failed_batch(account, tmp_path):
    adapter = token_adapter(account)
    adapter.batch = BatchPolicy(size=10, shrink_on=frozenset())
    account.fail_next(1, 504, call="POST /api/v4/tasks")  # nothing applied
    state = State(tmp_path / "s.db")
    try:
        report = run_sync(adapter, state, load_playbook(), today=TODAY)
    finally:
        adapter.close()
    assert report.error is not None and report.error.status == 504 and "batch_size" not in report.stats
    assert account.stats()["requests"]["POST /api/v4/tasks"] == 1 and not account.tasks_by_marker()
    adapter = token_adapter(account)
    try:  # the next run writes it all
        again = run_sync(adapter, state, load_playbook(), today=TODAY)
    finally:
        adapter.close()
    assert again.error is None and set(account.tasks_by_marker()) == {a.key for a in again.plan}
