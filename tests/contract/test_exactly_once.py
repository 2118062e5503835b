"""Exactly-once apply into every CRM over HTTP: reruns, dry runs, 503 storms, lost answers, refusals,
a lost ledger, greetings that missed their day. What the CRM holds is read back through its own API."""

from __future__ import annotations

from datetime import timedelta

from connector.model import ActionKind
from connector.state import State


def assert_one_touch_per_planned_key(crm, plan) -> None:
    held = crm.touches()  # a task, or an e-mail where the CRM sends it
    assert set(held) == {a.key for a in plan}
    assert max(held.values()) == 1


def test_first_run_writes_the_plan_and_second_run_writes_nothing(crm, state_at):
    state = State(state_at("s.db"))
    first = crm.sync(state)
    assert first.error is None and first.stats["written"] == len(first.plan) > 0
    assert first.stats["planned"] == len(first.plan)
    used, need = crm.write_requests(first)
    assert used == need, "write-back near the lower bound: nothing per task"
    held = crm.touches()
    assert set(held) == {a.key for a in first.plan} and max(held.values()) == 1
    second = crm.sync(state)
    assert second.stats["written"] == 0
    assert second.stats["skipped"] == len(second.plan) == len(first.plan)
    assert crm.touches() == held


def test_a_dry_run_writes_nothing_and_moves_no_cursor(crm, state_at):
    state = State(state_at("s.db"))
    tasks_before = crm.emulator.stats()["objects"]["task"]
    report = crm.sync(state, dry_run=True)
    assert report.plan and report.stats["would_write"] == len(report.plan)
    assert crm.emulator.stats()["objects"]["task"] == tasks_before
    assert state.cursor(crm.account) is None
    real = crm.sync(state)
    assert {a.key for a in real.plan} == {a.key for a in report.plan}


def test_a_503_storm_is_survived_without_duplicates(crm, state_at):
    crm.emulator.fail_next(5, status=503)  # one request answered 503 five times: within every client's budget
    report = crm.sync(State(state_at("s.db")), adapter_kw=crm.no_waits())
    assert report.error is None and report.stats["written"] == len(report.plan)
    assert_one_touch_per_planned_key(crm, report.plan)


def test_a_write_whose_answer_is_lost_leaves_one_task_per_key(crm, state_at):
    state = State(state_at("s.db"))
    crm.emulator.drop_next(1, call=crm.calls.task_write)  # applied, then the connection is cut
    first = crm.sync(state, adapter_kw={"write_batch": 10})
    if crm.resends_lost_writes:  # the client resent the batch: the CRM briefly held duplicates
        assert first.error is None and first.stats["duplicates_removed"] >= 1
        assert_one_touch_per_planned_key(crm, first.plan)
    else:  # the batch's fate was unknown, so the run stopped; its markers proved the lost batch written
        assert first.error is not None
        assert first.stats["written"] == min(10, len(first.plan))
    second = crm.sync(state)
    assert second.error is None
    assert second.stats["written"] == len(second.plan) - first.stats["written"]
    assert_one_touch_per_planned_key(crm, second.plan)


def test_a_refused_write_is_reported_and_retried_next_run(crm, state_at):
    state = State(state_at("s.db"))
    crm.emulator.fail_next(1, status=400, call=crm.calls.task_write)  # validation refuses one task
    first = crm.sync(state)
    assert len(first.failed) == 1
    assert first.stats["written"] == len(first.plan) - 1
    second = crm.sync(state)
    assert second.stats["written"] == 1 and not second.failed
    assert_one_touch_per_planned_key(crm, first.plan)


def test_a_lost_ledger_is_rebuilt_from_the_markers_in_the_crm(crm, state_at):
    first = crm.sync(State(state_at("a.db")))
    crm.emulator.reset_stats()
    again = crm.sync(State(state_at("b.db")))  # a brand-new state file: the ledger is gone
    assert again.stats["pulled"]["ledger_rebuilt"] == len(first.plan)
    assert again.stats["written"] == 0 and crm.call_count(crm.calls.task_write) == 0
    assert_one_touch_per_planned_key(crm, first.plan)


def test_a_greeting_that_failed_on_its_day_is_never_sent_late(crm, state_at):
    state = State(state_at("s.db"))
    previews = (crm.sync(state, dry_run=True, today=crm.today + timedelta(days=n)) for n in range(60))
    preview = next(p for p in previews if any(a.rule == "birthday" and a.payload["send_by"] == p.evaluation.as_of
                                              .isoformat() for a in p.plan))
    day = preview.evaluation.as_of
    for call in filter(None, (crm.calls.task_write, crm.calls.email_write)):  # all refused, tasks and e-mails
        crm.emulator.fail_next(preview.stats["would_write"], status=400, call=call)
    first = crm.sync(state, today=day)
    greetings = {a.key for a in first.plan if a.rule == "birthday" and a.payload["send_by"] == day.isoformat()}
    assert greetings and greetings <= set(first.failed)
    crm.emulator.clear_faults()
    after = crm.sync(state, today=day + timedelta(days=1))
    assert not greetings & set(crm.touches()), "a birthday greeting went out after the birthday"
    assert after.stats["late_dropped"] >= len(greetings) and after.stats["written"] > 0


def test_until_install_no_card_field_deal_or_automation_is_written_only_tasks_and_emails(crm, state_at):
    """Card fields, repeat deals and automation need what `install` sets up; a manager's task does not, nor
    an e-mail the CRM sends from its own mailbox to the address already on the card."""
    report = crm.sync(State(state_at("s.db")))
    kinds = {a.kind for a in report.plan}
    assert ActionKind.TASK in kinds and kinds <= {ActionKind.TASK, ActionKind.EMAIL}
    assert report.error is None and report.stats["written"] == len(report.plan)
    assert not crm.repeat_deals() and crm.call_count(crm.calls.deal_write) == 0
    assert crm.card_writes() == 0 and crm.call_count(crm.calls.workflow_write) == 0
    assert set(crm.touches()) == {a.key for a in report.plan}
