"""Helpers for the Bitrix24 emulator tests: plain HTTP calls, no client library."""

from __future__ import annotations

from datetime import date

import requests

CUSTOMERS = 120
SEED = 7
TODAY = date(2026, 6, 15)


def rest(emu, method: str, params: dict | None = None, **kwargs) -> requests.Response:
    """POST JSON to `<webhook>/<method>` and return the raw response."""
    return requests.post(emu.webhook_url + method, json=params or {}, timeout=10, **kwargs)


def ok(emu, method: str, params: dict | None = None) -> dict:
    """The envelope of a call that must succeed."""
    r = rest(emu, method, params)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()
