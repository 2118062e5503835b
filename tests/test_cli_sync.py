"""`repeat-sales sync` with a Bitrix24 setting a user got wrong: exit 2 naming the variable.

`sync` as a user runs it against every CRM (JSON, second run, dry run, wrong token, kill -9) is in
tests/contract/test_cli.py.
"""

from __future__ import annotations

from tests.conftest import run_cli


def test_a_malformed_setting_is_exit_2_naming_the_variable(cli_env):
    result = run_cli(["sync"], {**cli_env, "BITRIX_WEBHOOK_URL": "http://example.com/rest/1/abc/"})
    assert result.returncode == 2
    assert "BITRIX_WEBHOOK_URL" in result.stderr and "https" in result.stderr
    result = run_cli(["sync"], {**cli_env, "CUSTOMER_KEY": "lead"})
    assert result.returncode == 2 and "CUSTOMER_KEY" in result.stderr
