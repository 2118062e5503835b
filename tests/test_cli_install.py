"""`repeat-sales install` in a Bitrix24 portal whose webhook user is no administrator.

Install twice, then uninstall, as commands against every CRM: tests/contract/test_cli.py.
"""

from __future__ import annotations

from tests.conftest import run_cli


def test_install_refused_by_a_non_administrator_exits_1_with_the_fix(cli_env, portal):
    with portal.store.lock:
        portal.store.users.rows[portal.webhook_user].is_admin = False
    result = run_cli(["install"], cli_env)
    assert result.returncode == 1 and "administrator" in result.stderr
