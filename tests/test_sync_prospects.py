"""`metrics.prospects` after a sync: the CRM's contacts without a won deal, counted (never planned for)."""

from __future__ import annotations

from connector.amocrm import AmoAdapter
from connector.bitrix import BitrixAdapter
from connector.state import State
from connector.sync import run_sync
from emulators.amocrm import AmoEmulator
from emulators.amocrm.store import WON_STATUS_ID
from emulators.bitrix import BitrixEmulator
from playbooks import load_playbook
from tests.conftest import TODAY


def sync(adapter, tmp_path, **kw):
    state = State(tmp_path / "s.db")
    try:
        return run_sync(adapter, state, load_playbook(), today=TODAY, **kw)
    finally:
        adapter.close()
        state.close()


def test_bitrix_sync_counts_contacts_without_a_won_deal_as_prospects(tmp_path):
    with BitrixEmulator(customers=150, seed=7, today=TODAY) as emu:
        buyers = {d.contact_ids[0] for d in emu.store.won_deals() if d.contact_ids}
        prospects = set(emu.store.contacts.rows) - buyers
        report = sync(BitrixAdapter(emu.webhook_url), tmp_path, dry_run=True)
    assert prospects, "the seeded portal should hold contacts who never bought (a company's other buyers)"
    assert report.evaluation.metrics["prospects"] == len(prospects)
    assert report.evaluation.metrics["customers"] == len(buyers)
    assert not {a.customer_id for a in report.plan} & {str(p) for p in prospects}


def test_amocrm_sync_counts_contacts_without_a_won_lead_as_prospects(tmp_path):
    with AmoEmulator(customers=150, seed=7, today=TODAY) as emu:
        buyers = {contact for lead in emu.store.leads.values() if lead["status_id"] == WON_STATUS_ID
                  for contact, main in lead["contacts"] if main}
        prospects = set(emu.store.contacts) - buyers
        report = sync(AmoAdapter(emu.base_url, access_token=emu.access_token), tmp_path)
        again = sync(AmoAdapter(emu.base_url, access_token=emu.access_token), tmp_path)  # incremental
    assert prospects
    assert report.evaluation.metrics["prospects"] == again.evaluation.metrics["prospects"] == len(prospects)


def test_the_report_counts_the_same_prospects_as_the_sync(tmp_path):
    from connector.report import build_report

    with BitrixEmulator(customers=80, seed=7, today=TODAY) as emu:
        adapter = BitrixAdapter(emu.webhook_url)
        account = adapter.account
        report = sync(adapter, tmp_path)
    state = State(tmp_path / "s.db")
    try:
        figures = build_report(state, account, TODAY, load_playbook())
    finally:
        state.close()
    assert figures["metrics"]["prospects"] == report.evaluation.metrics["prospects"] > 0
