"""The CRM contract is the whole contract: the core uses only what the Protocol declares, and an
adapter that lacks a member is named at once instead of silently skipping a step (a CRM without
`all_written` used to never rebuild a lost ledger)."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest

from connector import registry
from connector.crm import checked, contract_members
from connector.errors import SettingsError
from connector.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
ADAPTER_FOLDERS = {crm.adapter.rsplit(".", 1)[1] for crm in registry.CRMS.values()}


def core_sources() -> list[Path]:
    """connector/ outside the adapters' own folders."""
    return [p for p in sorted((ROOT / "connector").rglob("*.py"))
            if p.relative_to(ROOT / "connector").parts[0] not in ADAPTER_FOLDERS]


def is_adapter(node: ast.AST) -> bool:
    """`adapter` or `<anything>.adapter` (sync's steps share it as `run.adapter`)."""
    return (isinstance(node, ast.Name) and node.id == "adapter") or (
        isinstance(node, ast.Attribute) and node.attr == "adapter")


def test_the_core_uses_only_members_the_contract_declares():
    used: dict[str, set[str]] = {}
    probed = []
    for path in core_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and is_adapter(node.value):
                used.setdefault(node.attr, set()).add(path.name)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and node.args and is_adapter(node.args[0])):
                probed.append(f"{path.name}:{node.lineno}")
    assert probed == [], "an adapter is asked what it has; declare the member in connector.crm.CrmAdapter"
    assert {"write", "find_written", "all_written", "pull"} <= set(used)  # the scan sees the core's calls
    undeclared = {name: sorted(files) for name, files in used.items() if name not in contract_members()}
    assert undeclared == {}


def test_an_adapter_without_a_member_is_named_not_defaulted():
    class HalfAdapter:  # everything but the ledger rebuild's bulk read
        pass

    for name in contract_members() - {"all_written"}:
        setattr(HalfAdapter, name, None)
    with pytest.raises(TypeError, match="missing all_written"):
        checked(HalfAdapter())


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_registered_crm_gives_a_complete_adapter(name):
    crm = registry.crm(name)
    with crm.emulator_type()(customers=3, seed=1, today=date(2026, 6, 10)) as emu:
        adapter = crm.emulated(emu)
        try:
            assert adapter.name == name and adapter.account.startswith(f"{name}:")
            assert adapter.batch.size >= 1
        finally:
            adapter.close()


def test_the_crm_setting_accepts_exactly_the_registered_names():
    with pytest.raises(SettingsError) as refused:
        load_settings(CRM="salesforce")
    assert all(repr(name) in refused.value.hint for name in registry.NAMES)
    with pytest.raises(SettingsError, match="use one of: " + ", ".join(registry.NAMES)):
        registry.crm("salesforce")
