"""A CRM the product accepts is not done until the contract suite runs against it."""

from __future__ import annotations

import re

import pytest

from connector.errors import SettingsError
from connector.settings import load_settings
from tests.contract.harness import CrmHarness, registry


def test_every_crm_the_settings_accept_has_a_contract_harness():
    with pytest.raises(SettingsError) as refused:
        load_settings(CRM="no-such-crm")  # the refusal lists the CRMs this build knows
    known = set(re.findall(r"'([a-z0-9_]+)'", str(refused.value)))
    assert known and known == set(registry()), "add a harness in tests/contract/ for each CRM"


def test_every_harness_offers_what_the_scenarios_use():
    members = {n for n in dir(CrmHarness) if not n.startswith("_")} | set(CrmHarness.__annotations__)
    for name, harness in registry().items():
        missing = sorted(m for m in members if not hasattr(harness, m) and m not in ("today", "emulator"))
        assert not missing, f"the {name} harness lacks {missing}"
