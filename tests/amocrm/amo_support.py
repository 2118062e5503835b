"""Helpers shared by the amoCRM tests (imported by name: tests/amocrm has no package)."""

from __future__ import annotations

from datetime import date

from connector.amocrm import AmoAdapter
from connector.amocrm.oauth import OAuthApp
from emulators.amocrm import AmoEmulator

TODAY = date(2026, 6, 15)  # the shop's history is anchored here, so plans are reproducible
CUSTOMERS = 120
SEED = 7


class Sleeps(list):
    """An injected `sleep`: records each wait instead of waiting, so tests never wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


FAST = 1000.0  # requests per second for tests against an emulator without its limit; one test keeps 7


def token_adapter(emu: AmoEmulator, **kw) -> AmoAdapter:
    kw.setdefault("requests_per_second", FAST)
    return AmoAdapter(emu.base_url, access_token=emu.access_token, **kw)


def oauth_adapter(emu: AmoEmulator, state_path, *, code: str | None = None, **kw) -> AmoAdapter:
    kw.setdefault("requests_per_second", FAST)
    app = OAuthApp(emu.client_id, emu.client_secret, emu.redirect_uri)
    return AmoAdapter(emu.base_url, oauth=app, auth_code=code, state_path=state_path, **kw)


def pull_all(adapter, since=None):
    customers, purchases, products, removed, cursor = {}, {}, {}, [], None
    for page in adapter.pull(since):
        customers.update({c.id: c for c in page.customers})
        purchases.update({p.id: p for p in page.purchases})
        products.update({p.id: p for p in page.products})
        removed += page.removed_purchase_ids
        cursor = page.cursor or cursor
    return customers, purchases, products, removed, cursor
