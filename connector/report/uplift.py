"""Did the rules sell? Per rule: customers who got its actions against matched hold-out customers.

The method is METHOD below; the report prints it next to the figures.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta

from connector.model import Customer, Product
from playbooks import PlanHistory
from playbooks.engine import build_facts, plan_for
from playbooks.facts import CustomerFacts
from playbooks.guards import guard_customer
from playbooks.keys import applied_by_customer, parse_key
from playbooks.rules import REGISTRY

WINDOW_DAYS = 30
MIN_GROUP = 30  # units per group below which the report says "sample too small to tell"
LOOKBACK_DAYS = 365  # exposures older than this are not replayed
MAX_REPLAY_DAYS = 60  # more sync days than this: an evenly spaced subset, for both groups alike
Z95 = 1.959963984540054
METHOD = (
    "Unit: one (customer, rule, anchor) episode, e.g. one reactivation chain or one post-purchase "
    "calendar; its exposure day is the day its first action was written (ledger, status 'done').",
    "Hold-out: each day the ledger shows actions written is replayed as of that day for the hold-out "
    "customers: the rules plan for them and every guard except the hold-out one runs, counting what the "
    "replay already sent them (so chains advance and frequency caps fill); an action due by that day is an "
    "exposure the customer would have received. Both groups are so matched on the rule's own eligibility, "
    "the sync days and the other guards; replayed the same way, the treated customers give back exactly "
    "the ledger. With more than 60 sync days, an evenly spaced 60 of them are used for both groups.",
    "Conversion: a purchase (positive amount) within the window after the exposure day, the exposure "
    "day itself excluded. Episodes whose window has not ended yet are left out (waiting).",
    "Uplift = conversion(treated) - conversion(hold-out), with a 95% Newcombe hybrid score interval "
    "(method 10 of Newcombe 1998, from the two Wilson intervals). Below the minimum group size in "
    "either group no uplift is claimed.",
)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_diff(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """p1 - p2 with Newcombe's hybrid score interval: (difference, low, high)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _replay_days(days: Sequence[date]) -> list[date]:
    days = sorted(set(days))
    if len(days) <= MAX_REPLAY_DAYS:
        return days
    step = (len(days) - 1) / (MAX_REPLAY_DAYS - 1)
    return sorted({days[round(i * step)] for i in range(MAX_REPLAY_DAYS)})


def replayed_exposures(customers: Sequence[Customer], days: Sequence[date], playbook,
                       catalogue: Mapping[str, Product] | None = None, *,
                       select: Callable[[CustomerFacts], bool] = lambda f: f.holdout,
                       ) -> dict[tuple[str, str, str], date]:
    """(customer, rule, anchor) -> first replayed day a selected (by default hold-out) customer
    would have got an action from sync, with every guard but the hold-out one.

    What the replay "writes" is kept as the customers' own virtual ledger, so their chains move on
    and their frequency caps fill up as a treated customer's would. A customer's history only ever
    concerns their own keys, so the virtual ledger alone is their history. Replaying the treated
    customers (`select=lambda f: not f.holdout`) on every sync day reproduces the ledger.
    """
    out: dict[tuple[str, str, str], date] = {}
    virtual: dict[str, date] = {}
    for day in sorted(days):
        history = PlanHistory(dict(virtual))
        by_customer = applied_by_customer(virtual, REGISTRY)
        for f in build_facts(customers, day, playbook, history, catalogue):
            if not select(f):
                continue
            kept, _dropped = guard_customer(f.customer, plan_for(f, day, playbook), day, playbook.guards,
                                            by_customer.get(f.customer.id, ()), holdout=False)
            for a in kept:
                if a.due > day or a.key in history.applied:
                    continue
                virtual[a.key] = day
                parts = parse_key(a.key, REGISTRY)
                out.setdefault((a.customer_id, a.rule, parts.anchor if parts else a.key), day)
    return out


def treated_exposures(applied: Mapping[str, date], days: set[date]) -> dict[tuple[str, str, str], date]:
    """(customer, rule, anchor) -> the day its first action was written, for episodes started on `days`."""
    first: dict[tuple[str, str, str], date] = {}
    for key, day in applied.items():
        parts = parse_key(key, REGISTRY)
        if parts is None:
            continue
        unit = (parts.customer_id, parts.rule, parts.anchor)
        if unit not in first or day < first[unit]:
            first[unit] = day
    return {u: d for u, d in first.items() if d in days}


def rule_uplift(customers: Sequence[Customer], applied: Mapping[str, date], today: date, playbook, *,
                catalogue: Mapping[str, Product] | None = None, window_days: int = WINDOW_DAYS,
                min_group: int = MIN_GROUP) -> dict:
    """Per rule: treated and hold-out episodes, conversions, uplift with its 95 % interval.

    `catalogue` must be what sync evaluated with (the snapshot's products), so the replay plans alike.
    """
    horizon = today - timedelta(days=window_days)
    oldest = today - timedelta(days=LOOKBACK_DAYS)
    all_days = {d for d in applied.values() if oldest <= d}
    matured = [d for d in all_days if d <= horizon]
    days = _replay_days(matured)
    treated = treated_exposures(applied, set(days))
    waiting = treated_exposures(applied, {d for d in all_days if d > horizon})
    held = replayed_exposures(customers, days, playbook, catalogue) if days else {}
    buys: dict[str, list[date]] = {c.id: sorted({p.date for p in c.purchases if p.amount > 0}) for c in customers}

    def converted(cid: str, day: date) -> bool:
        dates = buys.get(cid, [])
        i = bisect.bisect_right(dates, day)
        return i < len(dates) and dates[i] <= day + timedelta(days=window_days)

    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("treated", "treated_converted", "holdout", "holdout_converted", "waiting"), 0))
    for (cid, rule, _anchor), day in treated.items():
        counts[rule]["treated"] += 1
        counts[rule]["treated_converted"] += converted(cid, day)
    for (cid, rule, _anchor), day in held.items():
        counts[rule]["holdout"] += 1
        counts[rule]["holdout_converted"] += converted(cid, day)
    for (_cid, rule, _anchor) in waiting:
        counts[rule]["waiting"] += 1
    actions: dict[str, int] = defaultdict(int)
    for key in applied:
        parts = parse_key(key, REGISTRY)
        if parts is not None:
            actions[parts.rule] += 1
    rules = []
    for rule in sorted(set(counts) | set(actions)):
        c = counts[rule]
        row: dict = {"rule": rule, "actions_written": actions.get(rule, 0), **c}
        nt, nh = c["treated"], c["holdout"]
        row["treated_rate"] = round(c["treated_converted"] / nt, 4) if nt else None
        row["holdout_rate"] = round(c["holdout_converted"] / nh, 4) if nh else None
        if nt >= min_group and nh >= min_group:
            d, lo, hi = newcombe_diff(c["treated_converted"], nt, c["holdout_converted"], nh)
            row.update(uplift=round(d, 4), ci_low=round(lo, 4), ci_high=round(hi, 4),
                       verdict=("more purchases than the hold-out" if lo > 0 else
                                "fewer purchases than the hold-out" if hi < 0 else "no clear difference"),
                       statement=f"uplift {d * 100:+.1f} pp (95% CI {lo * 100:+.1f} to {hi * 100:+.1f} pp)")
        else:
            row.update(uplift=None, ci_low=None, ci_high=None, verdict="sample too small",
                       statement=f"sample too small to tell: {nt} treated, {nh} held out")
        rules.append(row)
    return {"window_days": window_days, "min_group": min_group, "replayed_days": len(days),
            "sync_days": len(matured), "first_day": days[0].isoformat() if days else None,
            "last_day": days[-1].isoformat() if days else None, "rules": rules,
            "method": list(METHOD)}
