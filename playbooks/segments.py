"""Segmentations: RFM scores and named segments, lifecycle stage, value level, trend, loyalty tier.

Edges are inclusive upper bounds: with frequency edges [1, 2, 3, 5] a customer with 2
purchases scores 2 and one with 6 scores 5; with recency edges [30, 90, 180, 365] a customer
silent for exactly 30 days scores R = 5 and one silent for 31 days R = 4.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import date, timedelta

from connector.model import Purchase
from playbooks.facts import CustomerFacts
from playbooks.schema import (
    ConditionSegment,
    LifecycleConfig,
    Playbook,
    RfmConfig,
    TierConfig,
    TrendConfig,
    ValueConfig,
)

LEVELS = ("base", "middle", "vip")


def bucket(value: float, edges: Sequence[float]) -> int:
    """0..len(edges): how many edges lie strictly below `value` (an edge belongs to the lower bucket)."""
    return sum(1 for e in edges if value > e)


def score(value: float, edges: Sequence[float], *, lower_is_better: bool = False) -> int:
    """A 1-5 score from 4 edges; recency uses `lower_is_better` (fewer days, higher score)."""
    b = bucket(value, edges)
    return 5 - b if lower_is_better else 1 + b


def quantile_edges(values: Sequence[float]) -> list[float]:
    """The 20/40/60/80% quantiles (inclusive method); a single value repeats itself."""
    if not values:
        return [0.0, 0.0, 0.0, 0.0]
    if len(values) == 1:
        return [float(values[0])] * 4
    edges = [float(q) for q in statistics.quantiles(values, n=5, method="inclusive")]
    for i in range(1, len(edges)):  # interpolation rounding must not break the order
        edges[i] = max(edges[i], edges[i - 1])
    return edges


def rfm_edges(facts: Sequence[CustomerFacts], cfg: RfmConfig) -> tuple[list[float], list[float], list[float]]:
    if cfg.method == "fixed":
        return list(cfg.recency_edges), list(cfg.frequency_edges), list(cfg.monetary_edges)
    buyers = [f for f in facts if f.n]
    return (quantile_edges([f.recency_days for f in buyers]),
            quantile_edges([f.n for f in buyers]),
            quantile_edges([f.monetary for f in buyers]))


def rfm_segment(r: int, f: int, m: int, cfg: RfmConfig) -> str:
    """The first named segment whose ranges hold all three scores, else the fallback."""
    for rule in cfg.segments:
        if all(lo <= s <= hi for s, (lo, hi) in ((r, rule.span("r")), (f, rule.span("f")), (m, rule.span("m")))):
            return rule.name
    return cfg.fallback


def lifecycle_thresholds(median_interval: float | None, n: int, cfg: LifecycleConfig) -> tuple[int, int]:
    """Days of silence after which a customer is sleeping / lost.

    With `relative_to_rhythm` and enough purchases the thresholds stretch to the customer's own
    rhythm (median gap x factor) but never fall below the fixed ones.
    """
    sleeping, lost = cfg.sleeping_days, cfg.lost_days
    if cfg.relative_to_rhythm and median_interval and n >= cfg.rhythm_min_purchases:
        sleeping = max(sleeping, round(median_interval * cfg.rhythm_sleeping_factor))
        lost = max(lost, round(median_interval * cfg.rhythm_lost_factor), sleeping + 1)
    return sleeping, lost


def lifecycle_stage(n: int, recency_days: int | None, sleeping_after: int, lost_after: int,
                    cfg: LifecycleConfig) -> str:
    """prospect (no purchase) | lost (> lost_after days) | sleeping (> sleeping_after) | new | active.

    `new` is a customer with exactly one purchase at most `new_days` old.
    """
    if n == 0 or recency_days is None:
        return "prospect"
    if recency_days > lost_after:
        return "lost"
    if recency_days > sleeping_after:
        return "sleeping"
    if n == 1 and recency_days <= cfg.new_days:
        return "new"
    return "active"


def _top_edge(values_desc: Sequence[float], share: float) -> float:
    if share <= 0 or not values_desc:
        return math.inf
    k = max(1, math.ceil(share * len(values_desc)))
    return values_desc[min(k, len(values_desc)) - 1]


def value_edges(facts: Sequence[CustomerFacts], cfg: ValueConfig) -> dict[str, tuple[float, float]]:
    """metric -> (vip edge, middle edge); a customer at or above an edge reaches that level."""
    if cfg.method == "fixed":
        return {"monetary": (cfg.vip_monetary, cfg.middle_monetary), "aov": (cfg.vip_aov, cfg.middle_aov)}
    buyers = [f for f in facts if f.n]
    out = {}
    for metric in cfg.metrics:
        vals = sorted((getattr(f, metric) for f in buyers), reverse=True)
        out[metric] = (_top_edge(vals, cfg.vip_share), _top_edge(vals, cfg.vip_share + cfg.middle_share))
    return out


def value_level(f: CustomerFacts, edges: dict[str, tuple[float, float]], cfg: ValueConfig) -> str:
    """The highest level any configured metric reaches (vip beats middle beats base)."""
    level = 0
    if not f.n:
        return LEVELS[0]
    for metric in cfg.metrics:
        vip, middle = edges[metric]
        v = getattr(f, metric)
        if v > 0 and v >= vip:
            level = 2
        elif v > 0 and v >= middle:
            level = max(level, 1)
    return LEVELS[level]


def trend_of(f: CustomerFacts, today: date, cfg: TrendConfig) -> str:
    """growing | stable | fading: the last `window_days` against the earlier average per window.

    Spend and purchase-count ratios are averaged; beyond 1 +/- threshold the trend moves.
    A history shorter than `min_history_days` before the window is `stable`.
    """
    if not f.n:
        return "stable"
    cut = today - timedelta(days=cfg.window_days)
    span = (cut - f.first).days
    if span <= 0 or span < cfg.min_history_days:
        return "stable"
    recent_n = earlier_n = 0
    recent_s = earlier_s = 0.0
    for p, a in zip(f.purchases, f.amounts, strict=True):
        if p.date > cut:
            recent_n += 1
            recent_s += a or 0.0
        else:
            earlier_n += 1
            earlier_s += a or 0.0
    scale = cfg.window_days / span
    ratios = [recent_n / (earlier_n * scale)]
    if earlier_s > 0:
        ratios.append(recent_s / (earlier_s * scale))
    combined = sum(ratios) / len(ratios)
    if combined >= 1 + cfg.threshold:
        return "growing"
    if combined <= 1 - cfg.threshold:
        return "fading"
    return "stable"


def assign_tier(f: CustomerFacts, cfg: TierConfig) -> None:
    """Current tier, the purchase that reached it, the next tier and the distance to it."""
    attr = "min_purchases" if cfg.by == "purchases" else "min_spend"
    metric = f.n if cfg.by == "purchases" else f.monetary
    current = None
    for i, spec in enumerate(cfg.tiers):
        if getattr(spec, attr) <= metric and (getattr(spec, attr) > 0 or f.n > 0):
            current = i
    f.tier_by = cfg.by
    f.tier_index = current if current is not None else -1
    f.tier = cfg.tiers[current].name if current is not None else cfg.none
    f.tier_benefits = cfg.tiers[current].benefits if current is not None else ""
    f.tier_label = cfg.tiers[current].label if current is not None else ""
    nxt = 0 if current is None else current + 1
    if nxt < len(cfg.tiers):
        f.next_tier = cfg.tiers[nxt].name
        f.next_tier_benefits = cfg.tiers[nxt].benefits
        f.next_tier_label = cfg.tiers[nxt].label
        f.next_tier_threshold = float(getattr(cfg.tiers[nxt], attr))
        f.to_next_tier = round(getattr(cfg.tiers[nxt], attr) - metric, 2)
    else:
        f.next_tier, f.next_tier_benefits, f.to_next_tier, f.next_tier_threshold = None, "", None, None
        f.next_tier_label = ""
    f.tier_reached = None
    if current is not None:
        threshold = getattr(cfg.tiers[current], attr)
        running = 0.0
        for p, a in zip(f.purchases, f.amounts, strict=True):
            running += 1 if cfg.by == "purchases" else (a or 0.0)
            if running >= threshold:
                f.tier_reached = p
                break


def assign(facts: Sequence[CustomerFacts], today: date, playbook: Playbook) -> None:
    """Fill every segmentation field of every customer's facts (mutates `facts`)."""
    seg = playbook.segments
    r_e, f_e, m_e = rfm_edges(facts, seg.rfm)
    v_e = value_edges(facts, seg.value)
    for f in facts:
        f.sleeping_after, f.lost_after = lifecycle_thresholds(f.median_interval(), f.n, seg.lifecycle)
        f.lifecycle = lifecycle_stage(f.n, f.recency_days, f.sleeping_after, f.lost_after, seg.lifecycle)
        if f.n:
            f.r = score(f.recency_days, r_e, lower_is_better=True)
            f.f = score(f.n, f_e)
            f.m = score(f.monetary, m_e)
            f.rfm = f"{f.r}{f.f}{f.m}"
            f.segment = rfm_segment(f.r, f.f, f.m, seg.rfm)
        f.value = value_level(f, v_e, seg.value)
        f.trend = trend_of(f, today, seg.trend)
        assign_tier(f, seg.tiers)
        f.named_segments = named_segments(seg.conditions, f.purchases, f.monetary, f.tier, f.lifecycle, today)


def named_segments(conditions: Sequence[ConditionSegment], purchases: Sequence[Purchase], monetary: float,
                   tier: str, lifecycle: str, today: date) -> tuple[str, ...]:
    """The playbook's condition segments this customer is in, in the playbook's order."""
    if not conditions:
        return ()
    bought: dict[str, date] = {}  # category -> its first purchase
    for p in purchases:
        for item in p.items:
            if item.category:
                bought.setdefault(item.category, p.date)
    out = []
    for c in conditions:
        if c.bought_categories and not any(
                cat in bought and (today - bought[cat]).days >= c.bought_days_ago for cat in c.bought_categories):
            continue
        if any(cat in bought for cat in c.not_bought_categories):
            continue
        if (c.min_spend is not None and monetary < c.min_spend) or (c.max_spend is not None and monetary > c.max_spend):
            continue
        if len(purchases) < c.min_purchases or (c.tiers and tier not in c.tiers):
            continue
        if c.lifecycles and lifecycle not in c.lifecycles:
            continue
        out.append(c.name)
    return tuple(out)
