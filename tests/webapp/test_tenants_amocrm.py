"""Two amoCRM accounts connected to one integration under one `serve`: each is a tenant (its own tokens, state
and webhook secret), and a delivery, widget token or page address of one never reaches the other."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from web_support import ADMIN, CUSTOMERS, TODAY, admin, post_form, wait_for, write_playbook

from connector import tenants
from connector.amocrm import install as amo_install
from connector.settings import load_settings
from connector.state import State
from connector.webapp import WebApp
from emulators.amocrm import AmoEmulator

CLIENT_ID, SECRET = "5f0c1d2e-3a4b-5c6d-7e8f-9a0b1c2d3e4f", "one-integrations-secret-0123456789abcdefABCDEF"


def runs(app, tenant) -> int:
    state = State(tenants.state_path(app.settings, tenant))
    try:
        return len(state.last_runs(50))
    finally:
        state.close()


def cli_env(app, default) -> dict:
    """The environment of `repeat-sales` run by the admin of this deployment (the default account's .env)."""
    import os

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="amocrm", AMOCRM_BASE_URL=default.base_url, AMOCRM_CLIENT_ID=CLIENT_ID, AMOCRM_CLIENT_SECRET=SECRET,
               AMOCRM_REDIRECT_URI=default.redirect_uri, STATE_URL=app.settings.STATE_URL,
               PLAYBOOK=app.settings.PLAYBOOK, PLAYBOOK_LANG="en", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    return env


def connect(app, account) -> requests.Response:
    r = requests.get(app.url + "/amocrm/connect", headers=admin(), timeout=5)
    state = parse_qs(urlparse(r.json()["url"]).query)["state"][0]
    query = {"referer": urlparse(account.base_url).netloc, "client_id": CLIENT_ID, "state": state,
             "code": account.issue_auth_code()}
    return requests.get(f"{app.url}/amocrm/oauth?{urlencode(query)}", timeout=5)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("amo-tenants")
    accounts = [AmoEmulator(customers=CUSTOMERS, seed=7, today=TODAY, account_id=29_000_001 + i,
                            subdomain=f"shop{i}", client_id=CLIENT_ID, client_secret=SECRET).start() for i in range(2)]
    a = accounts[0]
    settings = load_settings(CRM="amocrm", AMOCRM_BASE_URL=a.base_url, AMOCRM_CLIENT_ID=CLIENT_ID,
                             AMOCRM_CLIENT_SECRET=SECRET, AMOCRM_REDIRECT_URI=a.redirect_uri,
                             STATE_URL=f"sqlite:///{tmp / 's.db'}", ADMIN_TOKEN=ADMIN,
                             PLAYBOOK=write_playbook(tmp), PLAYBOOK_LANG="en", EVENT_DEBOUNCE_SECONDS=0.2)
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    try:
        for account in accounts:
            assert connect(app, account).status_code == 200
            wait_for(lambda account=account: app.registry.tenant_of("amocrm", str(account.store.account_id)), 30)
        for host in app.tenants.values():
            assert host.worker.wait_idle(60), host.worker.last_error
        yield app, accounts
    finally:
        app.stop(timeout=30)
        for account in accounts:
            account.stop()


def test_each_account_is_a_tenant_at_its_own_address(two):
    app, (a, b) = two
    b_id = tenants.amocrm_id(urlparse(b.base_url).netloc)
    assert [(t.id, t.crm) for t in tenants.known(app.settings)] == [("default", "amocrm"), (b_id, "amocrm")]
    assert app.registry.tenant_of("amocrm", str(b.store.account_id)) == b_id
    for tenant, account in (("default", a), (b_id, b)):
        stored = app.tenants[tenant].installs.get("amocrm")
        assert stored["account_id"] == account.store.account_id and stored["base_url"] == account.base_url
        assert account.stats()["token_exchanges"] == 1 and runs(app, tenant) == 1
    assert a.store.webhooks and b.store.webhooks


def test_each_account_is_prepared_on_connect_as_install_does(two):
    """Connecting an account creates the fields `repeat-sales install` creates (card values, the repeat-deal
    marker), before its first sync; `tenants show` counts them."""
    app, (a, b) = two
    wanted = {"contacts": {f["code"] for f in amo_install.card_fields()}, "leads": {amo_install.KEY_FIELD["code"]}}
    for tenant, account in (("default", a), (tenants.amocrm_id(urlparse(b.base_url).netloc), b)):
        for entity, codes in wanted.items():
            made = {f.get("code") for f in account.store.custom_fields.get(entity, [])}
            assert codes <= made, (tenant, entity, codes - made)
        stored = app.tenants[tenant].installs.get("amocrm")
        assert len(stored["fields"]) >= len(wanted["contacts"]), stored.get("missing")


def test_a_delivery_reaches_the_account_it_names_and_only_with_that_accounts_secret(two):
    app, (a, b) = two
    b_id = tenants.amocrm_id(urlparse(b.base_url).netloc)
    secret_a = app.tenants["default"].installs.get("amocrm")["secret"]
    secret_b = app.tenants[b_id].installs.get("amocrm")["secret"]
    before = {t: runs(app, t) for t in ("default", b_id)}

    def delivery(account):
        return urlencode({"leads[status][0][id]": "1", "leads[status][0][status_id]": "142",
                          "account[id]": str(account.store.account_id), "account[subdomain]": account.store.subdomain})

    base = app.url + "/amocrm/webhook/"
    assert post_form(base + secret_a, delivery(b)).status_code == 401  # A's address, B's account
    assert post_form(base + secret_b, delivery(a)).status_code == 401  # B's address, A's account
    unknown = delivery(b).replace(str(b.store.account_id), "123")
    assert post_form(base + secret_b, unknown).status_code == 401
    lead = next(le for le in b.store.leads.values() if le["status_id"] not in (142, 143) and le["contacts"])
    b.touch_purchase(lead["id"], status_id=142)  # B's own sender delivers to B's address
    wait_for(lambda: b.webhooks.delivered and b.webhooks.delivered[-1]["status"] == 200, timeout=15)
    for host in app.tenants.values():
        assert host.worker.wait_idle(30)
    assert runs(app, b_id) == before[b_id] + 1 and runs(app, "default") == before["default"]


def test_a_widget_token_opens_its_own_accounts_pages_only(two):
    app, (a, b) = two
    session = app.url + "/amocrm/widget/session"
    form = {"place": "settings", "entity": "", "id": ""}
    urls = {}
    for account in (a, b):
        r = requests.post(session, data=form, headers={"X-Auth-Token": account.widget_token()}, timeout=5)
        assert r.status_code == 200, r.text
        urls[account.store.account_id] = r.json()["url"]
        page = requests.get(r.json()["url"], timeout=30)
        assert page.status_code == 200 and "frame-ancestors" in page.headers["Content-Security-Policy"]
    a_url, b_url = urls[a.store.account_id], urls[b.store.account_id]
    # B's signed address with A's account: not ours any more; a token B did not sign: refused
    assert requests.get(b_url.replace(f"account={b.store.account_id}", f"account={a.store.account_id}"),
                        timeout=10).status_code == 401
    forged = requests.post(session, data=form, headers={"X-Auth-Token": b.widget_token(secret="x" * 40)}, timeout=5)
    assert forged.status_code == 401 and a_url != b_url


def test_the_cli_lists_and_syncs_an_amocrm_tenant_on_its_own_tokens(two):
    import json

    from tests.conftest import run_cli

    app, (a, b) = two
    b_id = tenants.amocrm_id(urlparse(b.base_url).netloc)
    env = cli_env(app, a)
    listed = run_cli(["tenants", "list", "--format", "json"], env)
    assert [(t["tenant"], t["portal"]) for t in json.loads(listed.stdout)["tenants"]] == [
        ("default", urlparse(a.base_url).netloc), (b_id, urlparse(b.base_url).netloc)]
    before = runs(app, b_id), runs(app, "default")
    done = run_cli(["sync", "--tenant", b_id, "--format", "json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tenants"][0]["tenant"] == b_id
    assert (runs(app, b_id), runs(app, "default")) == (before[0] + 1, before[1])
    assert b.stats()["token_exchanges"] == 1  # B's stored grant, no new code


def test_install_of_one_tenant_prepares_its_own_account_again(two):
    """An admin deleted a field in account B: `install --tenant B` makes it again there, on B's tokens, and
    leaves A alone; an unknown tenant is refused (exit 2)."""
    import json

    from tests.conftest import run_cli

    app, (a, b) = two
    b_id = tenants.amocrm_id(urlparse(b.base_url).netloc)
    env = cli_env(app, a)
    with b.store.lock:
        b.store.custom_fields["contacts"] = [f for f in b.store.custom_fields["contacts"] if f.get("code") != "RS_RFM"]
    a_requests = a.stats()["requests_total"]
    done = run_cli(["install", "--tenant", b_id, "--format", "json"], env)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["created"] == ["contacts field RS_RFM"] and "contacts field RS_SEGMENT" in said["existing"], said
    assert any(f.get("code") == "RS_RFM" for f in b.store.custom_fields["contacts"])
    assert a.stats()["requests_total"] == a_requests  # A was not asked anything
    assert b.stats()["token_exchanges"] == 1  # B's stored grant, no new code
    done = run_cli(["install", "--tenant", "amo-no-such-account"], env)
    assert done.returncode == 2 and "no tenant" in done.stderr and "Traceback" not in done.stderr
