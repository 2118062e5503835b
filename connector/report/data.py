"""The report's figures as plain data: metric trends, segments and their migration, the RFM grid,
cohort retention, repeat rate by first product and the lifetime model's view.

Everything here is computed from the local snapshot (`State.customers`) with the playbook layer's
own definitions (README.md, "Definitions"); dates come out as ISO strings, so the dict is JSON.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from connector.links import card_url
from connector.model import Customer, Purchase
from playbooks import Evaluation, segment_migration
from playbooks.engine import build_facts, report
from playbooks.metrics import compute_metrics
from playbooks.words import names_for

TREND_MONTHS = 12
MIGRATION_DAYS = 90
COHORT_MONTHS = 12  # cohorts shown, and months after the first purchase
FIRST_PRODUCT_GROUPS = 12  # the biggest categories; the rest is "other"
REPEAT_WINDOW_DAYS = 90  # "bought again within 90 days" of the first purchase
P_ALIVE_BINS = 10
TOP_CUSTOMERS = 10
# metrics charted month by month: key -> unit (names: playbooks.words, in the playbook's language)
TREND_METRICS: dict[str, str] = {
    "customers": "count", "repeat_rate": "share", "purchase_frequency": "number", "aov": "money", "ltv": "money",
    "ltv_3f": "money", "purchases_per_year": "number", "churn_rate": "share", "crr_12m": "share",
    "new_customers_12m": "count",
}


def month_end(day: date) -> date:
    nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_ends(today: date, count: int) -> list[date]:
    """The last `count` month ends on or before `today`, oldest first."""
    last = month_end(today) if month_end(today) == today else add_months(today, 0) - timedelta(days=1)
    out = [last]
    while len(out) < count:
        out.append(add_months(out[-1], 0) - timedelta(days=1))
    return out[::-1]


def purchases_of(c: Customer, today: date) -> list[Purchase]:
    """Purchases as the definitions count them: positive amount, dated on or before `today`."""
    return [p for p in c.purchases if p.amount > 0 and p.date <= today]


def evaluation_as_of(customers: Sequence[Customer], day: date, playbook) -> Evaluation:
    """Segments and metrics as of `day`, without rules or the lifetime model (cheap enough per month)."""
    facts = build_facts(customers, day, playbook)
    return Evaluation(as_of=day, customers=[report(f) for f in facts], plan=[], segments={},
                      metrics=compute_metrics(facts, day, playbook))


def trend_days(today: date, count: int = TREND_MONTHS) -> list[date]:
    """The last `count - 1` month ends before `today`, then `today` itself: the current month is
    shown too, as it stands (a month end that is today is not counted twice)."""
    ends = month_ends(today, count)
    return ends if ends[-1] == today else [*ends[1:], today]


def metric_trend(customers: Sequence[Customer], today: date, playbook) -> dict:
    """Each TREND_METRICS value as of each of the last TREND_MONTHS - 1 month ends and today."""
    from playbooks.columns import purchase_columns

    days = trend_days(today)
    series: dict[str, list] = {k: [] for k in TREND_METRICS}
    # the purchases as columns once; each month end is a cut of them (playbooks.columnar, the
    # same figures as compute_metrics over that day's facts), not the playbook evaluated again
    cols = purchase_columns(customers, today, playbook.currency, playbook.rates)
    for day in days:
        metrics = metrics_as_of(cols, day, playbook)
        for key in TREND_METRICS:
            series[key].append(metrics.get(key))
    names = names_for(playbook)
    return {"months": [d.isoformat() for d in days], "series": series,
            "labels": {k: {"label": names.metric(k), "unit": unit} for k, unit in TREND_METRICS.items()}}


def metrics_as_of(cols, day: date, playbook) -> dict:
    """compute_metrics as of `day` (without the director's figures) from the counted purchases of
    a later day (playbooks.columns.PurchaseColumns): those after `day` are left out."""
    import numpy as np

    from playbooks.columnar import metrics, segment
    from playbooks.columns import PurchaseColumns

    kept = cols.day <= day.toordinal()
    start = np.concatenate(([0], np.cumsum(kept)))[cols.start]
    cut = PurchaseColumns(ids=cols.ids, start=start, day=cols.day[kept], amount=cols.amount[kept])
    return metrics(segment(cut, day, playbook))


def segment_order(playbook) -> list[str]:
    rfm = playbook.segments.rfm
    return [s.name for s in rfm.segments] + [rfm.fallback]


def segment_sizes(current: Evaluation, playbook) -> dict:
    named = Counter(c.segment for c in current.customers if c.purchases)
    order = [s for s in segment_order(playbook) if named.get(s)] + sorted(set(named) - set(segment_order(playbook)))
    lifecycle = Counter(c.lifecycle for c in current.customers if c.purchases)
    stages = [s for s in ("new", "active", "sleeping", "lost") if lifecycle.get(s)]
    return {"segments": [{"segment": s, "customers": named[s]} for s in order],
            "lifecycle": [{"stage": s, "customers": lifecycle[s]} for s in stages],
            "holdout": sum(1 for c in current.customers if c.holdout)}


def migration(before: Evaluation, after: Evaluation, playbook) -> dict:
    """From -> to counts of named segments between two evaluations (`none`: not a customer then)."""
    pairs = segment_migration(before, after, by="segment")
    seen = {a for a, _b in pairs} | {b for _a, b in pairs}
    order = [s for s in ["none", "no_purchases", *segment_order(playbook)] if s in seen]
    order += sorted(seen - set(order))
    matrix = [[pairs.get((a, b), 0) for b in order] for a in order]
    moved = sum(n for (a, b), n in pairs.items() if a != b)
    return {"from_date": before.as_of.isoformat(), "to_date": after.as_of.isoformat(), "segments": order,
            "matrix": matrix, "moved": moved, "total": sum(pairs.values())}


def rfm_grid(current: Evaluation) -> dict:
    """Customers and average spend per (R, F) score pair; rows R 5..1, columns F 1..5."""
    count: Counter[tuple[int, int]] = Counter()
    spend: defaultdict[tuple[int, int], float] = defaultdict(float)
    for c in current.customers:
        if not c.purchases or not c.rfm.isdigit() or c.rfm == "000":
            continue
        key = (int(c.rfm[0]), int(c.rfm[1]))
        count[key] += 1
        spend[key] += c.monetary
    cells = [[{"customers": count[(r, f)],
               "avg_monetary": round(spend[(r, f)] / count[(r, f)], 2) if count[(r, f)] else None}
              for f in range(1, 6)] for r in range(5, 0, -1)]
    return {"r": [5, 4, 3, 2, 1], "f": [1, 2, 3, 4, 5], "cells": cells}


def cohorts(customers: Sequence[Customer], today: date) -> dict:
    """Share of each first-purchase month's customers who bought in month +k (k = 0 is 100 %).

    Only months that have begun by `today` get a value; the current month is partial.
    """
    first_month = add_months(today, -(COHORT_MONTHS - 1))
    members: defaultdict[date, int] = defaultdict(int)
    active: defaultdict[tuple[date, int], int] = defaultdict(int)
    for c in customers:
        bought = purchases_of(c, today)
        if not bought:
            continue
        start = add_months(bought[0].date, 0)
        if start < first_month:
            continue
        members[start] += 1
        months = {(p.date.year - start.year) * 12 + p.date.month - start.month for p in bought}
        for k in months:
            if k < COHORT_MONTHS:
                active[(start, k)] += 1
    rows = []
    for i in range(COHORT_MONTHS):
        start = add_months(first_month, i)
        size = members.get(start, 0)
        elapsed = (today.year - start.year) * 12 + today.month - start.month
        values = [round(active[(start, k)] / size, 4) if size and k <= elapsed else None
                  for k in range(COHORT_MONTHS)]
        rows.append({"cohort": start.strftime("%Y-%m"), "customers": size, "retention": values})
    return {"offsets": list(range(COHORT_MONTHS)), "rows": rows}


def first_product_group(p: Purchase) -> str:
    """The category (else the product name) of the purchase's biggest line; the first line on ties."""
    if not p.items:
        return "(no line items)"
    best = max(p.items, key=lambda i: i.quantity * i.price)
    return best.category or best.name or "(unnamed product)"


def repeat_by_first_product(customers: Sequence[Customer], today: date) -> dict:
    """Repeat rate per category of the first purchase: all customers, and within 90 days for those
    whose first purchase is at least 90 days old (a fair comparison across ages)."""
    stats: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # customers, repeat, aged, repeat90
    for c in customers:
        bought = purchases_of(c, today)
        if not bought:
            continue
        first = bought[0]
        s = stats[first_product_group(first)]
        days = sorted({p.date for p in bought})
        s[0] += 1
        s[1] += len(bought) >= 2
        if (today - first.date).days >= REPEAT_WINDOW_DAYS:
            s[2] += 1
            s[3] += any(0 < (d - first.date).days <= REPEAT_WINDOW_DAYS for d in days)
    ranked = sorted(stats.items(), key=lambda kv: (-kv[1][0], kv[0]))
    if len(ranked) > FIRST_PRODUCT_GROUPS:
        rest = [0, 0, 0, 0]
        for _k, s in ranked[FIRST_PRODUCT_GROUPS - 1:]:
            rest = [a + b for a, b in zip(rest, s, strict=True)]
        ranked = ranked[:FIRST_PRODUCT_GROUPS - 1] + [("other", rest)]
    rows = [{"group": k, "customers": s[0], "repeaters": s[1],
             "repeat_rate": round(s[1] / s[0], 4) if s[0] else None,
             "aged_customers": s[2], "repeat_90d": round(s[3] / s[2], 4) if s[2] else None}
            for k, s in ranked]
    return {"window_days": REPEAT_WINDOW_DAYS, "rows": rows}


def lifetime_view(current: Evaluation, playbook, people: Mapping[str, Customer] | None = None,
                  account: str = "") -> dict:
    """The BG/NBD + Gamma-Gamma figures: the model, p_alive distribution, per segment, top customers."""
    if current.model is None:
        return {"model": None, "note": current.metrics.get("model_note") or "no lifetime model"}
    rows = [c for c in current.customers if "p_alive" in c.extra]
    # one purchase: BG/NBD's p_alive is 1 by construction (nobody drops out before a repeat), which
    # reads as "certain to return"; the chance of return is shown for repeat buyers only
    repeaters = [c for c in rows if c.purchases >= 2]
    bins = [0] * P_ALIVE_BINS
    for c in repeaters:
        bins[min(int(float(c.extra["p_alive"]) * P_ALIVE_BINS), P_ALIVE_BINS - 1)] += 1
    by_segment: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0])
    for c in rows:
        s = by_segment[c.segment]
        s[0] += 1
        if c.purchases >= 2:
            s[1] += float(c.extra["p_alive"])
            s[4] += 1
        s[2] += float(c.extra["expected_purchases_90d"])
        s[3] += float(c.extra["predicted_ltv"])
    order = [s for s in segment_order(playbook) if s in by_segment] + sorted(set(by_segment) - set(segment_order(playbook)))
    people = people or {}
    top = sorted(rows, key=lambda c: (-float(c.extra["predicted_ltv"]), c.customer_id))[:TOP_CUSTOMERS]
    return {
        "model": current.model, "note": None,
        "p_alive_bins": [{"from": i / P_ALIVE_BINS, "to": (i + 1) / P_ALIVE_BINS, "customers": n}
                         for i, n in enumerate(bins)],
        "segments": [{"segment": s, "customers": int(by_segment[s][0]),
                      "mean_p_alive": round(by_segment[s][1] / by_segment[s][4], 4) if by_segment[s][4] else None,
                      "expected_purchases_90d": round(by_segment[s][2], 2),
                      "predicted_ltv": round(by_segment[s][3], 2),
                      "predicted_ltv_per_customer": round(by_segment[s][3] / by_segment[s][0], 2)}
                     for s in order],
        "one_time_buyers": len(rows) - len(repeaters),
        "total_expected_purchases_90d": round(sum(float(c.extra["expected_purchases_90d"]) for c in rows), 2),
        "total_predicted_ltv": round(sum(float(c.extra["predicted_ltv"]) for c in rows), 2),
        "top_customers": [{"customer_id": c.customer_id, **contact(people.get(c.customer_id), account),
                           "segment": c.segment, "purchases": c.purchases, "monetary": c.monetary,
                           **{k: c.extra[k] for k in ("p_alive", "expected_purchases_90d", "predicted_ltv")}}
                          for c in top],
    }


def contact(customer: Customer | None, account: str) -> dict:
    """Who a top customer is and where to act: name, manager id and the link to the CRM card."""
    if customer is None:
        return {"name": "", "manager_id": None, "url": None}
    return {"name": customer.name, "manager_id": customer.manager_id,
            "url": card_url(account, customer.id, customer.kind)}
