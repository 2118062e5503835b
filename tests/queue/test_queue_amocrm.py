"""amoCRM through the queue: the OAuth grant a redirect brings is kept in the inbox, a worker exchanges it,
adds the account's webhook and runs the first sync."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
from queue_support import (
    CUSTOMERS,
    QUEUE_URL,
    SEED,
    TODAY,
    Workers,
    all_done,
    inbox_rows,
    wait_for,
    write_playbook,
)

from connector.settings import load_settings
from connector.webapp import WebApp
from emulators.amocrm import AmoEmulator

ADMIN = "admin-token-0123456789abcdef"


@pytest.fixture
def account():
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


def test_an_amocrm_grant_is_completed_and_synced_by_a_worker(redis_server, account, tmp_path):
    values = dict(CRM="amocrm", AMOCRM_BASE_URL=account.base_url, AMOCRM_CLIENT_ID=account.client_id,
                  AMOCRM_CLIENT_SECRET=account.client_secret, AMOCRM_REDIRECT_URI=account.redirect_uri,
                  STATE_URL=f"sqlite:///{tmp_path / 's.db'}", ADMIN_TOKEN=ADMIN, PLAYBOOK=write_playbook(tmp_path),
                  PLAYBOOK_LANG="en", EVENT_DEBOUNCE_SECONDS=0, QUEUE_URL=QUEUE_URL, QUEUE_REDELIVER_SECONDS=4)
    db = Path(tmp_path / "s.db")
    workers = Workers(values, tmp_path)
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    try:
        workers.start()
        r = requests.get(app.url + "/amocrm/connect", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
        state = parse_qs(urlparse(r.json()["url"]).query)["state"][0]
        query = {"referer": urlparse(account.base_url).netloc, "client_id": account.client_id,
                 "code": account.issue_auth_code(), "state": state}
        assert requests.get(f"{app.url}/amocrm/oauth?{urlencode(query)}", timeout=5).status_code == 200
        wait_for(lambda: all_done(db) and len(inbox_rows(db)) >= 2, timeout=60)
    finally:
        app.stop(timeout=30)
        workers.stop()
    rows = inbox_rows(db)
    assert [r["kind"] for r in rows][:2] == ["amocrm.oauth", "sync"] and all(r["error"] is None for r in rows), \
        workers.logs()
    assert app.installs.get("amocrm")["destination"].startswith(app.url)
    assert account.stats()["objects"]["task"] > 0 and account.stats()["objects"]["webhook"] == 1
