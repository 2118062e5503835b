"""What a manager sees on a Bitrix24 task: linked to its own customer and that customer's deals only,
and never overdue on the day it is written. Checked through the portal's REST API over HTTP."""

from __future__ import annotations

import re
from datetime import date

from connector.state import State
from tests.conftest import TODAY
from tests.test_bitrix_writeback import listing, sync

MARKER = re.compile(r"rs:(v\d+:\S+)")
NEW_YEAR = date(2026, 12, 28)  # the default playbook's holiday greeting falls due; its anchor is the year


def our_tasks(portal) -> dict[str, dict]:
    tasks = listing(portal, "tasks.task.list", {"filter": {"TAG": "repeat-sales"},
                                                "select": ["ID", "DESCRIPTION", "UF_CRM_TASK", "DEADLINE"]}, key="tasks")
    return {MARKER.search(t["description"]).group(1): t for t in tasks}


def test_a_task_links_only_to_its_customer_and_that_customers_own_deals(portal, tmp_path):
    report = sync(portal, State(tmp_path / "s.db"), today=NEW_YEAR)
    assert any(a.rule == "holidays" for a in report.plan), "the New Year greeting is due"
    tasks = our_tasks(portal)
    bound = sorted({b[2:] for t in tasks.values() for b in t["ufCrmTask"] if b.startswith("D_")}, key=int)
    deals = {d["ID"]: d["CONTACT_ID"] for n in range(0, len(bound), 50) for d in listing(
        portal, "crm.deal.list", {"filter": {"@ID": bound[n:n + 50]}, "select": ["ID", "CONTACT_ID"]})}
    assert deals, "steps that hang on a purchase still link its deal"
    for key, task in tasks.items():
        customer = key.split(":")[1]
        links = task["ufCrmTask"]
        assert f"C_{customer}" in links
        foreign = [b for b in links if b.startswith("D_") and deals.get(b[2:]) != customer]
        assert not foreign, f"{key} is linked to deals of someone else: {foreign}"


def test_no_task_is_overdue_on_the_day_it_is_written(portal, tmp_path):
    report = sync(portal, State(tmp_path / "s.db"), today=TODAY)
    assert min(a.due for a in report.plan) < TODAY, "the shop has steps whose day passed (a first run)"
    tasks = our_tasks(portal)
    assert len(tasks) == len(report.plan)
    assert min(date.fromisoformat(t["deadline"][:10]) for t in tasks.values()) == TODAY
    by_key = {a.key: a for a in report.plan}
    for key, task in tasks.items():  # a step still due later keeps its own day
        assert date.fromisoformat(task["deadline"][:10]) == max(by_key[key].due, TODAY)
