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


def test_install_refused_by_a_non_administrator_exits_1_with_the_fix(cli_env, portal):
    with portal.store.lock:
        portal.store.users.rows[portal.webhook_user].is_admin = False
    result = run_cli(["install"], cli_env)
    assert result.returncode == 1 and "administrator" in result.stderr
