"""amoCRM through the webhook app: the OAuth redirect, the webhook it registers, deliveries from the
account emulator's own sender leading to a sync; forged and replayed calls refused."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from web_support import ADMIN, CUSTOMERS, SEED, TODAY, admin, post_form, wait_for, write_playbook

from connector.settings import load_settings
from connector.state import State
from connector.webapp import WebApp
from emulators.amocrm import AmoEmulator


@pytest.fixture
def account():
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture
def amo_app(account, tmp_path):
    settings = load_settings(CRM="amocrm", AMOCRM_BASE_URL=account.base_url,
                             AMOCRM_CLIENT_ID=account.client_id, AMOCRM_CLIENT_SECRET=account.client_secret,
                             AMOCRM_REDIRECT_URI=account.redirect_uri, STATE_URL=f"sqlite:///{tmp_path / 's.db'}",
                             ADMIN_TOKEN=ADMIN, PLAYBOOK=write_playbook(tmp_path), PLAYBOOK_LANG="en",
                             EVENT_DEBOUNCE_SECONDS=0.2)
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    yield app
    app.stop(timeout=30)


def consent_state(app) -> str:
    r = requests.get(app.url + "/amocrm/connect", headers=admin(), timeout=5)
    assert r.status_code == 200
    return parse_qs(urlparse(r.json()["url"]).query)["state"][0]


def redirect(app, account, **params) -> requests.Response:
    """What the admin's browser does after consent (Doc: developers.kommo.com/docs/oauth-20)."""
    query = {"referer": urlparse(account.base_url).netloc, "client_id": account.client_id, **params}
    return requests.get(f"{app.url}/amocrm/oauth?{urlencode(query)}", timeout=5)


@pytest.fixture
def connected(account, amo_app):
    r = redirect(amo_app, account, code=account.issue_auth_code(), state=consent_state(amo_app))
    assert r.status_code == 200, r.text
    assert amo_app.worker.wait_idle(30) and amo_app.installs.get("amocrm"), amo_app.worker.last_error
    return amo_app


def hooks(account) -> list[dict]:
    r = requests.get(account.base_url + "/api/v4/webhooks", timeout=5,
                     headers={"Authorization": f"Bearer {account.access_token}"})
    return r.json()["_embedded"]["webhooks"]


def sync_runs(app) -> int:
    return len(requests.get(app.url + "/status", headers=admin(), timeout=5).json()["runs"])


def test_the_oauth_redirect_stores_tokens_and_registers_the_status_webhook(account, connected):
    install = connected.installs.get("amocrm")
    assert install["account_id"] == account.store.account_id and install["subdomain"] == account.store.subdomain
    [hook] = hooks(account)
    assert hook["destination"] == f"{connected.public_url}/amocrm/webhook/{install['secret']}"
    assert hook["settings"] == ["status_lead"] and len(install["secret"]) >= 40
    assert account.stats()["token_exchanges"] == 1 and sync_runs(connected) == 1


def test_a_lead_won_in_amocrm_reaches_the_app_and_leads_to_a_sync(account, connected, caplog):
    caplog.set_level(logging.INFO, logger="connector")
    state = State(connected.settings.state_path)
    key = f"amocrm:{urlparse(account.base_url).netloc}"
    purchases = state.counts(key)["purchases"]
    lead = next(lead for lead in account.store.leads.values() if lead["status_id"] not in (142, 143) and lead["contacts"])
    sent = len(account.webhooks.delivered)
    account.touch_purchase(lead["id"], status_id=142)
    wait_for(lambda: len(account.webhooks.delivered) > sent, timeout=15)
    assert account.webhooks.delivered[-1]["status"] == 200
    assert connected.worker.wait_idle(30)
    assert sync_runs(connected) == 2 and state.counts(key)["purchases"] == purchases + 1
    # the same delivery again (amoCRM retries): answered, nothing queued
    again = post_form(account.webhooks.delivered[-1]["destination"], account.webhooks.delivered[-1]["body"])
    assert again.json().get("duplicate") is True and connected.worker.wait_idle(10) and sync_runs(connected) == 2
    state.close()
    secret = connected.installs.get("amocrm")["secret"]
    assert "path=/amocrm/webhook/*** status=200" in caplog.text and secret not in caplog.text


def test_forged_webhooks_and_oauth_redirects_are_refused(account, connected):
    install = connected.installs.get("amocrm")
    good = urlencode({"leads[status][0][id]": "1", "leads[status][0][status_id]": "142",
                      "account[id]": str(install["account_id"]), "account[subdomain]": install["subdomain"]})
    base = connected.url + "/amocrm/webhook/"
    assert post_form(base + "x" * 43, good).status_code == 401
    last = install["secret"][-1]
    assert post_form(base + install["secret"][:-1] + ("B" if last == "A" else "A"), good).status_code == 401
    other_account = good.replace(str(install["account_id"]), "1")
    assert post_form(base + install["secret"], other_account).status_code == 403
    other_sub = good.replace(f"={install['subdomain']}", "=evil")
    assert post_form(base + install["secret"], other_sub).status_code == 403
    assert post_form(base + install["secret"], "account[id]=1&broken=%FF").status_code == 400
    assert connected.worker.stats["sync_requests"] == 0
    code = account.issue_auth_code()
    assert redirect(connected, account, code=code, state="made-up").status_code == 401
    used = consent_state(connected)
    assert redirect(connected, account, code=code, state=used, referer="evil.amocrm.ru").status_code == 403
    assert redirect(connected, account, code=code, state=used).status_code == 401  # single use
    assert requests.get(connected.url + "/amocrm/connect", timeout=5).status_code == 401
    assert connected.installs.get("amocrm") == install and account.stats()["token_exchanges"] == 1
    assert sync_runs(connected) == 1
