"""A sync on a portal whose webhook lacks a right or a scope (issue 15, item 4): rights are read first,
what is missing is said in the run summary, each affected step is done another way with the reason,
and the run never fails for it. Everything is checked through the portal's REST API over HTTP."""

from __future__ import annotations

import re

import pytest
import requests

from connector.bitrix import BitrixAdapter
from connector.errors import CrmRequestRejected
from connector.model import ActionKind
from connector.state import State
from connector.sync import run_sync
from emulators.bitrix import BitrixEmulator
from emulators.bitrix.writeback_methods import add_workflow_template
from playbooks import load_playbook
from tests.conftest import TODAY
from tests.contract.harness import automation_playbook

MARKER = re.compile(r"rs:(v\d+:\S+)")


def call(portal, method: str, params: dict | None = None) -> dict:
    r = requests.post(portal.webhook_url + method, json=params or {}, timeout=30)
    assert r.status_code == 200, (method, r.status_code, r.text[:300])
    return r.json()


def sync(portal, state: State, playbook=None):
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    try:
        return run_sync(adapter, state, playbook or load_playbook(), today=TODAY)
    finally:
        adapter.close()


def install(portal) -> None:
    adapter = BitrixAdapter(portal.webhook_url, requests_per_second=50.0, request_pool=250)
    try:
        assert adapter.install().created
    finally:
        adapter.close()


def markers_in_tasks(portal) -> dict[str, dict]:
    with portal.store.lock:
        return {k: t for t in portal.store.tasks.rows.values() for k in MARKER.findall(t.description or "")}


def markers_in_comments(portal) -> dict[str, str]:
    with portal.store.lock:
        return {k: c.comment for c in portal.store.comments.rows.values() for k in MARKER.findall(c.comment or "")}


@pytest.mark.parametrize("admin", [True, False])
def test_business_process_starts_need_an_administrator_else_they_are_tasks_that_say_why(tmp_path, admin):
    with BitrixEmulator(customers=120, seed=7, today=TODAY) as portal:
        install(portal)  # the fields by an administrator, once
        add_workflow_template(portal.store, "rs_winback_email")
        portal.set_rights(admin=admin)
        report = sync(portal, State(tmp_path / "s.db"), automation_playbook())  # its steps start processes
        flows = [a for a in report.plan if a.kind == ActionKind.WORKFLOW and a.payload["template"] == "rs_winback_email"]
        assert flows and not report.failed and report.error is None
        started = portal.stats()["commands"].get("bizproc.workflow.start", 0)
        tasks = markers_in_tasks(portal)
        if admin:
            assert started == len(flows) and report.stats["rights_missing"] == []
            assert not any(a.key in tasks for a in flows)
        else:
            assert started == 0  # not even tried: the portal refuses a non-administrator (403 ACCESS_DENIED)
            for action in flows:
                assert tasks[action.key].title.startswith("[workflow]")
                assert "не администратор портала" in tasks[action.key].description  # the playbook's language
            said = {gap["feature"]: gap for gap in report.stats["rights_missing"]}
            assert said["workflows"]["needs"] == ["an administrator"] and "manager tasks" in said["workflows"]["message"]
        assert sync(portal, State(tmp_path / "s.db"), automation_playbook()).stats["written"] == 0


def test_without_the_task_scope_manager_tasks_are_card_comments_found_again_by_their_marker(tmp_path):
    with BitrixEmulator(customers=120, seed=7, today=TODAY, scopes="crm,user") as portal:
        tasks_before = portal.stats()["objects"]["task"]  # the shop's own
        report = sync(portal, State(tmp_path / "s.db"))
        assert report.stats["written"] > 0 and not report.failed and report.error is None
        assert "tasks.task.add" not in portal.stats()["commands"] and portal.stats()["objects"]["task"] == tasks_before
        comments = markers_in_comments(portal)
        as_tasks = [a for a in report.plan if a.kind == ActionKind.TASK]  # e-mails need no task scope
        assert as_tasks
        for action in as_tasks:
            assert action.key in comments
            assert "нет права «task»" in comments[action.key] and action.title in comments[action.key]
        said = {gap["feature"]: gap for gap in report.stats["rights_missing"]}
        assert said["tasks"]["needs"] == ["scope task"] and "comments" in said["tasks"]["message"]
        assert sync(portal, State(tmp_path / "s.db")).stats["written"] == 0  # a rerun writes nothing
        # a new state file: the comments are found on the cards before writing, none is written twice
        added = portal.stats()["commands"]["crm.timeline.comment.add"]
        sync(portal, State(tmp_path / "other.db"))
        assert portal.stats()["commands"]["crm.timeline.comment.add"] == added
        assert markers_in_comments(portal) == comments


def test_without_the_user_scope_tasks_go_to_the_manager_the_card_names(tmp_path):
    with BitrixEmulator(customers=120, seed=7, today=TODAY, scopes="crm,task") as portal:
        report = sync(portal, State(tmp_path / "s.db"))
        assert report.stats["written"] > 0 and not report.failed and report.error is None
        tasks = markers_in_tasks(portal)
        with portal.store.lock:
            managers = {str(c.id): c.assigned for c in portal.store.contacts.rows.values()}
        as_tasks = [a for a in report.plan if a.kind == ActionKind.TASK]  # e-mails go to the customer, not a manager
        assert as_tasks
        for action in as_tasks:
            assert tasks[action.key].responsible_id == managers[action.customer_id]
        assert {gap["feature"] for gap in report.stats["rights_missing"]} >= {"users", "workflows"}
        assert call(portal, "scope")["result"] == ["crm", "task"]


def test_without_the_crm_scope_the_sync_stops_saying_which_scope_to_add(tmp_path):
    with BitrixEmulator(customers=30, seed=7, today=TODAY, scopes="task,user") as portal:
        with pytest.raises(CrmRequestRejected) as stopped:
            sync(portal, State(tmp_path / "s.db"))
        assert "add the scope crm" in str(stopped.value) and stopped.value.method.startswith("crm.")
        assert not markers_in_tasks(portal)  # nothing written
