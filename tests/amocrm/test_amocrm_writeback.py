"""amoCRM-only write-back: the segment tag that replaces the old one, Salesbot starts (one request per
chunk, refusals defused), the Salesbot map in settings. Checked through the account's API over HTTP.

Write-back scenarios every CRM shares (cards, repeat deals, refusals, recovery) are in tests/contract/.
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
from tests.contract.amocrm_harness import listing
from tests.contract.harness import automation_playbook

MARKER = re.compile(r"rs:(v\d+:\S+)")
BOTS = {name: bot for bot, name in SALESBOTS.items() if name in ("rs_feedback", "rs_winback_email")}


def get(emu, path: str, params: dict | None = None) -> list[dict]:
    return listing(emu, path, params)


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



def segment_tags(card: dict) -> list[str]:
    return [t["name"] for t in card["_embedded"]["tags"] if t["name"].startswith("rs-segment:")]


def test_one_segment_tag_replaces_the_old_one_and_managers_tags_stay(account, tmp_path):
    install(account)
    state = State(tmp_path / "s.db")
    fixed = load_playbook(overrides={"segments": {"rfm": {"method": "fixed"}}})  # so that time moves segments
    first = sync(account, state, playbook=fixed)
    reports = {c.customer_id: c for c in first.evaluation.customers}
    ids = sorted(reports, key=int)
    patch(account, "/api/v4/contacts", [{"id": int(ids[0]), "tags_to_add": [{"name": "manager-vip"}]}])
    cards = {str(c["id"]): c for c in get(account, "/api/v4/contacts", {"filter[id][]": ids})}
    for cid, rep in reports.items():
        assert segment_tags(cards[cid]) == [f"rs-segment:{rep.segment}"]
    later = sync(account, state, today=TODAY + timedelta(days=120), playbook=fixed)
    moved = [c for c in later.evaluation.customers if c.segment != reports[c.customer_id].segment]
    assert moved
    cards = {str(c["id"]): c for c in get(account, "/api/v4/contacts", {"filter[id][]": ids})}
    for rep in moved:  # replaced, not accumulated
        assert segment_tags(cards[rep.customer_id]) == [f"rs-segment:{rep.segment}"]
    assert "manager-vip" in [t["name"] for t in cards[ids[0]]["_embedded"]["tags"]]  # managers' tags stay


def test_salesbots_start_one_request_per_chunk_and_a_step_without_a_bot_names_the_setting(account, tmp_path):
    install(account)
    report = sync(account, State(tmp_path / "s.db"), playbook=automation_playbook())  # its steps start bots
    flows = [a for a in report.plan if a.kind == ActionKind.WORKFLOW]
    started = [a for a in flows if a.payload["template"] in BOTS]
    by_hand = [a for a in flows if a not in started]
    assert started and by_hand and not report.failed
    chunks = -(-len(report.plan) // 50)  # sync writes 50 actions at a time: one start request per chunk at most
    assert account.stats()["requests"]["POST /api/v2/salesbot/run"] <= chunks < len(started)
    tasks = {MARKER.search(t["text"]).group(1): t for t in get(account, "/api/v4/tasks") if MARKER.search(t["text"])}
    for action in by_hand:
        assert "AMOCRM_SALESBOTS" in tasks[action.key]["text"]


def test_a_refused_salesbot_start_is_reported_and_its_note_defused(account, tmp_path):
    install(account)
    a = token_adapter(account, salesbots={"rs_winback_email": 9999})  # no such bot in the account
    try:
        report = run_sync(a, State(tmp_path / "s.db"), automation_playbook(), today=TODAY)
    finally:
        a.close()
    refused = [x for x in report.plan if x.kind == ActionKind.WORKFLOW and x.payload["template"] == "rs_winback_email"]
    assert refused and set(report.failed) == {x.key for x in refused}
    assert report.stats["written"] == len(report.plan) - len(refused)  # the rest landed
    notes = get(account, "/api/v4/contacts/notes", {"filter[entity_id][]": sorted({x.customer_id for x in refused})})
    texts = " ".join(n["params"]["text"] for n in notes)
    assert not MARKER.findall(texts) and all(f"rs-failed:{x.key}" in texts for x in refused)


def test_the_salesbot_map_is_read_from_settings_and_a_bad_pair_is_named():
    assert load_settings(AMOCRM_SALESBOTS="rs_feedback=7001, rs_content=7002").salesbots() == {
        "rs_feedback": 7001, "rs_content": 7002}
    with pytest.raises(SettingsError) as caught:
        load_settings(AMOCRM_SALESBOTS="rs_feedback:7001")
    assert caught.value.env_name == "AMOCRM_SALESBOTS" and caught.value.exit_code == 2
