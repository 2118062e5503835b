"""`metrics.prospects` after a sync in every CRM: contacts without a won purchase, counted, never planned for."""

from __future__ import annotations

from connector.report import build_report
from connector.state import State
from playbooks import load_playbook


def test_contacts_without_a_won_purchase_are_counted_as_prospects_and_never_planned_for(crm, tmp_path):
    buyers, prospects = crm.prospects()
    assert prospects, "the seeded CRM holds contacts who never bought (a company's other buyers)"
    state = State(tmp_path / "s.db")
    first = crm.sync(state)
    again = crm.sync(state)  # incremental: nothing new read, the count stays
    assert first.evaluation.metrics["prospects"] == again.evaluation.metrics["prospects"] == len(prospects)
    assert first.evaluation.metrics["customers"] == len(buyers)
    assert not {a.customer_id for a in first.plan} & prospects
    figures = build_report(state, crm.account, crm.today, load_playbook())
    assert figures["metrics"]["prospects"] == len(prospects), "the report counts the same prospects"
