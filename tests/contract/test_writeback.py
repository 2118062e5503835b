"""Write-back into every CRM after `install`: card fields, repeat deals, automation starts, refusals.

Everything is checked through the CRM's own API over HTTP, never through the adapter's memory.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from connector.model import ActionKind
from connector.state import State
from playbooks import load_playbook
from playbooks.words import names_for
from tests.contract.harness import automation_playbook


def test_install_twice_creates_nothing_twice_and_uninstall_removes_only_what_it_created(crm):
    before = crm.custom_fields()
    assert ("contact", crm.opt_out_field) in before  # the CRM's own opt-out field, there before us
    first, second = crm.install(), crm.install()
    assert len(first.created) == crm.install_creates and not second.created
    assert any(crm.opt_out_field in name for name in first.existing)
    held = crm.custom_fields()
    assert len(set(held) - set(before)) == crm.install_creates
    for entity in ("contact", "company"):
        assert {(entity, code) for code in crm.card_fields} <= set(held)
        assert held[(entity, crm.card_fields[-1])] == "date"
    gone = crm.install(uninstall=True)
    assert len(gone.removed) == crm.install_creates
    assert crm.custom_fields() == before


def test_cards_hold_the_segment_and_only_changed_cards_are_overwritten(crm, state_at):
    crm.install()
    state = State(state_at("s.db"))
    fixed = load_playbook(overrides={"segments": {"rfm": {"method": "fixed"}}})  # so that time moves segments
    first = crm.sync(state, playbook=fixed)
    reports = {c.customer_id: c for c in first.evaluation.customers}
    held = crm.card_values(reports)
    assert len(held) == len(reports) == first.stats["fields_written"] > 0
    for cid, c in reports.items():
        assert held[cid] == shown(crm, c)
    assert crm.sync(state, playbook=fixed).stats["fields_written"] == 0  # nothing changed: nothing written
    cards = crm.card_writes()
    later = crm.sync(state, playbook=fixed, today=crm.today + timedelta(days=120))  # time passes: stages change
    moved = {c.customer_id: c for c in later.evaluation.customers  # the segment moved, or bonuses burned
             if shown(crm, c) != held[c.customer_id]
             or c.extra.get("bonus_balance") != reports[c.customer_id].extra.get("bonus_balance")}
    assert moved and later.stats["fields_written"] == len(moved) < len(reports)
    assert crm.card_writes() - cards == len(moved), "only the changed cards are written"
    now = crm.card_values(moved)
    for cid, c in moved.items():  # overwritten, not accumulated
        assert now[cid] == shown(crm, c)


RU = names_for(load_playbook())


def shown(crm, c) -> tuple[str, str, str, str]:
    """A card's segment, RFM, lifecycle and tier as the team reads them (Russian playbook); the CRM
    that filters by code (Bitrix24: no tags on contacts) keeps the code in brackets after the name."""
    names = (RU.segment(c.segment), c.rfm, RU.lifecycle(c.lifecycle), RU.tier(c.tier))
    if not crm.card_keeps_codes:
        return names
    return tuple(f"{n} [{code}]" if i != 1 else n for i, (n, code) in enumerate(
        zip(names, (c.segment, c.rfm, c.lifecycle, c.tier), strict=True)))


def test_card_values_are_in_the_team_language_with_the_code_where_a_filter_needs_it(crm, state_at):
    crm.install()
    report = crm.sync(State(state_at("s.db")))
    held = crm.card_values(c.customer_id for c in report.evaluation.customers)
    champion = next(c for c in report.evaluation.customers if c.segment == "champions" and c.tier == "gold")
    segment, _rfm, _lifecycle, tier = held[champion.customer_id]
    if crm.card_keeps_codes:
        assert (segment, tier) == ("Чемпионы [champions]", "Золото [gold]")
    else:  # amoCRM: the segment's code is the card's tag
        assert (segment, tier) == ("Чемпионы", "Золото")
    values = [v for row in held.values() for v in (row[0], row[2], row[3])]
    assert not [v for v in values if v in ("champions", "gold", "active", "lost_champions")]


def test_repeat_deals_carry_products_stage_manager_and_a_note_with_the_marker(crm, state_at):
    crm.install()
    report = crm.sync(State(state_at("s.db")))
    planned = {a.key: a for a in report.plan if a.kind == ActionKind.DEAL}
    assert planned and not report.failed
    deals = crm.repeat_deals()
    assert sorted(d.key for d in deals) == sorted(planned)  # one deal per key
    active, stage = crm.active_users(), crm.new_deal_stage
    for deal in deals:
        action = planned[deal.key]
        assert (deal.customer_id, deal.stage, deal.title) == (action.customer_id, stage, action.title)
        assert deal.responsible in active and deal.marked_ours
        assert deal.products == tuple(sorted((str(x["product_id"]), float(x["quantity"]))
                                             for x in action.payload["products"]))
        assert deal.note_keys == ((action.key,),)


def test_a_fired_managers_deal_goes_to_the_fallback_user(crm, state_at):
    crm.install()
    fired = crm.fired_managers()
    assert fired
    fallback = sorted(crm.active_users() - {"1"}, key=int)[0]
    report = crm.sync(State(state_at("s.db")), adapter_kw={"fallback_user_id": int(fallback)})
    by_key = {d.key: d for d in crm.repeat_deals()}
    theirs = [a for a in report.plan if a.kind == ActionKind.DEAL and a.manager_id in fired]
    assert theirs, "the shop's fired manager still owns customers who are due a repeat deal"
    assert {by_key[a.key].responsible for a in theirs} == {fallback}


def test_automation_starts_on_the_customer_with_a_marker_and_steps_without_one_become_tasks(crm, state_at):
    crm.install()
    crm.automation("rs_feedback", "rs_winback_email")
    report = crm.sync(State(state_at("s.db")), playbook=automation_playbook())
    flows = [a for a in report.plan if a.kind == ActionKind.WORKFLOW]
    started = [a for a in flows if a.payload["template"] in ("rs_feedback", "rs_winback_email")]
    by_hand = [a for a in flows if a not in started]
    assert started and by_hand and not report.failed
    assert crm.automation_starts() == {(a.payload["template"], a.customer_id): 1 for a in started}
    assert crm.held([a.customer_id for a in started])["workflow"].keys() >= {a.key for a in started}
    tasks = crm.tasks()
    for action in by_hand:
        assert tasks[action.key].text.startswith("[workflow]")
        assert action.payload["template"] in tasks[action.key].text
    assert crm.sync(State(state_at("b.db")), playbook=automation_playbook()).stats["written"] == 0  # a lost ledger: markers found again


def test_a_lost_answer_for_deals_and_automation_starts_leaves_one_of_each_per_key(crm, state_at):
    crm.install()
    crm.automation("rs_winback_email")
    state = State(state_at("s.db"))
    crm.emulator.drop_next(1, call=crm.calls.deal_write)  # applied, then the answer is lost
    crm.emulator.drop_next(1, call=crm.calls.workflow_write)
    runs = [crm.sync(state, playbook=automation_playbook())]
    while runs[-1].error is not None and len(runs) < 4:  # the next scheduled runs
        runs.append(crm.sync(state, playbook=automation_playbook()))
    if crm.resends_lost_writes:  # the client resent both batches: their twins were removed at once
        assert len(runs) == 1 and runs[0].stats["duplicates_removed"] >= 2
    else:  # each lost answer left its batch's fate unknown, so its run stopped; markers settled it next run
        assert len(runs) == 3
    report = runs[-1]
    assert report.error is None and not report.failed
    assert sorted(d.key for d in crm.repeat_deals()) == sorted(a.key for a in report.plan if a.kind == ActionKind.DEAL)
    started = [a for a in report.plan if a.kind == ActionKind.WORKFLOW and a.payload["template"] == "rs_winback_email"]
    assert started and crm.automation_starts() == {("rs_winback_email", a.customer_id): 1 for a in started}
    assert crm.sync(state, playbook=automation_playbook()).stats["written"] == 0


def test_refused_writes_are_reported_per_action_the_rest_lands_and_they_are_retried(crm, state_at):
    crm.install()
    tier = crm.card_fields[3]
    crm.delete_card_field(tier)  # someone deleted a card field
    crm.emulator.fail_next(1, status=400, call=crm.calls.deal_write)  # validation refuses the first deal
    state = State(state_at("s.db"))
    first = crm.sync(state)
    cards = [a for a in first.plan if a.kind == ActionKind.TAG]
    deals = [a for a in first.plan if a.kind == ActionKind.DEAL]
    assert set(first.failed) == {a.key for a in cards} | {deals[0].key}
    assert tier in first.failed[cards[0].key] and "install" in first.failed[cards[0].key]
    assert first.stats["written"] == len(first.plan) - len(first.failed)  # the rest landed
    crm.install()  # the field is back
    second = crm.sync(state)
    assert not second.failed and second.stats["written"] == len(first.failed)
    assert sorted(d.key for d in crm.repeat_deals()) == sorted(a.key for a in deals)
    assert crm.sync(state).stats["written"] == 0


def test_deals_go_to_the_pipeline_and_stage_the_playbook_names(crm, state_at):
    crm.install()
    pipeline, stage, held_as = crm.named_stage()
    book = load_playbook(overrides={"writeback": {"deal_pipeline": pipeline, "deal_stage": stage}})
    report = crm.sync(State(state_at("s.db")), playbook=book)
    assert not report.failed
    deals = crm.repeat_deals()
    assert len(deals) == sum(a.kind == ActionKind.DEAL for a in report.plan) > 0
    assert {d.stage for d in deals} == {held_as}


def test_a_deleted_contacts_card_is_refused_and_reported_while_the_other_cards_land(crm, state_at):
    crm.install()
    state = State(state_at("s.db"))
    dry = crm.sync(state, dry_run=True)
    gone = next(a.customer_id for a in dry.plan if a.kind == ActionKind.TAG)
    crm.delete_customer(gone)  # a manager deletes the contact; its deals stay
    report = crm.sync(state)
    refused = {k: why for k, why in report.failed.items() if k.startswith(f"v1:{gone}:segment:")}
    assert len(refused) == 1 and "not found" in next(iter(refused.values())).lower()
    assert report.stats["fields_written"] == sum(a.kind == ActionKind.TAG for a in report.plan) - 1


def test_a_run_killed_after_the_crm_took_the_writes_is_settled_without_writing_again(crm, state_at):
    crm.install()
    crm.automation("rs_winback_email")
    state = State(state_at("s.db"))
    plan = crm.sync(state, playbook=automation_playbook(), dry_run=True).plan
    bots = [x for x in plan if x.kind == ActionKind.WORKFLOW and x.payload["template"] == "rs_winback_email"]
    picked = [x for x in plan if x.kind == ActionKind.TAG][:10] + [x for x in plan if x.kind == ActionKind.DEAL][:3]
    picked += bots[:3]
    a = crm.adapter()
    try:  # the run marked them pending, the CRM applied them, then the process was killed
        state.mark_pending(a.account, picked)
        assert all(o.ok for o in a.write(picked))
    finally:
        a.close()
    deals, starts, cards = len(crm.repeat_deals()), sum(crm.automation_starts().values()), crm.card_writes()
    report = crm.sync(state, playbook=automation_playbook())
    assert report.stats["recovered"] == len(picked) and not report.failed
    assert len(crm.repeat_deals()) - deals == sum(x.kind == ActionKind.DEAL for x in plan) - 3
    assert sum(crm.automation_starts().values()) - starts == len(bots) - 3
    assert crm.card_writes() - cards == sum(x.kind == ActionKind.TAG for x in plan) - 10
    assert crm.sync(state, playbook=automation_playbook()).stats["written"] == 0


def test_a_lost_state_file_finds_cards_deals_and_automation_starts_instead_of_writing_them_again(crm, state_at):
    crm.install()
    crm.automation("rs_winback_email")
    first = crm.sync(State(state_at("a.db")), playbook=automation_playbook())
    assert {k: first.stats["written_by_kind"].get(k, 0) > 0 for k in ("task", "tag", "deal", "workflow")} == {
        "task": True, "tag": True, "deal": True, "workflow": True}
    crm.emulator.reset_stats()
    cards = crm.card_writes()
    again = crm.sync(State(state_at("b.db")), playbook=automation_playbook())  # a brand-new state file
    assert again.stats["written"] == 0 and again.stats["pulled"]["ledger_rebuilt"] > 0
    assert crm.card_writes() == cards
    assert not any(crm.call_count(call) for call in (crm.calls.task_write, crm.calls.deal_write,
                                                     crm.calls.workflow_write))


CODES_IN_TEXT = re.compile(r"(уровень|уровня|сегмент|стадия|tier|segment|stage) (gold|silver|bronze|none|champions|"
                           r"lost_champions|loyal|at_risk|promising|hibernating|others|active|sleeping|lost|new)\b")


@pytest.mark.parametrize("lang, tiers", [("ru", ("Золото", "Серебро", "Бронза")), ("en", ("Gold", "Silver", "Bronze"))])
def test_task_texts_name_tiers_and_segments_in_the_playbook_language(crm, state_at, lang, tiers):
    crm.install()
    crm.sync(State(state_at("s.db")), playbook=load_playbook(lang=lang))
    texts = [t.text for t in crm.tasks().values()]
    assert texts
    assert not [m.group(0) for t in texts for m in [CODES_IN_TEXT.search(t)] if m]  # "уровень gold" is gone
    assert any(f"{word} {tier}" in t for t in texts for tier in tiers
               for word in ("уровень", "уровня", "tier", "the"))
