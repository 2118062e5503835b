"""One CRM object per action key, whatever happened to the state files.

Two `sync` runs from two state files at once, a fresh state after `install --uninstall`, duplicates
left by older runs: the CRM's own markers decide, for tasks, repeat deals and automation starts.
"""

from __future__ import annotations

import threading

from connector.model import ActionKind
from connector.state import State
from tests.contract.harness import automation_playbook


def assert_one_object_per_key(crm, plan) -> None:
    by_kind = crm.held([a.customer_id for a in plan])
    for kind, counts in by_kind.items():
        assert not {k: n for k, n in counts.items() if n > 1}, f"duplicate {kind}s"
    written = [k for counts in by_kind.values() for k in counts]
    assert len(written) == len(set(written)), "a key written as two kinds"
    assert {a.key for a in plan if a.kind != ActionKind.TAG} <= set(written)


def test_two_state_files_syncing_at_once_leave_one_object_per_key(crm, state_at):
    crm.install()
    crm.automation("rs_winback_email")
    reports, errors = {}, []
    start = threading.Barrier(2)

    def run(name: str) -> None:
        try:
            start.wait()
            reports[name] = crm.sync(State(state_at(f"{name}.db")), playbook=automation_playbook())
        except Exception as exc:  # noqa: BLE001 - the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and reports["a"].error is None and reports["b"].error is None
    plan = reports["a"].plan
    assert {a.kind for a in plan} >= {ActionKind.TASK, ActionKind.DEAL, ActionKind.WORKFLOW}
    third = crm.sync(State(state_at("a.db")), playbook=automation_playbook())
    assert third.stats["written"] == 0
    assert_one_object_per_key(crm, plan)
    started = [a for a in plan if a.kind == ActionKind.WORKFLOW and a.payload["template"] == "rs_winback_email"]
    runs = crm.automation_starts()
    assert started and set(runs) == {("rs_winback_email", a.customer_id) for a in started}
    if crm.stops_twin_automation:  # the later of two starts is terminated
        assert max(runs.values()) == 1
    else:  # a started bot cannot be stopped: the race may run it twice, but its marker is kept once
        assert max(runs.values()) <= 2


def test_a_fresh_state_after_uninstall_writes_no_task_for_a_key_written_as_a_deal(crm, state_at):
    crm.install()
    first = crm.sync(State(state_at("a.db")))
    deals = {a.key for a in first.plan if a.kind == ActionKind.DEAL}
    assert deals
    crm.install(uninstall=True)  # the fields go, and with them what the deals held in them
    crm.emulator.reset_stats()
    again = crm.sync(State(state_at("b.db")))  # the state file is gone too
    assert {a.key for a in again.plan} >= deals  # the same actions, now planned as tasks
    assert again.stats["written"] == 0
    assert crm.call_count(crm.calls.task_write) == 0
    assert_one_object_per_key(crm, first.plan)


def test_a_full_sync_removes_duplicates_left_by_earlier_runs(crm, state_at):
    crm.install()
    crm.automation("rs_winback_email")
    state = State(state_at("s.db"))
    first = crm.sync(state, playbook=automation_playbook())
    task = next(a for a in first.plan if a.kind == ActionKind.TASK)
    deal = next(a for a in first.plan if a.kind == ActionKind.DEAL)
    crm.add_twins(task, deal)  # what an older race left behind: a second task and deal with the same keys
    held = crm.held()
    assert held["task"][task.key] == 2 and held["deal"][deal.key] == 2
    assert crm.sync(state, playbook=automation_playbook()).stats["written"] == 0  # an incremental run reads no more than its writes
    report = crm.sync(state, playbook=automation_playbook(), full=True)
    assert report.stats["duplicates_removed"] == 2 and report.stats["written"] == 0
    assert_one_object_per_key(crm, first.plan)
