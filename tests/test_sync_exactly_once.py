"""Exactly-once apply over HTTP: reruns, 503 storms, lost answers, kills, a lost ledger."""

from __future__ import annotations

import re
from collections import Counter

from fast_bitrix24 import Bitrix

from connector.bitrix import BitrixAdapter
from connector.model import ActionKind
from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook
from tests.conftest import TODAY

MARKER = re.compile(r"rs:(v\d+:\S+)")


def tasks_by_key(portal) -> Counter:
    """What the portal holds, read through its own API: one count per marker key."""
    bx = Bitrix(portal.webhook_url, verbose=False)
    tasks = bx.get_all("tasks.task.list", {"select": ["ID", "DESCRIPTION"]})
    if isinstance(tasks, dict):
        tasks = tasks.get("tasks", [])
    return Counter(k for t in tasks for k in MARKER.findall(t.get("description") or ""))


def sync(portal, state, **kw):
    adapter = BitrixAdapter(portal.webhook_url, **{k: kw.pop(k) for k in list(kw) if k == "write_batch"})
    try:
        return run_sync(adapter, state, load_playbook(), **{"today": TODAY, **kw})
    finally:
        adapter.close()


def test_first_run_writes_the_plan_and_second_run_writes_nothing(portal, tmp_path):
    state = State(tmp_path / "s.db")
    first = sync(portal, state)
    assert first.stats["written"] == len(first.plan) > 0
    assert first.stats["planned"] == len(first.plan)
    # write-back near the lower bound, nothing per task: one batch request per 50 tasks; before writing,
    # four reads (the tasks and repeat deals already in the portal, since the ledger is empty; whether
    # `install` ran; the webhook's scopes and admin flag) and the timelines of customers due an automation
    # start, 50 a request; after
    # writing, the tasks of the customers written to, 50 customers a request (a racing run's twins)
    started = {a.customer_id for a in first.evaluation.plan if a.kind == ActionKind.WORKFLOW}
    written_to = {a.customer_id for a in first.plan}
    assert first.stats["requests"] - first.stats["pulled"]["requests"] == (
        -(-len(first.plan) // 50) + 4 + -(-len(started) // 50) + -(-len(written_to) // 50))
    held = tasks_by_key(portal)
    assert set(held) == {a.key for a in first.plan} and max(held.values()) == 1
    second = sync(portal, state)
    assert second.stats["written"] == 0
    assert second.stats["skipped"] == len(second.plan) == len(first.plan)
    assert tasks_by_key(portal) == held


def test_tasks_are_bound_to_the_contact_and_deal_with_the_managers(portal, tmp_path):
    report = sync(portal, State(tmp_path / "s.db"))
    bx = Bitrix(portal.webhook_url, verbose=False)
    tasks = bx.get_all("tasks.task.list", {"select": ["ID", "DESCRIPTION", "UF_CRM_TASK", "RESPONSIBLE_ID"]})
    tasks = tasks.get("tasks", []) if isinstance(tasks, dict) else tasks
    ours = [(MARKER.search(t.get("description") or ""), t) for t in tasks]
    by_key = {m.group(1): t for m, t in ours if m}  # the portal also holds managers' own tasks
    calendar = [a for a in report.plan if a.anchor_purchase_id]
    assert calendar, "the shop has recent purchases, so calendar steps are due"
    for action in calendar[:10]:
        bindings = by_key[action.key]["ufCrmTask"]
        assert f"C_{action.customer_id}" in bindings and f"D_{action.anchor_purchase_id}" in bindings


def test_a_503_storm_is_survived_without_duplicates(portal, tmp_path):
    portal.fail_next(6, status=503)
    report = sync(portal, State(tmp_path / "s.db"))
    assert report.error is None
    held = tasks_by_key(portal)
    assert set(held) == {a.key for a in report.plan} and max(held.values()) == 1


def test_a_write_whose_answer_is_lost_leaves_one_task_per_key(portal, tmp_path):
    # the portal applies the batch of task writes, then the connection drops; fast-bitrix24
    # resends it (it retries writes too), so the portal briefly holds duplicates
    portal.drop_next(1, call="tasks.task.add")
    report = sync(portal, State(tmp_path / "s.db"), write_batch=10)
    held = tasks_by_key(portal)
    assert set(held) == {a.key for a in report.plan}
    assert max(held.values()) == 1
    assert report.stats["duplicates_removed"] >= 1


def test_a_lost_ledger_is_rebuilt_from_the_markers_in_the_portal(portal, tmp_path):
    first = sync(portal, State(tmp_path / "a.db"))
    again = sync(portal, State(tmp_path / "b.db"))  # a brand-new state file: the ledger is gone
    assert again.stats["pulled"]["ledger_rebuilt"] == len(first.plan)
    assert again.stats["written"] == 0
    assert max(tasks_by_key(portal).values()) == 1


def test_a_dry_run_writes_nothing_and_moves_no_cursor(portal, tmp_path):
    state = State(tmp_path / "s.db")
    tasks_before = portal.stats()["objects"]["task"]
    report = sync(portal, state, dry_run=True)
    assert report.plan and report.stats["would_write"] == len(report.plan)
    assert portal.stats()["objects"]["task"] == tasks_before
    account = f"bitrix:127.0.0.1:{portal.base_url.rsplit(':', 1)[1]}"
    assert state.cursor(account) is None
    real = sync(portal, state)
    assert {a.key for a in real.plan} == {a.key for a in report.plan}


def test_a_refused_write_is_reported_and_retried_next_run(portal, tmp_path):
    state = State(tmp_path / "s.db")
    portal.fail_next(1, status=400, call="tasks.task.add")
    first = sync(portal, state)
    assert len(first.failed) == 1
    assert first.stats["written"] == len(first.plan) - 1
    second = sync(portal, state)
    assert second.stats["written"] == 1 and not second.failed
    held = tasks_by_key(portal)
    assert set(held) == {a.key for a in first.plan} and max(held.values()) == 1


def test_a_greeting_that_failed_on_its_day_is_never_sent_late(portal, tmp_path):
    from datetime import timedelta

    state = State(tmp_path / "s.db")
    previews = (sync(portal, state, dry_run=True, today=TODAY + timedelta(days=n)) for n in range(60))
    preview = next(p for p in previews if any(a.rule == "birthday" and a.payload["send_by"] == p.evaluation.as_of
                                              .isoformat() for a in p.plan))
    day = preview.evaluation.as_of
    portal.fail_next(preview.stats["would_write"], status=400, call="tasks.task.add")  # every task refused
    first = sync(portal, state, today=day)
    greetings = {a.key for a in first.plan if a.rule == "birthday" and a.payload["send_by"] == day.isoformat()}
    assert greetings and greetings <= set(first.failed)
    after = sync(portal, state, today=day + timedelta(days=1))
    assert not greetings & set(tasks_by_key(portal)), "a birthday greeting went out after the birthday"
    assert after.stats["late_dropped"] >= len(greetings) and after.stats["written"] > 0
