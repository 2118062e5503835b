"""Helpers for the webhook app tests (imported by name: tests/webapp has no package)."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import date
from pathlib import Path

import requests

from connector.settings import load_settings

TODAY = date(2026, 6, 15)  # the shop's history is anchored here
CUSTOMERS = 40
SEED = 7
ADMIN = "admin-token-0123456789abcdef"
MARKER = re.compile(r"rs:(v\d+:\S+)")
# The bundled playbook minus the hold-out and with a loose cap, so one chosen customer's plan is predictable
PLAYBOOK = """extends = "default.en"
[guards.holdout]
enabled = false
[guards.cap]
max_touches = 10
"""


def write_playbook(tmp_path: Path) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "playbook.toml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    return str(path)


def wait_for(predicate, timeout: float = 15.0, step: float = 0.05):
    """Poll until `predicate()` is truthy (and return it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)


def post_form(url: str, body: str | bytes, **kw) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
    return requests.post(url, data=body, headers=headers, timeout=10, **kw)


def tasks_by_marker(emu) -> Counter:
    """Ground truth in the Bitrix24 emulator: tasks per `rs:<key>` marker."""
    with emu.store.lock:
        return Counter(k for t in emu.store.tasks.rows.values() for k in MARKER.findall(t.description or ""))


def touches_by_marker(emu) -> Counter:
    """Ground truth in the Bitrix24 emulator: what a run wrote per `rs:<key>` marker, tasks and the e-mails
    the portal sent from its mailbox (their marker is in ORIGIN_ID, never in the letter)."""
    with emu.store.lock:
        emails = Counter(k for a in emu.store.activities.rows.values() if a.type_id == 4
                         for k in MARKER.findall(a.origin_id or ""))
    return tasks_by_marker(emu) + emails


def admin(headers: dict | None = None) -> dict:
    return {"Authorization": f"Bearer {ADMIN}", **(headers or {})}


def bitrix_settings(portal, tmp_path, **extra):
    """The app's settings for a portal known only through the app (no incoming webhook)."""
    values = dict(CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=portal.app.client_id,
                  BITRIX_APP_CLIENT_SECRET=portal.app.client_secret, BITRIX_OAUTH_URL=portal.base_url,
                  BITRIX_REQUESTS_PER_SECOND=50, BITRIX_REQUEST_POOL=250,
                  STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", ADMIN_TOKEN=ADMIN,
                  PLAYBOOK=write_playbook(tmp_path), PLAYBOOK_LANG="en", EVENT_DEBOUNCE_SECONDS=0.2)
    return load_settings(**{**values, **extra})
