"""Segment edges at their boundaries, and each segmentation on small worked examples."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pb_builders import customer, playbook, simple

from playbooks import evaluate
from playbooks.schema import LifecycleConfig, RfmConfig
from playbooks.segments import lifecycle_stage, lifecycle_thresholds, quantile_edges, rfm_segment, score

R_EDGES = [30, 90, 180, 365]
F_EDGES = [1, 2, 3, 5]


@pytest.mark.parametrize("days,expected", [(0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (365, 2), (366, 1)])
def test_recency_score_edges_are_inclusive(days, expected):
    assert score(days, R_EDGES, lower_is_better=True) == expected


@pytest.mark.parametrize("count,expected", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5), (100, 5)])
def test_frequency_score_edges_are_inclusive(count, expected):
    assert score(count, F_EDGES) == expected


edges_st = st.lists(st.integers(0, 10_000), min_size=4, max_size=4, unique=True).map(sorted)


@given(edges=edges_st, value=st.integers(-10, 12_000))
def test_score_is_1_to_5_and_an_edge_belongs_to_the_lower_bucket(edges, value):
    s = score(value, edges)
    assert 1 <= s <= 5
    assert score(value + 1, edges) >= s  # monotonic
    for e in edges:
        assert score(e, edges) + 1 == score(e + 1, edges) or score(e + 1, edges) == score(e, edges) + 1
        assert score(e, edges, lower_is_better=True) == score(e - 0.5, edges, lower_is_better=True)


@given(values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_quantile_edges_ascend_and_scores_spread(values):
    edges = quantile_edges(values)
    assert edges == sorted(edges)
    assert score(max(values), edges) >= score(min(values), edges)


@pytest.mark.parametrize("rfm,name", [((5, 4, 5), "champions"), ((1, 5, 5), "lost_champions"),
                                      ((3, 3, 1), "loyal"), ((2, 3, 1), "at_risk"), ((5, 1, 2), "new"),
                                      ((4, 2, 1), "promising"), ((2, 1, 1), "hibernating"), ((1, 1, 3), "lost"),
                                      ((3, 1, 1), "promising")])
def test_named_rfm_segments(rfm, name):
    assert rfm_segment(*rfm, RfmConfig()) == name


@pytest.mark.parametrize("n,days,stage", [(1, 0, "new"), (1, 90, "new"), (1, 91, "sleeping"), (2, 90, "active"),
                                          (2, 91, "sleeping"), (5, 365, "sleeping"), (5, 366, "lost"),
                                          (0, None, "prospect")])
def test_lifecycle_boundaries(n, days, stage):
    assert lifecycle_stage(n, days, 90, 365, LifecycleConfig()) == stage


def test_rhythm_stretches_thresholds_but_never_shrinks_them():
    cfg = LifecycleConfig(relative_to_rhythm=True)
    assert lifecycle_thresholds(150, 4, cfg) == (300, 600)
    assert lifecycle_thresholds(7, 10, cfg) == (90, 365)  # a weekly buyer keeps the fixed thresholds
    assert lifecycle_thresholds(150, 2, cfg) == (90, 365)  # too few purchases for a rhythm
    assert lifecycle_thresholds(150, 4, LifecycleConfig()) == (90, 365)


def test_fixed_rfm_scores_and_code():
    book = playbook({"segments": {"rfm": {"method": "fixed", "monetary_edges": [1000, 2000, 3000, 4000]}}})
    c = simple("a", "2025-12-01", "2026-01-01", "2026-02-01", "2026-02-15", "2026-02-20", "2026-02-25",
               amount=1000)  # 6 purchases, 6,000 RUB, 4 days ago
    report = evaluate([c], date(2026, 3, 1), book).customers[0]
    assert report.rfm == "555"
    assert report.segment == "champions"


def test_value_levels_by_quantile_share():
    customers = [simple(f"c{i:02d}", "2026-02-01", amount=1000 * i) for i in range(1, 11)]
    reports = {r.customer_id: r.value for r in evaluate(customers, date(2026, 3, 1),
                                                        playbook({"segments": {"value": {"metrics": ["monetary"]}}})).customers}
    assert [reports[f"c{i:02d}"] for i in range(1, 11)] == ["base"] * 6 + ["middle"] * 3 + ["vip"]


def test_value_levels_fixed_thresholds_take_the_better_metric():
    book = playbook({"segments": {"value": {"method": "fixed", "metrics": ["monetary", "aov"]}}})
    big_ticket = simple("a", "2026-02-01", amount=12000)     # aov >= 10,000 -> vip
    steady = simple("b", *[f"2026-0{m}-01" for m in (1, 2)], amount=5000)  # 10,000 spent -> middle
    small = simple("c", "2026-02-01", amount=500)
    reports = {r.customer_id: r.value for r in evaluate([big_ticket, steady, small], date(2026, 3, 1), book).customers}
    assert reports == {"a": "vip", "b": "middle", "c": "base"}


def trend_customer(cid, earlier, recent):
    purchases = [{"id": f"e{i}", "date": f"2025-0{1 + i % 6}-10", "amount": 1000} for i in range(earlier)]
    purchases += [{"id": f"r{i}", "date": f"2026-0{1 + i % 5}-20", "amount": 1000} for i in range(recent)]
    return customer({"id": cid, "purchases": purchases})


def test_trend_compares_last_window_with_earlier_average():
    # window 180 days before 2026-06-30; the earlier span 2025-01-10..2026-01-01 is ~2 windows
    customers = [trend_customer("grow", 2, 4), trend_customer("flat", 4, 2), trend_customer("fade", 6, 0),
                 trend_customer("young", 0, 3)]
    reports = {r.customer_id: r.trend for r in evaluate(customers, date(2026, 6, 30), playbook()).customers}
    assert reports == {"grow": "growing", "flat": "stable", "fade": "fading", "young": "stable"}


def test_tiers_by_spend_with_distance_to_next():
    book = playbook({"segments": {"tiers": {"by": "spend", "tiers": [
        {"name": "bronze", "min_spend": 0}, {"name": "silver", "min_spend": 10000},
        {"name": "gold", "min_spend": 50000, "benefits": "10%"}]}}})
    c = simple("a", "2026-01-01", "2026-02-01", amount=6000)
    report = evaluate([c], date(2026, 3, 1), book).customers[0].to_json()
    assert (report["tier"], report["next_tier"], report["to_next_tier"]) == ("silver", "gold", 38000)
