"""Helpers for the app's pages tests: a portal whose first customer has a hostile name and product, the
app installed with its page address, and the portal's own opening POST (POST /_emulator/app/open)."""

from __future__ import annotations

import re

import requests
from web_support import CUSTOMERS, SEED, TODAY, bitrix_settings

from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator

HOSTILE_PRODUCT = '<script>document.title="pwned"</script>Кофе'
HOSTILE_NAME = "<img src=x onerror=alert(1)>Иван"
ADMIN_USER, PLAIN_USER = 1, 2


def hostile_customer(emu: BitrixEmulator) -> int:
    """The first contact with a won deal: named and sold a product whose names are markup."""
    with emu.store.lock:
        deal = next(d for d in sorted(emu.store.deals.rows.values(), key=lambda d: d.id)
                    if d.semantic == "S" and d.contact_ids and emu.store.rows_of(d.id))
        contact = emu.store.contacts.rows[int(deal.contact_ids[0])]
        contact.name = HOSTILE_NAME
        for d in emu.store.deals.rows.values():
            if contact.id in {int(c) for c in d.contact_ids}:
                for row in emu.store.rows_of(d.id):
                    row.product_name = HOSTILE_PRODUCT
        return contact.id


def start(tmp_path, **extra):
    """The portal (Russian playbook by default) with the app installed and synced; returns (emu, app, customer)."""
    emu = BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY).start()
    customer = hostile_customer(emu)
    settings = bitrix_settings(emu, tmp_path, **{"PLAYBOOK": None, "PLAYBOOK_LANG": "ru", **extra})
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    assert emu.app.install(app.url + "/bitrix/install", app_url=app.url + "/bitrix/app") == 200
    assert app.worker.wait_idle(60), app.worker.last_error
    assert app.installs.get("bitrix"), app.worker.last_error
    return emu, app, customer


def open_form(emu: BitrixEmulator, placement: str = "DEFAULT", options: dict | None = None,
              user_id: int = ADMIN_USER) -> dict:
    """What the portal would POST to the app (the emulator's control API, over HTTP)."""
    r = requests.post(emu.base_url + "/_emulator/app/open", json={"placement": placement, "options": options or {},
                                                                  "user_id": user_id}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def post(opened: dict, extra: dict | None = None, url: str | None = None) -> requests.Response:
    return requests.post(url or opened["url"], data={**opened["form"], **(extra or {})}, timeout=120)


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden fields of the page's first form (AUTH_ID, member_id, csrf)."""
    import html as htmllib

    return {m.group(1): htmllib.unescape(m.group(2))
            for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
            if m.group(1) in ("AUTH_ID", "member_id", "csrf")}
