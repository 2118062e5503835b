"""One shop in both CRMs: the same segments and the same plan, apart from the CRMs' own ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from amo_support import CUSTOMERS, SEED, TODAY, token_adapter

from connector.bitrix import BitrixAdapter
from connector.state import State
from connector.sync import run_sync
from emulators.amocrm import AmoEmulator
from emulators.bitrix import OPT_OUT_FIELD, BitrixEmulator
from playbooks import load_playbook

DEFAULT_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "default.toml"


def parity_playbook(tmp_path: Path):
    """The default playbook, with hold-out off (its buckets hash the CRM's customer id, which differs
    between the CRMs) and both CRMs' opt-out fields named."""
    text = DEFAULT_PLAYBOOK.read_text(encoding="utf-8")
    section = text.index("[guards.holdout]")
    text = text[:section] + text[section:].replace("enabled = true", "enabled = false", 1)
    text = text.replace('fields = ["no_marketing"]', f'fields = ["no_marketing", "{OPT_OUT_FIELD}"]', 1)
    path = tmp_path / "parity.toml"
    path.write_text(text, encoding="utf-8")
    return load_playbook(str(path))


def bitrix_identity(emu: BitrixEmulator) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for shop_id, (kind, ref) in emu.store.customer_refs.items():
        if kind == "contact":
            out[str(ref)] = ("person", shop_id)
        else:
            for n, member in enumerate(emu.store.company_contacts.get(ref, [])):
                out[str(member)] = ("buyer", shop_id, n)
    return out


def amocrm_identity(emu: AmoEmulator) -> dict[str, tuple]:
    out = {str(cid): ("person", cid) for cid in emu.store.contacts}
    for company_id, company in emu.store.companies.items():
        for n, member in enumerate(company["contacts"]):
            out[str(member)] = ("buyer", company_id, n)
    return out


def neutral(keys, identity) -> set[tuple]:
    """`v1:<customer>:<rule>:<anchor>:<step>` with the customer's CRM id replaced by who it is in the shop."""
    out = set()
    for key in keys:
        version, customer, rest = key.split(":", 2)
        out.add((version, identity[customer], rest))
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """Dry runs of one playbook over one shop seeded into each CRM: (report, identity) per CRM."""
    tmp_path = tmp_path_factory.mktemp("parity")
    playbook = parity_playbook(tmp_path)
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as portal:
        adapter = BitrixAdapter(portal.webhook_url, requests_per_second=1000.0)
        try:
            bitrix = run_sync(adapter, State(tmp_path / "b.db"), playbook, today=TODAY, dry_run=True)
        finally:
            adapter.close()
        bitrix_ids = bitrix_identity(portal)
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as account:
        adapter = token_adapter(account)
        try:
            amocrm = run_sync(adapter, State(tmp_path / "a.db"), playbook, today=TODAY, dry_run=True)
        finally:
            adapter.close()
        amocrm_ids = amocrm_identity(account)
    return (bitrix, bitrix_ids), (amocrm, amocrm_ids)


def test_both_crms_give_the_same_purchases_and_segments_for_one_shop(both):
    (bitrix, _b), (amocrm, _a) = both
    assert bitrix.stats["pulled"]["purchases"] == amocrm.stats["pulled"]["purchases"] > 0
    assert bitrix.stats["pulled"]["customers"] == amocrm.stats["pulled"]["customers"]
    assert dict(bitrix.evaluation.segments) == dict(amocrm.evaluation.segments)


def test_both_crms_give_the_same_plan_keys_apart_from_crm_ids(both):
    (bitrix, bitrix_ids), (amocrm, amocrm_ids) = both
    assert bitrix.plan and amocrm.plan
    assert neutral((a.key for a in bitrix.plan), bitrix_ids) == neutral((a.key for a in amocrm.plan), amocrm_ids)
