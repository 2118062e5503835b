"""One amoCRM object per action key, whatever happened to the state files.

Two `sync` runs from two state files at once, a fresh state after `install --uninstall`, duplicates
left by older runs: the account's own markers decide, for tasks, repeat deals (leads) and Salesbot
notes. API v4 deletes neither tasks nor leads, so a duplicate is closed with its marker defused
(a task completed, a lead moved to "closed - lost"). Checked through the account's API over HTTP.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import requests
from amo_support import TODAY, token_adapter
from test_amocrm_writeback import BOTS, get, install, sync, value

from connector.model import ActionKind
from connector.state import State
from connector.sync import run_sync
from playbooks import load_playbook

MARKER = re.compile(r"rs:(v\d+:\S+)")
LOST = 143


def held(account, customers) -> dict[str, Counter]:
    """Open objects per key, by kind: open tasks, open leads (RS_ACTION_KEY or their note), contact notes."""
    tasks = [t for t in get(account, "/api/v4/tasks") if not t["is_completed"]]
    leads = [x for x in get(account, "/api/v4/leads", {"filter[created_by][]": account.store.current_user_id})
             if x["status_id"] != LOST and "repeat-sales" in [t["name"] for t in x["_embedded"]["tags"]]]
    lead_notes = get(account, "/api/v4/leads/notes", {"filter[entity_id][]": [x["id"] for x in leads]}) if leads else []
    keys_of_leads = {n["entity_id"]: k for n in lead_notes for k in MARKER.findall(n["params"].get("text") or "")}
    notes = get(account, "/api/v4/contacts/notes", {"filter[entity_id][]": sorted(set(customers), key=int)})
    return {"task": Counter(k for t in tasks for k in MARKER.findall(t["text"])),
            "deal": Counter(value(x, "RS_ACTION_KEY") or keys_of_leads.get(x["id"]) for x in leads),
            "workflow": Counter(k for n in notes for k in MARKER.findall(n["params"].get("text") or ""))}


def assert_one_object_per_key(account, plan) -> None:
    by_kind = held(account, [a.customer_id for a in plan])
    for kind, counts in by_kind.items():
        assert not {k: n for k, n in counts.items() if n > 1}, f"duplicate {kind}s"
    written = [k for counts in by_kind.values() for k in counts]
    assert len(written) == len(set(written)), "a key written as two kinds"
    assert {a.key for a in plan if a.kind != ActionKind.TAG} <= set(written)


def test_two_state_files_syncing_at_once_leave_one_object_per_key(account, tmp_path):
    install(account)
    reports, errors = {}, []
    start = threading.Barrier(2)

    def run(name: str) -> None:
        try:
            start.wait()
            reports[name] = sync(account, State(tmp_path / f"{name}.db"))
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
    third = sync(account, State(tmp_path / "a.db"))
    assert third.stats["written"] == 0
    assert_one_object_per_key(account, plan)


def test_a_fresh_state_after_uninstall_writes_no_task_for_a_key_written_as_a_deal(account, tmp_path):
    install(account)
    first = sync(account, State(tmp_path / "a.db"))
    assert any(a.kind == ActionKind.DEAL for a in first.plan)
    install(account, uninstall=True)  # the leads' RS_ACTION_KEY values go with the field
    account.reset_stats()
    again = sync(account, State(tmp_path / "b.db"))
    assert again.stats["written"] == 0
    assert "POST /api/v4/tasks" not in account.stats()["requests"]
    assert_one_object_per_key(account, first.plan)


def test_a_full_sync_closes_duplicates_left_by_earlier_runs(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    first = sync(account, state)
    task = next(a for a in first.plan if a.kind == ActionKind.TASK)
    deal = next(a for a in first.plan if a.kind == ActionKind.DEAL)
    headers = {"Authorization": f"Bearer {account.access_token}"}
    twin = next(t for t in account.store.tasks.values() if t["text"].endswith(f"rs:{task.key}"))
    lead = next(x for x in get(account, "/api/v4/leads", {"with": "contacts"}) if value(x, "RS_ACTION_KEY") == deal.key)
    # what an older race left behind: a second task and a second lead with the same keys
    requests.post(f"{account.base_url}/api/v4/tasks", headers=headers, timeout=10,
                  json=[{k: twin[k] for k in ("text", "complete_till", "entity_id", "entity_type")}])
    requests.post(f"{account.base_url}/api/v4/leads", headers=headers, timeout=10, json=[{
        "name": lead["name"], "custom_fields_values": lead["custom_fields_values"],
        "_embedded": {"contacts": [{"id": int(deal.customer_id)}], "tags": [{"name": "repeat-sales"}]}}])
    assert held(account, [])["task"][task.key] == 2 and held(account, [])["deal"][deal.key] == 2
    a = token_adapter(account, salesbots=BOTS)
    try:
        report = run_sync(a, state, load_playbook(), today=TODAY, full=True)
    finally:
        a.close()
    assert report.stats["duplicates_removed"] == 2 and report.stats["written"] == 0
    assert_one_object_per_key(account, first.plan)
