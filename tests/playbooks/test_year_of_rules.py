"""A year of daily dry runs on the demo shop: every rule of the playbook's second edition fires, and its
actions go through the same guards as every other rule (hold-out, opt-out, quiet days, the cap).

The demo shop (emulators.shop) as it stands at the end of the year, with its playbook
(emulators/shop_playbook.toml), is planned every day of that year the way the daily sync saw it
then: purchases after the day do not count yet, a contact is a prospect until its first purchase,
and what is due is written once (its key recorded as applied that day) and counts towards the
frequency cap from then on. The engine's own path (engine.build_facts, engine.plan_guarded).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest

from connector.model import Customer, LineItem, Product, Purchase
from emulators.shop import generate_shop
from emulators.shop_extras import PLAYBOOK
from playbooks import PlanHistory, load_playbook
from playbooks.engine import build_facts, plan_guarded
from playbooks.guards import is_holdout, is_opted_out
from playbooks.keys import applied_by_customer
from playbooks.rules import REGISTRY

FIRST_DAY = date(2026, 1, 1)
CUSTOMERS = 150
NEW_RULES = ("upsell", "seasonal", "welcome", "renewal", "promo")
# rules that only make the walk slower: the calendar and reactivation stay to compete for the cap
QUIET_RULES = ("replenishment", "cross_sell", "loyalty", "birthday", "holidays")
# the bundled guards, with a control group big enough that each rule meets it in a small shop
WALK = {"rules": {k: {"enabled": False} for k in QUIET_RULES}, "guards": {"holdout": {"percent": 25.0}}}


def demo_shop(customers: int, today: date) -> tuple[list[Customer], list[Product]]:
    """The shop as the adapters read it: cards with their creation day, deals with rows, discounts, promo codes."""
    shop = generate_shop(customers, 42, today)
    catalogue = [Product(str(p.id), p.name, p.category, p.price, p.currency, p.cycle_days, p.term_days)
                 for p in shop.products]
    bought: dict[int, list[Purchase]] = defaultdict(list)
    for deal in shop.won_deals():
        items = tuple(LineItem(str(ln.product_id), shop.product(ln.product_id).name, ln.quantity, ln.price,
                               shop.product(ln.product_id).category, ln.discount) for ln in deal.lines)
        bought[deal.customer_id].append(Purchase(str(deal.id), str(deal.customer_id), deal.closed.date(), deal.amount,
                                                 deal.currency, items, promo=deal.promo))
    people = [Customer(id=str(c.id), name=c.name, emails=c.emails, phones=c.phones, birthday=c.birthday,
                       fields={"no_marketing": "1" if c.no_marketing else "0", **({"gender": c.gender} if c.gender else {})},
                       created=c.created.date(), purchases=tuple(bought.get(c.id, ())))
              for c in shop.customers]
    return people, catalogue


class Written:
    """An action as the daily sync wrote it, and the day it did."""

    def __init__(self, action, written_on: date) -> None:
        self.action, self.written_on = action, written_on

    def __getattr__(self, name):
        return getattr(self.action, name)


@pytest.fixture(scope="module")
def year():
    """Each day's plan and suppressions over a year, with what was written and when."""
    customers, catalogue = demo_shop(CUSTOMERS, FIRST_DAY + timedelta(days=364))
    products = {p.id: p for p in catalogue}
    book = load_playbook(PLAYBOOK, overrides=WALK)
    history = PlanHistory({})
    planned, suppressed, written = [], [], {}
    for offset in range(365):
        today = FIRST_DAY + timedelta(days=offset)
        facts = build_facts(customers, today, book, history, products)
        applied = applied_by_customer(history.applied, REGISTRY)
        for kept, dropped in plan_guarded(facts, today, book, applied):
            for a in kept:
                if a.due <= today and a.key not in history.applied:
                    history.applied[a.key] = today  # the daily sync writes it, once
                    written[a.key] = Written(a, today)
            planned += kept
            suppressed += dropped
    return {c.id: c for c in customers}, book, planned, suppressed, written


def test_every_new_rule_fires_in_a_year_of_daily_runs(year):
    _customers, _book, _planned, _suppressed, written = year
    fired = Counter(a.rule for a in written.values())
    for rule in NEW_RULES:
        assert fired[rule] > 0, f"{rule} never fired: {dict(fired)}"


def test_reactivation_by_rhythm_waits_for_a_slow_buyer(year):
    customers, book, _planned, _suppressed, written = year
    cfg = book.rule("reactivation")
    waited = [a for a in written.values() if a.rule == "reactivation" and a.step == "email"
              and (a.due - customers[a.customer_id].purchases[-1].date).days > cfg.silence_days]
    assert waited, "some customer's own rhythm put the chain later than silence_days"


def test_new_rules_are_held_out_guarded_and_capped_like_every_other(year):
    customers, book, planned, suppressed, written = year
    guards = book.guards
    reasons = defaultdict(set)
    for s in suppressed:
        reasons[s.rule].add(s.reason)
    for rule in NEW_RULES:
        assert "holdout" in reasons[rule], f"{rule}: no held-out customer ever lost an action ({reasons[rule]})"
    for a in planned:
        c = customers[a.customer_id]
        assert not is_holdout(c.id, guards.holdout), f"{a.key} planned for the control group"
        if a.channel.value != "task":
            assert not is_opted_out(c, guards.opt_out), f"{a.key} reaches a customer who opted out"
    sent_on = history_of(written)
    for key, a in written.items():
        if (a.payload.get("via") or a.channel.value) in guards.quiet.channels:
            assert sent_on[key].weekday() != 6, f"{key} sent on a quiet Sunday"
    cap = guards.cap
    by_customer = defaultdict(list)
    for key, a in written.items():
        if a.rule not in cap.exempt_rules:
            by_customer[a.customer_id].append(sent_on[key])
    for cid, days in by_customer.items():
        days.sort()
        for i, day in enumerate(days):
            inside = [d for d in days[i:] if (d - day).days < cap.period_days]
            assert len(inside) <= cap.max_touches, f"customer {cid}: {len(inside)} actions from {day}"
    for reason in ("frequency_cap", "opt_out"):
        assert any(s.reason == reason and s.rule in NEW_RULES for s in suppressed), f"no new rule's action met {reason}"


def history_of(written: dict) -> dict:
    return {key: a.written_on for key, a in written.items()}
