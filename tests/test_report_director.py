"""The report's director block: returning shares, NPS by month, profit per customer, CAC and LTV:CAC
against its 3:1 mark, in the playbook's language; a posted feedback answer counts like a deal field."""

from __future__ import annotations

from datetime import date

from connector.crm import PullPage
from connector.feedback import FeedbackAnswers
from connector.model import Customer, Purchase
from connector.report import build_report, render_html, render_text
from connector.state import State
from playbooks import load_playbook

TODAY = date(2026, 3, 1)
METRICS = {"margin": 0.3, "spend": [{"month": "2026-01", "amount": 3000}, {"month": "2026-02", "amount": 1000}]}


def test_the_report_shows_the_directors_figures_in_the_playbooks_language(tmp_path):
    state = State(tmp_path / "s.db")
    try:
        run_id = state.start_run("shop", "sync", False)
        customers = [Customer(id=c, name=c) for c in ("c1", "c2", "c3")]
        purchases = [Purchase("p1", "c1", date(2026, 1, 10), 1000.0, nps=10),
                     Purchase("p2", "c1", date(2026, 2, 10), 3000.0, nps=9),
                     Purchase("p3", "c2", date(2026, 1, 20), 2000.0),
                     Purchase("p4", "c3", date(2026, 2, 5), 1000.0)]
        state.absorb("shop", PullPage(customers=customers, purchases=purchases), run_id)
        state.finish_run(run_id, {})
        FeedbackAnswers(state).record("shop", "p3", 5, date(2026, 1, 28))  # answered through serve
        ru = build_report(state, "shop", TODAY, load_playbook(overrides={"metrics": METRICS}))
        en = build_report(state, "shop", TODAY, load_playbook(lang="en", overrides={"metrics": METRICS}))
    finally:
        state.close()
    assert ru["metrics"]["nps"] == 33.3 and ru["metrics"]["nps_answers"] == 3
    shown = {r["metric"]: r["value"] for r in ru["director"]["rows"]}
    # Russian numbers (no-break spaces), as the rest of the Russian report writes them
    assert shown["returning_revenue_share"] == "42,9\u00a0%" and shown["ltv_profit"] == "700"  # 7 000 x 30 % / 3
    assert shown["cac"] == "1\u00a0333" and shown["ltv_cac"] == "5,25 (выше ориентира 3:1)"
    by_segment = [row[0] for row in ru["director"]["by_segment"]["rows"]]
    assert by_segment and not set(by_segment) & set(ru["metrics"]["nps_by_segment"])  # names, not codes
    text, page = render_text(ru), render_html(en)
    assert "Деньги глазами директора" in text and "NPS по месяцам покупки" in text and "2026-01" in text
    assert "Money the way a director counts it" in page and "above the 3:1 mark" in page
