"""A private Redis per test, a Bitrix24 portal emulator, and `serve`'s app with QUEUE_URL set."""

from __future__ import annotations

import pytest
from queue_support import CUSTOMERS, SEED, TODAY, RedisServer, Workers, bitrix_app_values, need_redis

from connector.settings import load_settings
from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator


@pytest.fixture
def redis_server(tmp_path):
    need_redis()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def portal():
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture
def values(portal, tmp_path):
    return bitrix_app_values(portal, tmp_path)


@pytest.fixture
def webapp(values):
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    yield app
    app.stop(timeout=30)


@pytest.fixture
def workers(values, tmp_path):
    group = Workers(values, tmp_path)
    yield group
    group.stop()
