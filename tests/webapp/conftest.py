"""A Bitrix24 portal emulator and the webhook app, both real servers on 127.0.0.1."""

from __future__ import annotations

import pytest
from web_support import CUSTOMERS, SEED, TODAY, bitrix_settings

from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator


@pytest.fixture
def portal():
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture
def webapp(portal, tmp_path):
    app = WebApp(bitrix_settings(portal, tmp_path), port=0, today=lambda: TODAY).start()
    yield app
    app.stop(timeout=30)


@pytest.fixture
def installed(portal, webapp):
    """The portal installed the app: tokens verified and stored, events bound, robots added, first sync done."""
    assert portal.app.install(webapp.url + "/bitrix/install") == 200
    assert webapp.worker.wait_idle(30)
    assert webapp.installs.get("bitrix"), webapp.worker.last_error
    return webapp
