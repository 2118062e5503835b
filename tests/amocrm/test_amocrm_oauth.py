"""OAuth against the emulated account: code exchange, rotation, crashes, two processes, revocation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from amo_support import oauth_adapter, pull_all, token_adapter

from connector.amocrm.tokens import TokenStore
from connector.errors import CrmAuthError, CrmUnavailable

ROOT = Path(__file__).resolve().parents[2]


def stored(emu, state_path):
    store = TokenStore(state_path, f"amocrm:{emu.base_url.split('//', 1)[1]}")
    try:
        pair, _sha = store.load()
        return pair
    finally:
        store.close()


def test_the_first_run_exchanges_the_code_and_later_runs_reuse_the_stored_pair(account, state_target):
    db = state_target
    code = account.issue_auth_code()
    first = oauth_adapter(account, db, code=code)
    try:
        first.client.request("GET", "/api/v4/account")
    finally:
        first.close()
    again = oauth_adapter(account, db, code=code)  # the same (used) code left in the settings
    try:
        again.client.request("GET", "/api/v4/account")
    finally:
        again.close()
    stats = account.stats()
    assert stats["token_exchanges"] == 1 and stats["token_refreshes"] == 0
    assert stored(account, db).refresh_token in account.auth.current_refresh_tokens()


def test_token_expiry_in_the_middle_of_a_pull_refreshes_and_loses_nothing(account, state_target):
    db = state_target
    adapter = oauth_adapter(account, db, code=account.issue_auth_code())
    try:
        purchases = {}
        for n, page in enumerate(adapter.pull(None)):
            purchases.update({p.id: p for p in page.purchases})
            if n == 1:
                account.expire_access_tokens()  # the 24 h are over between two pages
        refreshed = adapter.client.auth.refreshes
    finally:
        adapter.close()
    assert set(purchases) == {str(d.id) for d in account.shop.deals if d.won}
    assert account.stats()["token_refreshes"] == 1 and refreshed == 2  # the exchange, then one refresh
    assert stored(account, db).refresh_token in account.auth.current_refresh_tokens()


def test_a_crash_right_after_a_refresh_leaves_the_new_refresh_token_stored(account, state_target):
    db = state_target
    first = oauth_adapter(account, db, code=account.issue_auth_code())
    first.client.request("GET", "/api/v4/account")
    account.expire_access_tokens()
    first.client.request("GET", "/api/v4/account")  # 401 -> refresh -> saved -> resent
    # the process dies here, never closing anything; the next process reads the state file
    after = stored(account, db)
    assert after.refresh_token in account.auth.current_refresh_tokens()
    second = oauth_adapter(account, db)
    try:
        customers, purchases, _p, _r, _c = pull_all(second)
    finally:
        second.close()
        first.close()
    assert purchases and account.stats()["token_refreshes"] == 1, "the second process needed no refresh"


def test_a_lost_refresh_answer_is_survived_with_the_old_refresh_token(account, state_target):
    db = state_target
    adapter = oauth_adapter(account, db, code=account.issue_auth_code())
    try:
        adapter.client.request("GET", "/api/v4/account")
        account.expire_access_tokens()
        account.drop_next(1, call="/oauth2/access_token")  # amoCRM rotates, the answer never arrives
        with pytest.raises(CrmUnavailable):
            adapter.client.request("GET", "/api/v4/account")
    finally:
        adapter.close()
    rerun = oauth_adapter(account, db)
    try:
        assert rerun.client.request("GET", "/api/v4/account")["id"] == account.store.account_id
    finally:
        rerun.close()
    assert account.stats()["token_refreshes"] == 2


REFRESH_SCRIPT = """
import sys
from connector.amocrm import AmoAdapter
from connector.amocrm.oauth import OAuthApp
base, cid, secret, redirect, db = sys.argv[1:6]
adapter = AmoAdapter(base, oauth=OAuthApp(cid, secret, redirect), state_path=db)
print(adapter.client.request("GET", "/api/v4/account")["id"], adapter.client.auth.refreshes)
adapter.close()
"""


def test_two_processes_refreshing_at_once_do_not_burn_each_others_token(account, state_target):
    db = state_target
    setup = oauth_adapter(account, db, code=account.issue_auth_code())
    setup.client.request("GET", "/api/v4/account")
    setup.close()
    account.expire_access_tokens()
    account.set_latency(400, call="/oauth2/access_token")  # both get their 401 while one refresh is running
    args = [account.base_url, account.client_id, account.client_secret, account.redirect_uri, str(db)]
    procs = [subprocess.Popen([sys.executable, "-c", REFRESH_SCRIPT, *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _out, err in results]
    refreshes = sorted(int(out.split()[1]) for out, _err in results)
    assert refreshes == [0, 1], "one process refreshed; the other waited and took the stored pair"
    assert account.stats()["token_refreshes"] == 1
    account.set_latency(0, call="/oauth2/access_token")
    account.expire_access_tokens()
    later = oauth_adapter(account, db)
    try:
        later.client.request("GET", "/api/v4/account")  # the stored refresh token still works
    finally:
        later.close()
    assert account.stats()["token_refreshes"] == 2


def test_a_revoked_grant_is_a_clear_auth_error_that_names_the_fix(account, state_target):
    db = state_target
    adapter = oauth_adapter(account, db, code=account.issue_auth_code())
    try:
        adapter.client.request("GET", "/api/v4/account")
        account.revoke_grant()  # an admin disabled the integration
        with pytest.raises(CrmAuthError) as caught:
            pull_all(adapter)
    finally:
        adapter.close()
    text = str(caught.value)
    assert "AMOCRM_AUTH_CODE" in text and "grant access again" in text
    pair = stored(account, db)
    assert pair.access_token not in text and pair.refresh_token not in text and "127.0.0.1" not in text
    fresh = oauth_adapter(account, db, code=account.issue_auth_code())  # the admin re-grants with a new code
    try:
        assert pull_all(fresh)[1]
    finally:
        fresh.close()


def test_a_revoked_long_lived_token_asks_for_a_new_one(account):
    adapter = token_adapter(account)
    account.revoke_grant()
    try:
        with pytest.raises(CrmAuthError) as caught:
            pull_all(adapter)
    finally:
        adapter.close()
    assert "AMOCRM_ACCESS_TOKEN" in str(caught.value) and account.access_token not in str(caught.value)


def test_the_oauth_redirects_code_is_accepted_and_stored_for_later_runs(account, state_target):
    db = state_target
    callback = oauth_adapter(account, db)  # what the webapp's /amocrm/oauth builds from the settings
    try:
        with pytest.raises(CrmAuthError) as caught:
            callback.client.request("GET", "/api/v4/account")
        assert "AMOCRM_AUTH_CODE" in str(caught.value), "no grant yet: the error says how to get one"
        callback.client.auth.accept_code(account.issue_auth_code())
    finally:
        callback.close()
    later = oauth_adapter(account, db)
    try:
        assert later.client.request("GET", "/api/v4/account")["id"] == account.store.account_id
    finally:
        later.close()
    assert account.stats()["token_exchanges"] == 1
