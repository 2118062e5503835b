"""Write-back into Bitrix24 after `install`: card fields, repeat deals, business process starts.

Everything is checked through the portal's own REST API over HTTP (crm.contact.list,
crm.deal.list, crm.deal.productrows.get, crm.timeline.comment.list, bizproc.workflow.instances),
never through the adapter's memory.
"""

from __future__ import annotations

import re
from datetime import timedelta

import requests

from connector.bitrix import BitrixAdapter
from connector.model import ActionKind
from connector.state import State
from connector.sync import run_sync
from emulators.bitrix.writeback_methods import add_workflow_template
from playbooks import load_playbook
from tests.conftest import TODAY

MARKER = re.compile(r"rs:(v\d+:\S+)")
CARD = ["UF_CRM_RS_SEGMENT", "UF_CRM_RS_RFM", "UF_CRM_RS_LIFECYCLE", "UF_CRM_RS_TIER", "UF_CRM_RS_NEXT_PURCHASE"]


def call(portal, method: str, params: dict | None = None) -> dict:
    r = requests.post(portal.webhook_url + method, json=params or {}, timeout=30)
    assert r.status_code == 200, (method, r.status_code, r.text[:300])
    return r.json()


def listing(portal, method: str, params: dict | None = None, key: str | None = None) -> list[dict]:
    """Every row of a list method, page by page (start = 0, 50, ...)."""
    rows, start = [], 0
    while True:
        answer = call(portal, method, {**(params or {}), "start": start})
        page = answer["result"][key] if key else answer["result"]
        rows += page
        if "next" not in answer:
            return rows
        start = answer["next"]


def adapter(portal, **kw) -> BitrixAdapter:
    kw.setdefault("requests_per_second", 50.0)  # the emulator's bucket is off; the client's need not wait
    kw.setdefault("request_pool", 250)
    return BitrixAdapter(portal.webhook_url, **kw)


def install(portal, *, uninstall: bool = False):
    a = adapter(portal)
    try:
        return a.install(uninstall=uninstall)
    finally:
        a.close()


def sync(portal, state, *, today=TODAY, playbook=None, **kw):
    a = adapter(portal, **kw)
    try:
        return run_sync(a, state, playbook or load_playbook(), today=today)
    finally:
        a.close()


def test_install_twice_creates_nothing_twice_and_uninstall_removes_only_what_it_created(portal):
    before = {f["FIELD_NAME"] for f in listing(portal, "crm.contact.userfield.list")}
    assert before == {"UF_CRM_RS_NO_MARKETING"}  # the portal's own opt-out field, there before us
    first, second = install(portal), install(portal)
    assert len(first.created) == 10 and not second.created  # 5 card fields on contacts and on companies
    assert "contact field UF_CRM_RS_NO_MARKETING" in first.existing
    for entity in ("contact", "company"):
        held = {f["FIELD_NAME"]: f for f in listing(portal, f"crm.{entity}.userfield.list")}
        assert set(CARD) <= set(held) and held["UF_CRM_RS_NEXT_PURCHASE"]["USER_TYPE_ID"] == "date"
    gone = install(portal, uninstall=True)
    assert len(gone.removed) == 10
    assert {f["FIELD_NAME"] for f in listing(portal, "crm.contact.userfield.list")} == before


def test_until_install_only_tasks_are_written(portal, tmp_path):
    report = sync(portal, State(tmp_path / "s.db"))
    assert {a.kind for a in report.plan} == {ActionKind.TASK}
    assert not listing(portal, "crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"}})


def card_values(portal, ids: list[str]) -> dict[str, dict]:
    rows = listing(portal, "crm.contact.list", {"filter": {"@ID": ids}, "select": ["ID", *CARD]})
    return {r["ID"]: {k: r[k] or "" for k in CARD} for r in rows}


def test_cards_hold_the_segment_and_only_changed_cards_are_overwritten(portal, tmp_path):
    install(portal)
    state = State(tmp_path / "s.db")
    first = sync(portal, state)
    reports = {c.customer_id: c for c in first.evaluation.customers}
    held = card_values(portal, list(reports))
    assert len(held) == len(reports) == first.stats["fields_written"] > 0
    for cid, c in reports.items():
        assert [held[cid][k] for k in CARD[:4]] == [c.segment, c.rfm, c.lifecycle, c.tier]
    assert sync(portal, state).stats["fields_written"] == 0  # nothing changed: nothing written
    portal.reset_stats()
    later = sync(portal, state, today=TODAY + timedelta(days=120))  # time passes: stages change
    moved = {c.customer_id: c for c in later.evaluation.customers
             if (c.segment, c.rfm, c.lifecycle, c.tier) != (reports[c.customer_id].segment, reports[c.customer_id].rfm,
                                                           reports[c.customer_id].lifecycle, reports[c.customer_id].tier)}
    assert moved and later.stats["fields_written"] == len(moved) < len(reports)
    traffic = portal.stats()
    assert traffic["commands"]["crm.contact.update"] == len(moved)  # only the changed cards,
    assert "crm.contact.update" not in traffic["requests"]  # and always inside a batch
    now = card_values(portal, list(moved))
    for cid, c in moved.items():  # overwritten, not accumulated
        assert [now[cid][k] for k in CARD[:4]] == [c.segment, c.rfm, c.lifecycle, c.tier]


def test_repeat_deals_carry_products_stage_manager_and_a_comment_with_the_marker(portal, tmp_path):
    install(portal)
    report = sync(portal, State(tmp_path / "s.db"), fallback_user_id=2)
    planned = {a.key: a for a in report.plan if a.kind == ActionKind.DEAL}
    assert planned
    deals = listing(portal, "crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"},
                                              "select": ["ID", "ORIGIN_ID", "CONTACT_ID", "STAGE_ID", "CATEGORY_ID",
                                                         "ASSIGNED_BY_ID", "IS_RETURN_CUSTOMER", "TITLE"]})
    assert sorted(d["ORIGIN_ID"] for d in deals) == sorted(planned)  # one deal per key
    active = {u["ID"] for u in listing(portal, "user.get") if u["ACTIVE"] in (True, "Y")}
    for deal in deals:
        action = planned[deal["ORIGIN_ID"]]
        assert (deal["CONTACT_ID"], deal["STAGE_ID"], deal["CATEGORY_ID"]) == (action.customer_id, "NEW", "0")
        assert deal["IS_RETURN_CUSTOMER"] == "Y" and deal["TITLE"] == action.title
        assert deal["ASSIGNED_BY_ID"] in active
        rows = call(portal, "crm.deal.productrows.get", {"id": deal["ID"]})["result"]
        assert [(str(r["PRODUCT_ID"]), float(r["QUANTITY"])) for r in rows] == [
            (str(x["product_id"]), float(x["quantity"])) for x in action.payload["products"]]
        comments = listing(portal, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": deal["ID"],
                                                                            "ENTITY_TYPE": "deal"}})
        assert [MARKER.findall(c["COMMENT"]) for c in comments] == [[action.key]]


def test_a_fired_managers_deal_goes_to_the_fallback_user(portal, tmp_path):
    install(portal)
    fired = {u["ID"] for u in listing(portal, "user.get") if u["ACTIVE"] not in (True, "Y")}
    assert fired
    report = sync(portal, State(tmp_path / "s.db"), fallback_user_id=2)
    by_key = {d["ORIGIN_ID"]: d for d in listing(portal, "crm.deal.list", {
        "filter": {"ORIGINATOR_ID": "repeat-sales"}, "select": ["ORIGIN_ID", "ASSIGNED_BY_ID"]})}
    theirs = [a for a in report.plan if a.kind == ActionKind.DEAL and a.manager_id in fired]
    assert theirs, "the shop's fired manager still owns customers who are due a repeat deal"
    assert {by_key[a.key]["ASSIGNED_BY_ID"] for a in theirs} == {"2"}


def test_deals_go_to_the_pipeline_and_stage_the_playbook_names(portal, tmp_path):
    install(portal)
    book = load_playbook(overrides={"writeback": {"deal_pipeline": "Опт", "deal_stage": "Подготовка документов"}})
    report = sync(portal, State(tmp_path / "s.db"), playbook=book)
    deals = listing(portal, "crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"},
                                              "select": ["CATEGORY_ID", "STAGE_ID"]})
    assert len(deals) == sum(a.kind == ActionKind.DEAL for a in report.plan) > 0
    assert {(d["CATEGORY_ID"], d["STAGE_ID"]) for d in deals} == {("1", "C1:PREPARATION")}


def test_business_processes_start_on_the_contact_and_missing_templates_become_tasks(portal, tmp_path):
    install(portal)
    feedback = add_workflow_template(portal.store, "rs_feedback")
    winback = add_workflow_template(portal.store, "rs_winback_email")
    report = sync(portal, State(tmp_path / "s.db"))
    flows = [a for a in report.plan if a.kind == ActionKind.WORKFLOW]
    started = [a for a in flows if a.payload["template"] in ("rs_feedback", "rs_winback_email")]
    by_hand = [a for a in flows if a not in started]
    assert started and by_hand and not report.failed
    running = listing(portal, "bizproc.workflow.instances", {"select": ["ID", "TEMPLATE_ID", "DOCUMENT_ID", "ENTITY"]})
    ids = {"rs_feedback": str(feedback), "rs_winback_email": str(winback)}
    assert sorted((w["TEMPLATE_ID"], w["DOCUMENT_ID"], w["ENTITY"]) for w in running) == sorted(
        (ids[a.payload["template"]], f"CONTACT_{a.customer_id}", "CCrmDocumentContact") for a in started)
    for action in started[:5]:  # the card's timeline says so, with the marker
        comments = listing(portal, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": action.customer_id,
                                                                            "ENTITY_TYPE": "contact"}})
        assert action.key in {k for c in comments for k in MARKER.findall(c["COMMENT"])}
    tasks = listing(portal, "tasks.task.list", {"select": ["ID", "TITLE", "DESCRIPTION"],
                                                "filter": {"TAG": "repeat-sales"}}, key="tasks")
    marked = {MARKER.search(t["description"]).group(1): t for t in tasks}
    for action in by_hand:
        assert marked[action.key]["title"].startswith("[workflow]")
        assert action.payload["template"] in marked[action.key]["description"]
    assert sync(portal, State(tmp_path / "s.db")).stats["written"] == 0  # a lost ledger: markers found again


def test_a_resent_deal_and_workflow_batch_leaves_one_deal_and_one_running_start_per_key(portal, tmp_path):
    install(portal)
    add_workflow_template(portal.store, "rs_winback_email")
    portal.drop_next(1, call="crm.deal.add")  # applied, then the answer is lost; fast-bitrix24 resends it
    portal.drop_next(1, call="bizproc.workflow.start")
    report = sync(portal, State(tmp_path / "s.db"))
    assert report.error is None and report.stats["duplicates_removed"] >= 2
    origins = [d["ORIGIN_ID"] for d in listing(portal, "crm.deal.list", {
        "filter": {"ORIGINATOR_ID": "repeat-sales"}, "select": ["ORIGIN_ID"]})]
    assert sorted(origins) == sorted(a.key for a in report.plan if a.kind == ActionKind.DEAL)
    running = listing(portal, "bizproc.workflow.instances", {"select": ["DOCUMENT_ID"]})
    started = [a for a in report.plan if a.kind == ActionKind.WORKFLOW and a.payload["template"] == "rs_winback_email"]
    assert sorted(w["DOCUMENT_ID"] for w in running) == sorted(f"CONTACT_{a.customer_id}" for a in started)


def test_refused_writes_are_reported_per_action_the_rest_lands_and_they_are_retried(portal, tmp_path):
    install(portal)
    tier = next(f for f in listing(portal, "crm.contact.userfield.list") if f["FIELD_NAME"] == "UF_CRM_RS_TIER")
    call(portal, "crm.contact.userfield.delete", {"id": tier["ID"]})  # someone deleted a card field
    portal.fail_next(1, status=400, call="crm.deal.add")
    state = State(tmp_path / "s.db")
    first = sync(portal, state)
    cards = [a for a in first.plan if a.kind == ActionKind.TAG]
    assert set(first.failed) == {a.key for a in cards} | {next(a.key for a in first.plan if a.kind == ActionKind.DEAL)}
    assert "UF_CRM_RS_TIER" in first.failed[cards[0].key] and "install" in first.failed[cards[0].key]
    assert first.stats["written"] == len(first.plan) - len(first.failed)  # the rest landed
    install(portal)  # the field is back
    second = sync(portal, state)
    assert not second.failed and second.stats["written"] == len(first.failed)
    assert len(listing(portal, "crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"}})) == sum(
        a.kind == ActionKind.DEAL for a in first.plan)
    assert sync(portal, state).stats["written"] == 0


def test_a_deleted_contacts_card_is_refused_and_reported_while_the_other_cards_land(portal, tmp_path):
    install(portal)
    state = State(tmp_path / "s.db")
    dry = sync_dry(portal, state)
    gone = next(a.customer_id for a in dry.plan if a.kind == ActionKind.TAG)
    call(portal, "crm.contact.delete", {"id": gone})  # a manager deletes the contact; its deals stay
    report = sync(portal, state)
    refused = {k: why for k, why in report.failed.items() if k.startswith(f"v1:{gone}:segment:")}
    assert len(refused) == 1 and "not found" in next(iter(refused.values())).lower()
    cards = [a for a in report.plan if a.kind == ActionKind.TAG]
    assert report.stats["fields_written"] == len(cards) - 1


def sync_dry(portal, state):
    a = adapter(portal)
    try:
        return run_sync(a, state, load_playbook(), today=TODAY, dry_run=True)
    finally:
        a.close()


def test_a_run_killed_after_the_portal_took_the_writes_is_settled_without_writing_again(portal, tmp_path):
    install(portal)
    add_workflow_template(portal.store, "rs_winback_email")
    state = State(tmp_path / "s.db")
    plan = sync_dry(portal, state).plan
    kinds = [a for a in plan if a.kind in (ActionKind.TAG, ActionKind.DEAL, ActionKind.WORKFLOW)][:40]
    a = adapter(portal)
    try:  # the run marked them pending, the portal applied them, then the process was killed
        state.mark_pending(a.account, kinds)
        assert all(o.ok for o in a.write(kinds))
    finally:
        a.close()
    portal.reset_stats()
    report = sync(portal, state)
    assert report.stats["recovered"] == len(kinds) and not report.failed
    commands = portal.stats()["commands"]
    written_again = {m: commands.get(m, 0) for m in ("crm.contact.update", "crm.deal.add", "bizproc.workflow.start")}
    assert written_again == {"crm.contact.update": sum(x.kind == ActionKind.TAG for x in plan) - sum(
        x.kind == ActionKind.TAG for x in kinds), "crm.deal.add": sum(x.kind == ActionKind.DEAL for x in plan) - sum(
        x.kind == ActionKind.DEAL for x in kinds), "bizproc.workflow.start": sum(
        x.kind == ActionKind.WORKFLOW and x.payload["template"] == "rs_winback_email" for x in plan if x not in kinds)}
    assert sync(portal, state).stats["written"] == 0


def test_a_lost_state_file_finds_cards_and_automation_starts_instead_of_writing_them_again(portal, tmp_path):
    install(portal)
    add_workflow_template(portal.store, "rs_winback_email")
    first = sync(portal, State(tmp_path / "a.db"))
    assert first.stats["written_by_kind"]["tag"] > 0 and first.stats["written_by_kind"]["workflow"] > 0
    portal.reset_stats()
    again = sync(portal, State(tmp_path / "b.db"))  # a brand-new state file
    assert again.stats["written"] == 0 and again.stats["pulled"]["ledger_rebuilt"] > 0
    commands = portal.stats()["commands"]
    assert not {"crm.contact.update", "bizproc.workflow.start", "crm.deal.add", "tasks.task.add"} & set(commands)
