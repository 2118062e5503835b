"""Repeat-sales metrics; the definitions are spelled out in README.md, "Definitions"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from connector.model import Customer

if TYPE_CHECKING:
    from playbooks.api import Evaluation
    from playbooks.facts import CustomerFacts
    from playbooks.schema import Playbook

YEAR_DAYS = 365


def ltv_3f(aov: float, purchases_per_year: float, lifespan_years: float) -> float:
    """LTV = average order value x purchases per year x customer lifespan in years."""
    return aov * purchases_per_year * lifespan_years


def cac(marketing_spend: float, new_customers: int) -> float | None:
    """Customer acquisition cost: spend / customers it brought; None without new customers."""
    return marketing_spend / new_customers if new_customers else None


def ltv_cac(ltv: float, cac_value: float | None) -> float | None:
    """LTV:CAC; above 3 is the usual healthy mark. None when CAC is unknown or zero."""
    return ltv / cac_value if cac_value else None


def _buy_dates(c: Customer) -> list[date]:
    return sorted(p.date for p in c.purchases if p.amount > 0)


def retention_rate(customers: Iterable[Customer], start: date, end: date, *,
                   active_days: int = YEAR_DAYS) -> float | None:
    """Customer retention rate CRR = (E - N) / S over the period (start, end].

    S: customers active at `start` (a purchase in the `active_days` up to and including it);
    E: customers active at `end`; N: customers whose first purchase falls in (start, end].
    None when S = 0.
    """
    s = e = n = 0
    for c in customers:
        days = _buy_dates(c)
        if not days:
            continue
        if any(start - timedelta(days=active_days) < d <= start for d in days):
            s += 1
        if any(end - timedelta(days=active_days) < d <= end for d in days):
            e += 1
        if start < days[0] <= end:
            n += 1
    return (e - n) / s if s else None


def segment_migration(before: Evaluation, after: Evaluation, *, by: str = "segment") -> dict[tuple[str, str], int]:
    """(from, to) -> customers between two evaluations; `by` is any CustomerReport field.

    A customer missing on one side migrates from or to "none".
    """
    a = {r.customer_id: str(getattr(r, by)) for r in before.customers}
    b = {r.customer_id: str(getattr(r, by)) for r in after.customers}
    counts: Counter[tuple[str, str]] = Counter()
    for cid in a.keys() | b.keys():
        counts[(a.get(cid, "none"), b.get(cid, "none"))] += 1
    return dict(sorted(counts.items()))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def compute_metrics(facts: Sequence[CustomerFacts], today: date, playbook: Playbook,
                    *, cac: float | None = None, prospects: int = 0, secret: str = "") -> dict[str, object]:
    """The `metrics` object of `analyze`: all amounts in the playbook currency, rounded to 2-4 places.

    `secret`: the referral secret (settings); without it no referral is counted.

    `prospects`: contacts the caller knows without any purchase and did not pass in (a snapshot
    streams only buyers); they add to `prospects` next to evaluated customers without a purchase.
    """
    buyers = [f for f in facts if f.n]
    n_customers = len(buyers)
    purchases = sum(f.n for f in buyers)
    firsts: list[float] = []
    later: list[float] = []
    excluded = 0
    year_ago = today - timedelta(days=YEAR_DAYS)
    year_purchases = 0
    year_customers = 0
    new_12m = 0
    for f in buyers:
        excluded += f.excluded_other_currency
        for i, a in enumerate(f.amounts):
            if a is None:
                continue
            (firsts if i == 0 else later).append(a)
        recent = sum(1 for p in f.purchases if p.date > year_ago)
        if recent:
            year_purchases += recent
            year_customers += 1
        if f.first > year_ago:
            new_12m += 1
    revenue = sum(firsts) + sum(later)
    known = len(firsts) + len(later)
    aov = revenue / known if known else 0.0
    per_year = year_purchases / year_customers if year_customers else 0.0
    ltv = revenue / n_customers if n_customers else 0.0
    lost = sum(1 for f in buyers if f.lifecycle == "lost")
    mcfg = playbook.metrics
    crr = retention_rate((f.customer for f in buyers), today - timedelta(days=mcfg.retention_period_days),
                         today, active_days=mcfg.retention_active_days)
    ltv3 = ltv_3f(aov, per_year, mcfg.lifespan_years)
    out: dict[str, object] = {
        "customers": n_customers,
        "prospects": len(facts) - n_customers + prospects,
        "purchases": purchases,
        "revenue": round(revenue, 2),
        "currency": playbook.currency,
        "repeat_rate": round(sum(1 for f in buyers if f.n >= 2) / n_customers, 4) if n_customers else 0.0,
        "purchase_frequency": round(purchases / n_customers, 4) if n_customers else 0.0,
        "aov": round(aov, 2),
        "aov_new": round(_mean(firsts), 2),
        "aov_returning": round(_mean(later), 2),
        "ltv": round(ltv, 2),
        "purchases_per_year": round(per_year, 4),
        "lifespan_years": mcfg.lifespan_years,
        "ltv_3f": round(ltv3, 2),
        "churn_rate": round(lost / n_customers, 4) if n_customers else 0.0,
        "crr_12m": round(crr, 4) if crr is not None else None,
        "new_customers_12m": new_12m,
        "excluded_other_currency": excluded,
        "returning_revenue_share": round(sum(later) / revenue, 4) if revenue else 0.0,
        "returning_orders_share": round((purchases - n_customers) / purchases, 4) if purchases else 0.0,
    }
    from playbooks.money import Row, director_metrics

    rows = (Row(f.customer, f.purchases, f.amounts, f.segment) for f in facts)
    out.update(director_metrics(rows, today, playbook, ltv3=ltv3, cac=cac, secret=secret))
    return out
