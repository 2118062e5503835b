"""The calendar's and reactivation's actions counted from a CSV's columns (playbooks.columnar_counts):
the same planned and held-back counts as the reference engine, under caps, exempt rules, steps
that stop on a new purchase and steps that cannot fall back to a task - and the counted customers'
objects are never made."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import pytest

from connector.transactions_columns import read_transaction_table
from connector.transactions_csv import read_transactions
from playbooks import PlanHistory, evaluate, load_playbook
from playbooks.columnar_plan import evaluate_purchases

STEPS = [
    {"name": "now", "day": 0, "fire_within_days": 0, "kind": "task", "title": "t {name}", "body": "b"},
    {"name": "soon", "day": 30, "fire_within_days": 10, "stop_if_new_purchase": True, "kind": "task",
     "channel": "call", "title": "t {name}", "body": "b {products}"},
    {"name": "later", "day": 35, "channels": ["email", "task"], "title": "t", "body": "b", "subject": "s",
     "text": "{name}"},
    {"name": "last", "day": 62, "kind": "task", "title": "t", "body": "b"},
]
VARIANTS = {
    "bundled": {},
    "one_touch": {"guards": {"cap": {"max_touches": 1}}},
    "calendar_exempt": {"guards": {"cap": {"exempt_rules": ["calendar"]}}},
    "no_cap": {"guards": {"cap": {"enabled": False}}},
    "overlapping_steps": {"rules": {"calendar": {"fire_within_days": 6, "steps": STEPS}}},
    "no_fallback": {"rules": {"calendar": {"steps": [*STEPS[:2], {**STEPS[2], "channels": ["email"]}]}}},
    "no_hold_out": {"guards": {"holdout": {"enabled": False}, "cap": {"max_touches": 0}}},
}


def _write_csv(path, rows: int, seed: int) -> None:
    """CDNOW-like: no products, several purchases of a customer on one day, $0 rows, two years."""
    rng = random.Random(seed)
    lines = ["customer_id,date,quantity,amount"]
    for _ in range(rows):
        day = date(2024, 7, 1) + timedelta(days=rng.randrange(730))
        amount = 0 if rng.random() < 0.02 else round(rng.uniform(5, 300), 2)
        cid = rng.randrange(rows // 5)
        for _ in range(1 + (rng.random() < 0.2)):
            lines.append(f"{cid:05d},{day.isoformat()},{rng.randrange(1, 4)},{amount}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _history(customers, today, book) -> PlanHistory:
    """Every third action planned a week ago written to the CRM then (caps and chains count it)."""
    week_ago = today - timedelta(days=7)
    plan = evaluate(customers, week_ago, book).plan
    return PlanHistory({a.key: week_ago for a in plan[::3]})


class Asked(list):
    """The table's customers, remembering which ones the plan asked for."""

    def __init__(self, items):
        super().__init__(items)
        self.asked: set[int] = set()

    def __getitem__(self, i):
        self.asked.add(i)
        return super().__getitem__(i)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_calendar_and_reactivation_counted_from_the_columns_match_the_reference(tmp_path, variant):
    path = tmp_path / "t.csv"
    _write_csv(path, 4000, 7)
    customers = read_transactions(path)
    table, _ = read_transaction_table(path)
    book = load_playbook(overrides=VARIANTS[variant]) if VARIANTS[variant] else load_playbook()
    spared = 0
    days = (date(2026, 7, 1), date(2025, 1, 1), date(2025, 12, 7), date(2026, 3, 20))
    for today, history in [(day, PlanHistory()) for day in days] + [(days[3], _history(customers, days[3], book))]:
        ref = evaluate(customers, today, book, history=history)
        got = {}
        for bare in (True, False):
            people = Asked(table.customers)
            _s, _segments, metrics = evaluate_purchases(table.columns(today, book.currency, book.rates),
                                                        people, today, book, history=history,
                                                        with_items=table.with_items,
                                                        birthdays=False, scored=False, bare=bare)
            assert json.dumps(metrics) == json.dumps(ref.metrics), (today, bare)
            got[bare] = people.asked
        assert got[True] <= got[False]
        spared += len(got[False] - got[True])
    assert spared > 0  # the shortcut was taken: its customers' objects were not made
