"""What a manager sees on a task in every CRM: on its own customer (and that customer's deals only),
with an active manager, and never overdue on the day it is written."""

from __future__ import annotations

from datetime import date

from connector.model import ActionKind
from connector.state import State

NEW_YEAR = date(2026, 12, 28)  # the default playbook's holiday greeting falls due; its anchor is the year


def test_a_task_links_only_to_its_customer_and_that_customers_own_deals(crm, tmp_path):
    report = crm.sync(State(tmp_path / "s.db"), today=NEW_YEAR)
    assert any(a.rule == "holidays" for a in report.plan), "the New Year greeting is due"
    tasks = crm.tasks()
    assert tasks and set(tasks) == {a.key for a in report.plan if a.kind == ActionKind.TASK}  # e-mails are not tasks
    owner = {pid: p.customer_id for pid, p in crm.won_purchases().items()}
    for key, task in tasks.items():
        assert task.customer_id == key.split(":")[1]
        foreign = [d for d in task.purchase_ids if owner.get(d) != task.customer_id]
        assert not foreign, f"{key} is linked to deals of someone else: {foreign}"
    anchored = [a for a in report.plan if a.anchor_purchase_id and a.kind == ActionKind.TASK]
    assert anchored, "the shop has recent purchases, so calendar steps are due"
    if crm.tasks_link_purchases:  # a step that hangs on a purchase links its deal
        assert all(a.anchor_purchase_id in tasks[a.key].purchase_ids for a in anchored)


def test_no_task_is_overdue_on_the_day_it_is_written_and_each_has_an_active_manager(crm, tmp_path):
    report = crm.sync(State(tmp_path / "s.db"))
    assert min(a.due for a in report.plan) < crm.today, "the shop has steps whose day passed (a first run)"
    tasks, active = crm.tasks(), crm.active_users()
    as_tasks = [a for a in report.plan if a.kind == ActionKind.TASK]  # e-mails are sent, not tasks
    assert set(tasks) == {a.key for a in as_tasks}
    assert min(t.due for t in tasks.values()) == crm.today
    for action in as_tasks:  # a step still due later keeps its own day
        task = tasks[action.key]
        assert task.due == max(action.due, crm.today)
        assert task.text.startswith(action.title) and task.responsible in active
