"""`repeat-sales install`: prepares the CRM once, says what it made or found, and takes it back."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_install_twice_then_uninstall_as_commands(cli_env, portal):
    first = run_cli(["install", "--format", "json"], cli_env)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["crm"] == "bitrix" and "contact field UF_CRM_RS_SEGMENT" in made["created"]
    assert "contact field UF_CRM_RS_NO_MARKETING" in made["existing"]
    again = run_cli(["install"], cli_env)
    assert again.returncode == 0 and "created" not in again.stdout.replace("UF_CRM", "")
    assert "already there" in again.stdout and "UF_CRM_RS_SEGMENT" in again.stdout
    gone = run_cli(["install", "--uninstall", "--format", "json"], cli_env)
    assert gone.returncode == 0 and sorted(json.loads(gone.stdout)["removed"]) == sorted(made["created"])


def test_install_by_a_non_administrator_says_what_is_missing_creates_nothing_and_exits_0(cli_env, portal):
    """Rights are checked first (issue 15, item 4): a missing right never fails the run, it is said."""
    portal.set_rights(admin=False)
    result = run_cli(["install", "--format", "json"], cli_env)
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    assert said["created"] == [] and len(said["missing"]) == 2
    assert all("administrator" in line and "scope crm" in line for line in said["missing"])
    assert not any(m.endswith("userfield.add") for m in portal.stats()["commands"])  # not even tried
    table = run_cli(["install"], cli_env)
    assert table.returncode == 0 and "skipped" in table.stdout and "administrator" in table.stdout
    portal.set_rights(admin=True)  # the admin's webhook then installs everything
    made = json.loads(run_cli(["install", "--format", "json"], cli_env).stdout)
    assert "contact field UF_CRM_RS_SEGMENT" in made["created"] and made["missing"] == []
