"""The feedback answer and the referral code come from the CRM's deal/lead fields (Bitrix24 deal user
fields UF_CRM_RS_NPS / UF_CRM_RS_REFERRAL_CODE, amoCRM lead fields RS_NPS / RS_REFERRAL_CODE): a dry-run
sync over HTTP reads every answer and every referral the emulated shop holds."""

from __future__ import annotations

from datetime import date

import pytest

from connector.state import State
from connector.sync import run_sync
from emulators.shop import DEMO_REFERRAL_SECRET, generate_shop
from playbooks import load_playbook

TODAY = date(2026, 6, 15)
CUSTOMERS, SEED = 200, 42


def emulator(crm: str):
    if crm == "bitrix":
        from connector.bitrix import BitrixAdapter
        from emulators.bitrix import BitrixEmulator

        emu = BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY)
        return emu, lambda: BitrixAdapter(emu.webhook_url)
    from connector.amocrm import AmoAdapter
    from emulators.amocrm import AmoEmulator

    emu = AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY)
    return emu, lambda: AmoAdapter(emu.base_url, access_token=emu.access_token)


@pytest.mark.parametrize("crm", ["bitrix", "amocrm"])
def test_a_sync_reads_every_answer_and_credits_every_referral_the_shop_holds(crm, tmp_path):
    shop = generate_shop(CUSTOMERS, SEED, TODAY)
    answered = {str(d.id): d.nps for d in shop.won_deals() if d.nps is not None and d.closed.date() <= TODAY}
    referred = {d.customer_id for d in shop.won_deals() if d.referred_by is not None}
    assert answered and referred
    emu, make = emulator(crm)
    state = State(tmp_path / "s.db")
    with emu:
        adapter = make()
        try:
            report = run_sync(adapter, state, load_playbook(), today=TODAY, dry_run=True,
                              referral_secret=DEMO_REFERRAL_SECRET)
            account = adapter.account
        finally:
            adapter.close()
    read = {p.id: p.nps for c in state.customers(account) for p in c.purchases if p.nps is not None}
    assert read == answered
    metrics = report.evaluation.metrics
    assert metrics["nps_answers"] == len(answered)
    assert metrics["referrals"] == len(referred)
    assert any(r.extra.get("referral_code") for r in report.evaluation.customers)


def test_a_sync_writes_the_referral_code_and_condition_segments_on_the_card(tmp_path):
    from connector.bitrix import BitrixAdapter
    from emulators.bitrix import BitrixEmulator
    from playbooks.referral import referral_code

    book = load_playbook(overrides={"segments": {"conditions": [{"name": "big_spenders", "min_spend": 20000}]}})
    state = State(tmp_path / "s.db")
    with BitrixEmulator(customers=60, seed=SEED, today=TODAY) as emu:
        adapter = BitrixAdapter(emu.webhook_url)
        try:
            adapter.install()
            report = run_sync(adapter, state, book, today=TODAY, referral_secret=DEMO_REFERRAL_SECRET)
        finally:
            adapter.close()
        coded = {r.customer_id: r for r in report.evaluation.customers if r.extra.get("referral_code")}
        big = {r.customer_id for r in report.evaluation.customers if r.extra.get("named_segments")}
        assert coded and big
        with emu.store.lock:
            cards = {str(cid): row.uf or {} for cid, row in emu.store.contacts.rows.items()}
    for cid in coded:
        assert cards[cid]["UF_CRM_RS_REFERRAL_CODE"] == referral_code(cid, DEMO_REFERRAL_SECRET)
    for cid in big:
        assert cards[cid]["UF_CRM_RS_NAMED_SEGMENTS"] == "big_spenders"


def test_a_card_written_before_the_later_fields_keeps_its_digest():
    from connector import fields

    before = {"segment": "loyal", "rfm": "444", "lifecycle": "active", "tier": "silver", "next_purchase": ""}
    assert fields.digest(before) == fields.digest({**before, "named_segments": "", "referral_code": ""})
    assert fields.digest(before) != fields.digest({**before, "referral_code": "R-ABCDEFGH"})
