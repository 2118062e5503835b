"""The report's monthly replay (metric_trend) from columns gives what evaluating the playbook as of
each month end gives (the reference: playbooks' facts and compute_metrics per month)."""

from __future__ import annotations

from datetime import date

import pytest

from connector.feedback import answers_of, with_answers
from connector.report.data import TREND_METRICS, evaluation_as_of, metric_trend, trend_days
from playbooks import load_playbook
from tests.report_browser.shop_state import ACCOUNT, shop_state

VARIANTS = {
    "default": {},
    "fixed_edges_rhythm": {"segments": {"rfm": {"method": "fixed"}, "lifecycle": {"relative_to_rhythm": True}},
                           "metrics": {"retention_period_days": 180, "lifespan_years": 2.5}},
}


@pytest.mark.parametrize("today", [date(2026, 6, 15), date(2026, 5, 31)])
def test_the_monthly_trend_from_columns_is_the_playbooks_answer_month_by_month(tmp_path, today):
    state = shop_state(tmp_path / "s.db", customers=400, seed=3, syncs=2)
    try:
        customers = list(with_answers(state.customers(ACCOUNT, lean=True), answers_of(state, ACCOUNT)))
    finally:
        state.close()
    for name, over in VARIANTS.items():
        book = load_playbook(overrides=over) if over else load_playbook()
        got = metric_trend(customers, today, book)
        days = trend_days(today)
        assert got["months"] == [d.isoformat() for d in days]
        for day, k in zip(days, range(len(days)), strict=True):
            want = evaluation_as_of(customers, day, book).metrics
            assert {m: got["series"][m][k] for m in TREND_METRICS} == {m: want.get(m) for m in TREND_METRICS}, \
                (name, day)
        assert len(set(got["series"]["customers"])) > 3  # the shop grows over the year shown
