"""The sync's columnar evaluation of the snapshot gives the reference engine's answer.

Both emulator shops are pulled and written to over HTTP by real syncs (so the ledger holds what
was applied, and the reactivation chains move on), a few purchases get posted NPS answers, and on
several days and playbook variants connector.evaluate_columns must give what playbooks.evaluate
over state.customers() gives: every customer's report, the segments, the metrics, the model, the
plan (every action, in order) and what the guards held back.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from itertools import islice

import pytest

from connector import evaluate_columns, forked
from connector.crm import PullPage
from connector.evaluate_columns import evaluate_snapshot
from connector.feedback import FeedbackAnswers, with_answers
from connector.fields import CardFacts, card_facts, snapshot_card_facts
from connector.forked import started
from connector.state import State
from connector.sync import run_sync
from playbooks import PlanHistory, evaluate, load_playbook
from tests.store_engines import fresh_schema

SHOP_DAY = date(2026, 6, 15)
VARIANTS = {
    "default": {},
    "spend_tiers_rhythm_burning_bonuses_learned_cycles": {
        "segments": {"lifecycle": {"relative_to_rhythm": True},
                     "tiers": {"by": "spend", "tiers": [{"name": "bronze", "min_spend": 0, "cashback_percent": 1},
                                                        {"name": "silver", "min_spend": 15000, "cashback_percent": 2},
                                                        {"name": "gold", "min_spend": 50000, "cashback_percent": 4}]}},
        "bonuses": {"bonus_expiry_days": 120},
        "rules": {"replenishment": {"categories": {"Кофе": 20.0}, "use_catalogue": False},  # and learned cycles
                  "reactivation": {"rhythm_factor": 2.0}}},
}

REFERRALS = {"rules": {"referral": {"code": {"title": "Код {code}"}, "thanks": {"title": "Спасибо"}}}}


def _synced(crm: str, target, processes: int = 1):
    """A state after two real syncs a week apart (the second one writes the first one's follow-ups)."""
    if crm == "bitrix":
        from connector.bitrix import BitrixAdapter
        from emulators.bitrix import BitrixEmulator

        emu = BitrixEmulator(customers=300, seed=42, today=SHOP_DAY)
        make = lambda: BitrixAdapter(emu.webhook_url)  # noqa: E731
    else:
        from connector.amocrm import AmoAdapter
        from emulators.amocrm import AmoEmulator

        emu = AmoEmulator(customers=300, seed=42, today=SHOP_DAY)
        make = lambda: AmoAdapter(emu.base_url, access_token=emu.access_token)  # noqa: E731
    state = State(target)
    with emu:
        for day in (SHOP_DAY - timedelta(days=7), SHOP_DAY):
            adapter = make()
            try:
                report = run_sync(adapter, state, load_playbook(), today=day, processes=processes)
                account = adapter.account
            finally:
                adapter.close()
            assert report.stats["written"] > 0
    return state, account


def _reference(state: State, account: str, today: date, book, secret: str = ""):
    answers = FeedbackAnswers(state).scores(account)
    return evaluate(with_answers(state.customers(account, lean=True), answers), today, book,
                    history=PlanHistory(state.applied_dates(account)), catalogue=state.products(account).values(),
                    prospects=state.prospect_count(account), secret=secret)


@pytest.mark.parametrize(("crm", "engine", "two_cores"), [("bitrix", "sqlite", False), ("amocrm", "sqlite", True),
                                                        ("bitrix", "postgresql", True)])
def test_the_sync_evaluates_the_snapshot_in_columns_with_the_reference_answer(crm, engine, two_cores, tmp_path, request,
                                                                             monkeypatch):
    """On PostgreSQL too: the purchases' day, amount and currency are columns of their own there as well.
    `two_cores` (SYNC_PROCESSES=2): the plan's due customers split with a forked child however few they
    are (a big shop's way), the child reading its part over a connection of its own; else none is forked."""
    forks, fits = [], []
    monkeypatch.setattr(forked, "PLAN_SPLIT_FROM", 1)
    monkeypatch.setattr(forked, "started", lambda compute: forks.append(1) or started(compute))
    monkeypatch.setattr(evaluate_columns, "APART_FROM", 1)  # and the model fitted by a child meanwhile
    monkeypatch.setattr(evaluate_columns, "started", lambda compute: fits.append(1) or started(compute))
    if engine == "postgresql":
        target = fresh_schema(request.getfixturevalue("pg_url"), "columnar")
    else:
        target = tmp_path / "s.db"
    state, account = _synced(crm, target, processes=2 if two_cores else 1)
    some = [replace(c, tags=frozenset({"rs-segment:new", "vip"} if k % 2 else {"vip"}))
            for k, c in enumerate(islice(state.customers(account), 6))]  # cards holding the segment tag
    state.absorb(account, PullPage(customers=some), state.start_run(account, "sync", False))
    paid = [replace(c.purchases[-1], fields={**(c.purchases[-1].fields or {}), "bonus_paid": ("150,5", "x", "90000")[k % 3]})
            for k, c in enumerate(islice(state.customers(account), 0, None, 4)) if c.purchases]
    state.absorb(account, PullPage(purchases=paid), state.start_run(account, "sync", False))  # bonuses paid with
    facts = {c.id: card_facts(c) for c in state.customers(account)}  # the card fields' pass, from columns
    assert snapshot_card_facts(state.db, account) == {k: f for k, f in facts.items() if f != CardFacts(frozenset(), "")}
    assert any(f.next_purchase for f in facts.values())
    assert sum(1 for f in facts.values() if f.segment_tags) == 3
    ids = [r[0] for r in state.db.execute("SELECT id FROM purchases WHERE account=? ORDER BY id", (account,))]
    answers = FeedbackAnswers(state)
    for k, pid in enumerate(ids[::9]):  # posted NPS answers: the nps rule and the director's NPS read them
        answers.record(account, pid, k % 11, SHOP_DAY)
    try:
        for name, over, secret in [(*v, "") for v in VARIANTS.items()] + [("referral_codes", REFERRALS, "s3cret")]:
            book = load_playbook(overrides=over) if over else load_playbook()
            for today in (SHOP_DAY, SHOP_DAY + timedelta(days=9), SHOP_DAY + timedelta(days=45)):
                ref = _reference(state, account, today, book, secret)
                got = evaluate_snapshot(state, account, today, book, history=PlanHistory(state.applied_dates(account)),
                                        catalogue=state.products(account).values(),
                                        prospects=state.prospect_count(account), secret=secret,
                                        processes=2 if two_cores else 1)
                assert [c.to_json() for c in got.customers] == [c.to_json() for c in ref.customers], (name, today)
                assert got.segments == ref.segments
                assert json.dumps(got.metrics) == json.dumps(ref.metrics), (name, today)
                assert json.dumps(got.model) == json.dumps(ref.model)
                assert [a.key for a in got.plan] == [a.key for a in ref.plan], (name, today)
                assert got.plan == ref.plan
                assert got.suppressed == ref.suppressed
                assert ref.metrics["planned"] > 0 and ref.metrics["nps_answers"] > 0
                assert {a.customer_id for a in ref.plan} & {p.customer_id for p in paid}  # their balances planned
        assert len(forks) == (2 + 9 if two_cores else 0)  # the plan of each sync and each evaluation split
        assert len(fits) == len(forks)  # and the model of each fitted apart
    finally:
        state.close()
