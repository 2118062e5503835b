"""Write-back into amoCRM after `install`: card fields and the segment tag, repeat deals (leads), Salesbots.

Everything is checked through the account's own API over HTTP (GET /api/v4/contacts,
/api/v4/leads?with=catalog_elements, /api/v4/leads/notes, /_emulator/stats), not the adapter's memory.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from amo_support import TODAY, token_adapter

from connector.errors import SettingsError
from connector.model import ActionKind
from connector.settings import load_settings
from connector.state import State
from connector.sync import run_sync
from emulators.amocrm.routes_writeback import SALESBOTS
from playbooks import load_playbook

MARKER = re.compile(r"rs:(v\d+:\S+)")
CODES = ["RS_SEGMENT", "RS_RFM", "RS_LIFECYCLE", "RS_TIER"]
BOTS = {name: bot for bot, name in SALESBOTS.items() if name in ("rs_feedback", "rs_winback_email")}


def get(emu, path: str, params: dict | None = None) -> list[dict]:
    """Every item of a list, page by page."""
    headers = {"Authorization": f"Bearer {emu.access_token}"}
    rows, page = [], 1
    while True:
        r = requests.get(emu.base_url + path, params={**(params or {}), "page": page, "limit": 250},
                         headers=headers, timeout=30)
        if r.status_code == 204:
            return rows
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        rows += next(iter(body["_embedded"].values()))
        if "next" not in body["_links"]:
            return rows
        page += 1


def patch(emu, path: str, body: list[dict]) -> None:
    r = requests.patch(emu.base_url + path, json=body, headers={"Authorization": f"Bearer {emu.access_token}"},
                       timeout=30)
    assert r.status_code == 200, r.text[:300]


def install(emu, *, uninstall: bool = False):
    a = token_adapter(emu)
    try:
        return a.install(uninstall=uninstall)
    finally:
        a.close()


def sync(emu, state, *, today=TODAY, playbook=None, **kw):
    a = token_adapter(emu, salesbots=BOTS, **kw)
    try:
        return run_sync(a, state, playbook or load_playbook(), today=today)
    finally:
        a.close()


def value(raw: dict, code: str):
    for cf in raw.get("custom_fields_values") or []:
        if cf["field_code"] == code:
            return cf["values"][0]["value"]
    return None


def test_install_twice_creates_nothing_twice_and_uninstall_removes_only_what_it_created(account):
    before = {f["code"] for f in get(account, "/api/v4/contacts/custom_fields")}
    assert "NO_MARKETING" in before  # the account's own opt-out field, there before us
    first, second = install(account), install(account)
    assert len(first.created) == 11 and not second.created  # 5 card fields x contacts, companies; the lead key
    held = {f["code"]: f for f in get(account, "/api/v4/contacts/custom_fields")}
    assert {*CODES, "RS_NEXT_PURCHASE"} <= set(held) and held["RS_NEXT_PURCHASE"]["type"] == "date"
    assert "RS_ACTION_KEY" in {f["code"] for f in get(account, "/api/v4/leads/custom_fields")}
    gone = install(account, uninstall=True)
    assert len(gone.removed) == 11
    assert {f["code"] for f in get(account, "/api/v4/contacts/custom_fields")} == before


def test_cards_hold_the_segment_and_one_segment_tag_that_replaces_the_old_one(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    fixed = load_playbook(overrides={"segments": {"rfm": {"method": "fixed"}}})  # so that time moves segments
    first = sync(account, state, playbook=fixed)
    reports = {c.customer_id: c for c in first.evaluation.customers}
    ids = sorted(reports, key=int)
    patch(account, "/api/v4/contacts", [{"id": int(ids[0]), "tags_to_add": [{"name": "manager-vip"}]}])
    cards = {str(c["id"]): c for c in get(account, "/api/v4/contacts", {"filter[id][]": ids})}
    for cid, rep in reports.items():
        assert [value(cards[cid], code) for code in CODES] == [rep.segment, rep.rfm, rep.lifecycle, rep.tier]
        tags = [t["name"] for t in cards[cid]["_embedded"]["tags"]]
        assert [t for t in tags if t.startswith("rs-segment:")] == [f"rs-segment:{rep.segment}"]
    later = sync(account, state, today=TODAY + timedelta(days=120), playbook=fixed)
    moved = [c for c in later.evaluation.customers if c.segment != reports[c.customer_id].segment]
    assert moved and 0 < later.stats["fields_written"] < len(reports)
    cards = {str(c["id"]): c for c in get(account, "/api/v4/contacts", {"filter[id][]": ids})}
    for rep in moved:  # replaced, not accumulated
        tags = [t["name"] for t in cards[rep.customer_id]["_embedded"]["tags"]]
        assert [t for t in tags if t.startswith("rs-segment:")] == [f"rs-segment:{rep.segment}"]
        assert value(cards[rep.customer_id], "RS_SEGMENT") == rep.segment
    assert "manager-vip" in [t["name"] for t in cards[ids[0]]["_embedded"]["tags"]]  # managers' tags stay


def test_repeat_deals_are_leads_with_products_the_customer_and_a_note_with_the_marker(account, tmp_path):
    install(account)
    report = sync(account, State(tmp_path / "s.db"))
    planned = {a.key: a for a in report.plan if a.kind == ActionKind.DEAL}
    assert planned and not report.failed
    leads = [x for x in get(account, "/api/v4/leads", {"with": "catalog_elements,contacts", "order[id]": "desc",
                                                       "limit": 250}) if value(x, "RS_ACTION_KEY")]
    assert sorted(value(x, "RS_ACTION_KEY") for x in leads) == sorted(planned)  # one lead per key
    pipelines = get(account, "/api/v4/leads/pipelines")
    main = next(p for p in pipelines if p["is_main"])
    first_open = next(s["id"] for s in sorted(main["_embedded"]["statuses"], key=lambda s: s["sort"]) if s["type"] == 0)
    active = {u["id"] for u in get(account, "/api/v4/users") if u["rights"]["is_active"]}
    for lead in leads:
        action = planned[value(lead, "RS_ACTION_KEY")]
        assert (lead["pipeline_id"], lead["status_id"]) == (main["id"], first_open)
        assert [c["id"] for c in lead["_embedded"]["contacts"]] == [int(action.customer_id)]
        assert lead["responsible_user_id"] in active and "repeat-sales" in [t["name"] for t in lead["_embedded"]["tags"]]
        assert sorted((e["id"], e["metadata"]["quantity"]) for e in lead["_embedded"]["catalog_elements"]) == sorted(
            (int(x["product_id"]), float(x["quantity"])) for x in action.payload["products"])
        notes = get(account, f"/api/v4/leads/{lead['id']}/notes")
        assert [MARKER.findall(n["params"]["text"]) for n in notes] == [[action.key]]


def test_salesbots_start_on_contacts_with_a_note_and_steps_without_a_bot_become_tasks(account, tmp_path):
    install(account)
    report = sync(account, State(tmp_path / "s.db"))
    flows = [a for a in report.plan if a.kind == ActionKind.WORKFLOW]
    started = [a for a in flows if a.payload["template"] in BOTS]
    by_hand = [a for a in flows if a not in started]
    assert started and by_hand and not report.failed
    stats = requests.get(f"{account.base_url}/_emulator/stats", timeout=10).json()
    assert stats["objects"]["salesbot_run"] == len(started)
    chunks = -(-len(report.plan) // 50)  # sync writes 50 actions at a time: one start request per chunk at most
    assert stats["requests"]["POST /api/v2/salesbot/run"] <= chunks < len(started)
    notes = get(account, "/api/v4/contacts/notes", {"filter[entity_id][]": sorted({a.customer_id for a in started})})
    assert {k for n in notes for k in MARKER.findall(n["params"]["text"])} >= {a.key for a in started}
    tasks = {MARKER.search(t["text"]).group(1): t for t in get(account, "/api/v4/tasks") if MARKER.search(t["text"])}
    for action in by_hand:
        assert tasks[action.key]["text"].startswith("[workflow]") and "AMOCRM_SALESBOTS" in tasks[action.key]["text"]


def test_refused_writes_are_reported_per_action_the_rest_lands_and_they_are_retried(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    account.fail_next(1, status=400, call="POST /api/v4/leads")  # validation refuses the first lead of the batch
    first = sync(account, state)
    deals = [a for a in first.plan if a.kind == ActionKind.DEAL]
    assert list(first.failed) == [deals[0].key] and first.stats["written"] == len(first.plan) - 1
    second = sync(account, state)
    assert not second.failed and second.stats["written"] == 1
    keys = [value(x, "RS_ACTION_KEY") for x in get(account, "/api/v4/leads", {"order[id]": "desc"})]
    assert sorted(k for k in keys if k) == sorted(a.key for a in deals)


def test_a_lost_lead_answer_is_settled_by_the_key_on_the_lead(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    account.drop_next(1, call="POST /api/v4/leads")  # created, then the connection is cut
    first = sync(account, state)
    assert first.error is not None  # the batch's fate was unknown, so the run stopped
    second = sync(account, state)
    assert second.error is None and not second.failed
    keys = [value(x, "RS_ACTION_KEY") for x in get(account, "/api/v4/leads", {"order[id]": "desc"})]
    deals = sorted(a.key for a in second.plan if a.kind == ActionKind.DEAL)
    assert sorted(k for k in keys if k) == deals  # one lead per key
    assert sync(account, state).stats["written"] == 0


def test_a_refused_salesbot_start_is_reported_and_its_note_defused(account, tmp_path):
    install(account)
    a = token_adapter(account, salesbots={"rs_winback_email": 9999})  # no such bot in the account
    try:
        report = run_sync(a, State(tmp_path / "s.db"), load_playbook(), today=TODAY)
    finally:
        a.close()
    refused = [x for x in report.plan if x.kind == ActionKind.WORKFLOW and x.payload["template"] == "rs_winback_email"]
    assert refused and set(report.failed) == {x.key for x in refused}
    assert report.stats["written"] == len(report.plan) - len(refused)  # the rest landed
    notes = get(account, "/api/v4/contacts/notes", {"filter[entity_id][]": sorted({x.customer_id for x in refused})})
    texts = " ".join(n["params"]["text"] for n in notes)
    assert not MARKER.findall(texts) and all(f"rs-failed:{x.key}" in texts for x in refused)


def test_a_deleted_contacts_card_is_refused_and_reported_while_the_other_cards_land(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    a = token_adapter(account)
    try:
        dry = run_sync(a, state, load_playbook(), today=TODAY, dry_run=True)
    finally:
        a.close()
    gone = next(x.customer_id for x in dry.plan if x.kind == ActionKind.TAG)
    with account.store.lock:  # a manager deletes the contact in the UI (API v4 has no contact DELETE)
        del account.store.contacts[int(gone)]
        account.store.touch("contacts")
    report = sync(account, state)
    refused = [k for k in report.failed if k.startswith(f"v1:{gone}:segment:")]
    assert len(refused) == 1 and "not found" in report.failed[refused[0]].lower()
    assert report.stats["fields_written"] == sum(x.kind == ActionKind.TAG for x in report.plan) - 1


def test_a_run_killed_after_the_account_took_the_writes_is_settled_without_writing_again(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    a = token_adapter(account, salesbots=BOTS)
    try:
        plan = run_sync(a, state, load_playbook(), today=TODAY, dry_run=True).plan
        kinds = [x for x in plan if x.kind in (ActionKind.TAG, ActionKind.DEAL, ActionKind.WORKFLOW)]
        picked = [next(x for x in kinds if x.kind == k) for k in (ActionKind.TAG, ActionKind.DEAL)]
        picked += [x for x in kinds if x.kind == ActionKind.WORKFLOW and x.payload["template"] in BOTS][:3]
        state.mark_pending(a.account, picked)  # the run marked them, the account applied them, then it died
        assert all(o.ok for o in a.write(picked))
    finally:
        a.close()
    runs, leads = account.stats()["objects"]["salesbot_run"], account.stats()["objects"]["lead"]
    report = sync(account, state)
    assert report.stats["recovered"] == len(picked) and not report.failed
    objects = account.stats()["objects"]
    assert objects["salesbot_run"] - runs == sum(x.kind == ActionKind.WORKFLOW and x.payload["template"] in BOTS
                                                 for x in plan) - 3
    assert objects["lead"] - leads == sum(x.kind == ActionKind.DEAL for x in plan) - 1
    assert sync(account, state).stats["written"] == 0


def test_the_salesbot_map_is_read_from_settings_and_a_bad_pair_is_named():
    assert load_settings(AMOCRM_SALESBOTS="rs_feedback=7001, rs_content=7002").salesbots() == {
        "rs_feedback": 7001, "rs_content": 7002}
    with pytest.raises(SettingsError) as caught:
        load_settings(AMOCRM_SALESBOTS="rs_feedback:7001")
    assert caught.value.env_name == "AMOCRM_SALESBOTS" and caught.value.exit_code == 2
