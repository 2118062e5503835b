"""Worked examples of repeat-sales arithmetic (see README.md, "Definitions")."""

from __future__ import annotations

from datetime import date

import pytest
from pb_builders import customer, playbook, simple

from playbooks import evaluate
from playbooks.metrics import cac, ltv_3f, ltv_cac, retention_rate, segment_migration


def test_ltv_is_aov_times_yearly_frequency_times_lifespan():
    # 3,000 RUB average check x 2 purchases a year x 3 years = 18,000 RUB
    assert ltv_3f(3000, 2, 3) == 18000


def test_ltv_to_cac_with_40000_spent_on_13_new_customers():
    acquisition = cac(40000, 13)
    assert acquisition == pytest.approx(3076.92, abs=0.01)
    assert ltv_cac(18000, acquisition) == pytest.approx(5.85, abs=0.01)
    assert cac(40000, 0) is None
    assert ltv_cac(18000, None) is None


def test_ltv_3f_and_ltv_cac_in_metrics():
    # every customer bought twice in the last year for 3,000 RUB: AOV 3,000, 2 a year, lifespan 3
    customers = [simple(f"c{i}", "2025-09-01", "2026-03-01", amount=3000) for i in range(13)]
    ev = evaluate(customers, date(2026, 6, 1), playbook({"metrics": {"cac": 40000 / 13}}))
    m = ev.metrics
    assert m["aov"] == 3000 and m["purchases_per_year"] == 2 and m["lifespan_years"] == 3
    assert m["ltv_3f"] == 18000
    assert m["ltv_cac"] == pytest.approx(5.85, abs=0.01)
    assert m["ltv"] == 6000  # historic: 78,000 revenue / 13 customers


def test_repeat_rate_frequency_and_checks():
    # 10 customers: 3 bought twice (1,000 then 2,000), 7 once (1,000): repeat rate 30 %
    customers = [simple(f"r{i}", "2026-01-10", amount=1000) for i in range(7)]
    customers += [customer({"id": f"t{i}", "purchases": [{"id": "1", "date": "2026-01-10", "amount": 1000},
                                                          {"id": "2", "date": "2026-02-10", "amount": 2000}]})
                  for i in range(3)]
    m = evaluate(customers, date(2026, 3, 1), playbook()).metrics
    assert m["customers"] == 10
    assert m["purchases"] == 13
    assert m["repeat_rate"] == 0.3
    assert m["purchase_frequency"] == 1.3
    assert m["aov"] == pytest.approx(16000 / 13, abs=0.01)
    assert m["aov_new"] == 1000
    assert m["aov_returning"] == 2000
    assert m["ltv"] == 1600


def crr_shop():
    # 10 customers active at the start (bought 2024-06-01); 6 of them buy again in 2025;
    # 3 new customers arrive in 2025. E = 9, N = 3, S = 10 -> CRR = (9 - 3) / 10 = 60 %
    customers = [simple(f"old{i}", "2024-06-01", "2025-06-01") for i in range(6)]
    customers += [simple(f"gone{i}", "2024-06-01") for i in range(4)]
    customers += [simple(f"new{i}", "2025-03-01") for i in range(3)]
    return customers


def test_customer_retention_rate_worked_example():
    assert retention_rate(crr_shop(), date(2025, 1, 1), date(2025, 12, 31)) == pytest.approx(0.6)


def test_crr_and_churn_in_metrics():
    m = evaluate(crr_shop(), date(2025, 12, 31), playbook()).metrics
    assert m["crr_12m"] == 0.6
    assert m["new_customers_12m"] == 3
    # churn = lost customers (over 365 days silent) / customers: the 4 gone of 13
    assert m["churn_rate"] == pytest.approx(4 / 13, abs=1e-4)


def test_retention_without_customers_at_start_is_none():
    assert retention_rate([simple("a", "2025-03-01")], date(2025, 1, 1), date(2025, 12, 31)) is None


def test_segment_migration_counts_moves():
    book = playbook()
    customers = [simple("a", "2026-01-01"), simple("b", "2025-10-01", "2026-01-01")]
    before = evaluate(customers, date(2026, 1, 15), book)
    after = evaluate(customers + [simple("c", "2026-05-01")], date(2026, 5, 15), book)
    moves = segment_migration(before, after, by="lifecycle")
    assert moves == {("new", "sleeping"): 1, ("active", "sleeping"): 1, ("none", "new"): 1}
