"""`metrics.prospects` after a sync in every CRM: contacts without a won purchase, counted, and planned for
only by the welcome series, when the CRM says they were created lately."""

from __future__ import annotations

from datetime import timedelta

from connector.report import build_report
from connector.state import State
from playbooks import load_playbook


def test_contacts_without_a_won_purchase_are_counted_as_prospects_and_only_welcomed(crm, tmp_path):
    buyers, prospects = crm.prospects()
    assert prospects, "the seeded CRM holds contacts who never bought (a company's other buyers)"
    state = State(tmp_path / "s.db")
    first = crm.sync(state)
    again = crm.sync(state)  # incremental: nothing new read, the count stays
    assert first.evaluation.metrics["prospects"] == again.evaluation.metrics["prospects"] == len(prospects)
    assert first.evaluation.metrics["customers"] == len(buyers)
    welcomed = {a.customer_id for a in first.plan} & prospects
    assert welcomed, "contacts created lately (their creation day read from the CRM) get the welcome series"
    assert {a.rule for a in first.plan if a.customer_id in prospects} == {"welcome"}
    created = {c.id: c.created for c in state.prospects(crm.account, crm.today - timedelta(days=13))}
    assert welcomed <= set(created), "only prospects created within the series' last step are welcomed"
    figures = build_report(state, crm.account, crm.today, load_playbook())
    assert figures["metrics"]["prospects"] == len(prospects), "the report counts the same prospects"
