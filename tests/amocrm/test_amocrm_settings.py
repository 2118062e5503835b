"""`make_adapter(settings)` for amoCRM, and `install`: what an admin configures, and what it names when wrong."""

from __future__ import annotations

import pytest
from amo_support import pull_all, token_adapter

from connector.amocrm import AmoAdapter, make_adapter
from connector.errors import SettingsError
from connector.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("AMOCRM_BASE_URL", "AMOCRM_ACCESS_TOKEN", "AMOCRM_CLIENT_ID", "AMOCRM_CLIENT_SECRET",
                 "AMOCRM_REDIRECT_URI", "AMOCRM_AUTH_CODE", "CUSTOMER_KEY", "TIMEZONE"):
        monkeypatch.delenv(name, raising=False)


def settings(tmp_path, **env):
    return load_settings(CRM="amocrm", STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", **env)


def test_a_long_lived_token_or_the_oauth_keys_build_a_working_adapter(account, tmp_path):
    by_token = make_adapter(settings(tmp_path, AMOCRM_BASE_URL=account.base_url, AMOCRM_ACCESS_TOKEN=account.access_token))
    by_oauth = make_adapter(settings(tmp_path, AMOCRM_BASE_URL=account.base_url, AMOCRM_CLIENT_ID=account.client_id,
                                     AMOCRM_CLIENT_SECRET=account.client_secret,
                                     AMOCRM_REDIRECT_URI=account.redirect_uri,
                                     AMOCRM_AUTH_CODE=account.issue_auth_code()))
    try:
        assert isinstance(by_token, AmoAdapter) and by_token.account == by_oauth.account
        assert by_token.account == f"amocrm:{account.base_url.split('//', 1)[1]}"
        assert pull_all(by_oauth)[1]
        assert by_token.crm_id("42") == "42"
    finally:
        by_token.close()
        by_oauth.close()


@pytest.mark.parametrize("env, name", [
    ({}, "AMOCRM_BASE_URL"),
    ({"AMOCRM_BASE_URL": "https://x.amocrm.ru"}, "AMOCRM_ACCESS_TOKEN"),
    ({"AMOCRM_BASE_URL": "https://x.amocrm.ru", "AMOCRM_CLIENT_ID": "abc"}, "AMOCRM_CLIENT_SECRET"),
    ({"AMOCRM_BASE_URL": "http://x.amocrm.ru", "AMOCRM_ACCESS_TOKEN": "t"}, "AMOCRM_BASE_URL"),
    ({"AMOCRM_BASE_URL": "x.amocrm.ru", "AMOCRM_ACCESS_TOKEN": "t"}, "AMOCRM_BASE_URL"),
])
def test_a_missing_or_malformed_setting_is_named(tmp_path, env, name):
    with pytest.raises(SettingsError) as caught:
        make_adapter(settings(tmp_path, **env))
    assert caught.value.env_name == name and caught.value.exit_code == 2


def test_install_creates_the_fields_it_reads_once(account):
    for entity in ("contacts", "companies"):
        account.store.custom_fields[entity] = [f for f in account.store.custom_fields[entity]
                                               if f["code"] != "NO_MARKETING"]
    adapter = token_adapter(account)
    try:
        first = adapter.install()
        second = adapter.install()
    finally:
        adapter.close()
    assert {"companies field NO_MARKETING", "contacts field NO_MARKETING"} <= set(first.created)
    # the shop's own fields: its lead field for bonuses paid, its catalogue's consumption cycle
    assert first.existing == ["leads field RS_BONUS_PAID", "catalog 5001 field CYCLE_DAYS"]
    assert second.created == [] and len(second.existing) == len(first.created) + len(first.existing)
