"""One CRM object per action key, whatever happened to the state files, in Bitrix24.

Two `sync` runs from two state files at once, a fresh state after `install --uninstall`, duplicates
left by older runs: the portal's own markers decide, for tasks, repeat deals and business process
starts. Everything is checked through the portal's REST API over HTTP.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

from connector.model import ActionKind
from connector.state import State
from connector.sync import run_sync
from emulators.bitrix.writeback_methods import add_workflow_template
from playbooks import load_playbook
from tests.conftest import TODAY
from tests.test_bitrix_writeback import adapter, call, install, listing, sync

MARKER = re.compile(r"rs:(v\d+:\S+)")


def held(portal, customers) -> dict[str, Counter]:
    """Objects per key, by kind: tasks (their text), repeat deals (ORIGIN_ID), contacts' timeline comments."""
    tasks = listing(portal, "tasks.task.list", {"select": ["ID", "DESCRIPTION"]}, key="tasks")
    deals = listing(portal, "crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"}, "select": ["ORIGIN_ID"]})
    comments = [c for cid in sorted(set(customers)) for c in listing(portal, "crm.timeline.comment.list", {
        "filter": {"ENTITY_ID": cid, "ENTITY_TYPE": "contact"}, "select": ["ID", "COMMENT"]})]
    return {"task": Counter(k for t in tasks for k in MARKER.findall(t.get("description") or "")),
            "deal": Counter(d["ORIGIN_ID"] for d in deals),
            "workflow": Counter(k for c in comments for k in MARKER.findall(c.get("COMMENT") or ""))}


def assert_one_object_per_key(portal, plan) -> None:
    by_kind = held(portal, [a.customer_id for a in plan])
    for kind, counts in by_kind.items():
        assert not {k: n for k, n in counts.items() if n > 1}, f"duplicate {kind}s"
    written = [k for counts in by_kind.values() for k in counts]
    assert len(written) == len(set(written)), "a key written as two kinds"
    assert {a.key for a in plan if a.kind != ActionKind.TAG} <= set(written)


def running_starts(portal) -> Counter:
    return Counter((w["TEMPLATE_ID"], w["DOCUMENT_ID"]) for w in listing(
        portal, "bizproc.workflow.instances", {"select": ["ID", "TEMPLATE_ID", "DOCUMENT_ID"]}))


def test_two_state_files_syncing_at_once_leave_one_object_per_key(portal, tmp_path):
    install(portal)
    add_workflow_template(portal.store, "rs_winback_email")
    reports, errors = {}, []
    start = threading.Barrier(2)

    def run(name: str) -> None:
        try:
            start.wait()
            reports[name] = sync(portal, State(tmp_path / f"{name}.db"))
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
    third = sync(portal, State(tmp_path / "a.db"))
    assert third.stats["written"] == 0
    assert_one_object_per_key(portal, plan)
    started = [a for a in plan if a.kind == ActionKind.WORKFLOW and a.payload["template"] == "rs_winback_email"]
    assert started and max(running_starts(portal).values()) == 1
    assert sum(running_starts(portal).values()) == len(started)


def test_a_fresh_state_after_uninstall_writes_no_task_for_a_key_written_as_a_deal(portal, tmp_path):
    install(portal)
    first = sync(portal, State(tmp_path / "a.db"))
    deals = {a.key for a in first.plan if a.kind == ActionKind.DEAL}
    assert deals
    install(portal, uninstall=True)
    portal.reset_stats()
    again = sync(portal, State(tmp_path / "b.db"))  # the state file is gone too
    assert {a.key for a in again.plan} >= deals  # the same actions, now planned as tasks
    assert again.stats["written"] == 0
    assert "tasks.task.add" not in portal.stats()["commands"]
    assert_one_object_per_key(portal, first.plan)


def test_a_full_sync_removes_duplicates_left_by_earlier_runs(portal, tmp_path):
    install(portal)
    add_workflow_template(portal.store, "rs_winback_email")
    state = State(tmp_path / "s.db")
    first = sync(portal, state)
    task = next(a for a in first.plan if a.kind == ActionKind.TASK)
    deal = next(a for a in first.plan if a.kind == ActionKind.DEAL)
    # what an older race left behind: a second task and a second deal with the same keys
    original = listing(portal, "tasks.task.list", {"filter": {"TAG": "repeat-sales"},
                                                   "select": ["ID", "TITLE", "DESCRIPTION", "UF_CRM_TASK"]}, key="tasks")
    twin = next(t for t in original if f"rs:{task.key}" in t["description"])
    call(portal, "tasks.task.add", {"fields": {"TITLE": twin["title"], "DESCRIPTION": twin["description"],
                                               "RESPONSIBLE_ID": 1, "UF_CRM_TASK": twin["ufCrmTask"],
                                               "TAGS": ["repeat-sales"]}})
    call(portal, "crm.deal.add", {"fields": {"TITLE": deal.title, "CONTACT_ID": deal.customer_id,
                                             "ORIGINATOR_ID": "repeat-sales", "ORIGIN_ID": deal.key}})
    assert held(portal, [])["task"][task.key] == 2 and held(portal, [])["deal"][deal.key] == 2
    assert sync(portal, state).stats["written"] == 0  # an incremental run reads no more than its writes
    a = adapter(portal)
    try:
        report = run_sync(a, state, load_playbook(), today=TODAY, full=True)
    finally:
        a.close()
    assert report.stats["duplicates_removed"] == 2 and report.stats["written"] == 0
    assert_one_object_per_key(portal, first.plan)
