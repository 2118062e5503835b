"""The plan's counts on top of a columnar segmentation, with the reference rules and guards.

The segmentation comes from the columns (playbooks.columnar); each customer's facts are made
only to run the rules, and each customer's actions are counted and let go: `analyze` prints
how many actions a sync would plan and hold back, never the actions themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from itertools import chain

from connector.model import Customer, Product
from playbooks.api import PlanHistory
from playbooks.columnar import LIFECYCLE, TRENDS, Segmented, metrics, predict_into, segment, segment_counts
from playbooks.columns import purchase_columns
from playbooks.facts import ShopFacts, customer_facts
from playbooks.keys import applied_by_customer
from playbooks.rules import REGISTRY
from playbooks.segments import LEVELS, assign_tier


def plan_counts(s: Segmented, customers: Sequence[Customer], *, history: PlanHistory | None = None,
                catalogue: Mapping[str, Product] | None = None, newcomers: Sequence[Customer] = ()) -> tuple[int, int]:
    """(planned, suppressed) as engine.run counts them; `customers` in the order of s.cols.ids."""
    from playbooks.engine import fill_bonuses, learn_from_shop, plan_guarded, prospect_facts

    pb, today = s.playbook, s.today
    history = history or PlanHistory()
    shop = ShopFacts()
    facts = [customer_facts(c, today, pb.currency, pb.rates, history, shop) for c in customers]
    learn_from_shop(facts, shop, pb, catalogue)
    fill(s, facts, today)
    s.bonus_credits = fill_bonuses(facts, today, pb)
    applied = applied_by_customer(history.applied, REGISTRY) if history.applied else {}
    planned = suppressed = 0
    leads = prospect_facts(newcomers, today, pb, history, shop)
    for kept, dropped in plan_guarded(chain(facts, leads), today, pb, applied):
        planned += len(kept)
        suppressed += len(dropped)
    return planned, suppressed


def fill(s: Segmented, facts: list, today: date) -> None:
    """Copy the columnar segmentation into the facts the rules read (segments.assign's fields)."""
    tiers = s.playbook.segments.tiers
    cols = (s.r.tolist(), s.f.tolist(), s.m.tolist(), s.segment.tolist(), s.lifecycle.tolist(),
            s.sleeping_after.tolist(), s.lost_after.tolist(), s.value.tolist(), s.trend.tolist(), s.holdout.tolist())
    for f, (r, fr, m, seg, stage, sleeping, lost, value, trend, hold) in zip(
            facts, zip(*cols, strict=True), strict=True):
        f.sleeping_after, f.lost_after = sleeping, lost
        f.lifecycle = LIFECYCLE[stage]
        if f.n:
            f.r, f.f, f.m = r, fr, m
            f.rfm = f"{r}{fr}{m}"
            f.segment = s.names[seg]
        f.value = LEVELS[value]
        f.trend = TRENDS[trend]
        assign_tier(f, tiers)
        f.holdout = hold


def evaluate_columns(customers: Sequence[Customer], today: date, playbook, *, history: PlanHistory | None = None,
                     catalogue: Sequence[Product] | None = None, cac: float | None = None, predict: bool = True,
                     prospects: int = 0, plan: bool = True,
                     newcomers: Sequence[Customer] = ()) -> tuple[Segmented, dict[str, int], dict[str, object]]:
    """engine.evaluate's segments and metrics (with the plan's counts when `plan`), the customers'
    reports to be drawn from columnar.reports(segmented) one at a time."""
    cols = purchase_columns(customers, today, playbook.currency, playbook.rates, keep_customers=plan,
                            paid_field=playbook.bonuses.paid_field if playbook.bonuses_on else None)
    s = segment(cols, today, playbook)
    if predict:
        predict_into(s)
    out = metrics(s, cac=cac, prospects=prospects)
    if plan:
        products = {p.id: p for p in catalogue} if catalogue is not None else None
        out["planned"], out["suppressed"] = plan_counts(s, cols.customers, history=history, catalogue=products,
                                                           newcomers=newcomers)
        cols.customers = None
    if s.model_note:
        out["model_note"] = s.model_note
    return s, segment_counts(s), out
