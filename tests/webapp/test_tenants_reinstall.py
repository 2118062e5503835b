"""A portal removed with `tenants remove --yes` (another process) while `serve` runs, then installing the app
again: on PostgreSQL its schema was dropped under `serve`, which had made it once and took it for still there;
the new install must land in a new schema and sync (on SQLite the state file is simply made again)."""

from __future__ import annotations

import os

import pytest
import requests
from web_support import CUSTOMERS, TODAY, bitrix_settings, wait_for, write_playbook

from connector import tenants
from connector.state import State
from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator
from tests.conftest import ROOT, run_cli
from tests.store_engines import ENGINES, fresh_schema

CLIENT_ID, SECRET = "app.2b3c4d5e6f7a81.92837465", "yet-another-marketplace-apps-secret-q1w2"


def install(emu, app) -> None:
    requests.post(f"{emu.base_url}/_emulator/app/install", json={"handler": app.url + "/bitrix/install"},
                  timeout=30).raise_for_status()
    wait_for(lambda: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=60)
    for host in list(app.tenants.values()):
        assert host.worker.wait_idle(60), host.worker.last_error


@pytest.mark.parametrize("engine", ENGINES)
def test_a_removed_portal_installs_again_into_a_new_state_while_serve_runs(engine, tmp_path, request):
    extra = {"STATE_URL": fresh_schema(request.getfixturevalue("pg_url"), "reinstall")} if engine == "postgresql" else {}
    portals = [BitrixEmulator(customers=CUSTOMERS, seed=7, today=TODAY, app_client_id=CLIENT_ID,
                              app_client_secret=SECRET).start() for _ in range(2)]
    settings = bitrix_settings(portals[0], tmp_path, **extra)
    other = portals[1].app.member_id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=CLIENT_ID, BITRIX_APP_CLIENT_SECRET=SECRET,
               BITRIX_OAUTH_URL=portals[0].base_url, STATE_URL=settings.STATE_URL, PLAYBOOK=write_playbook(tmp_path),
               PLAYBOOK_LANG="en", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    app = WebApp(settings, port=0, today=lambda: TODAY).start()
    try:
        for emu in portals:
            install(emu, app)
        removed = run_cli(["tenants", "remove", other, "--yes"], env)
        assert removed.returncode == 0 and "state" in removed.stdout, removed.stderr
        assert other not in tenants.stored_tenants(settings)
        install(portals[1], app)
        host = app.tenants[other]
        assert host.worker.last_error is None, host.worker.last_error
        assert other in tenants.stored_tenants(settings)
        state = State(tenants.state_target(settings, other))
        try:
            assert [r["kind"] for r in state.last_runs(10)].count("sync") >= 1  # its first sync, in its new state
        finally:
            state.close()
    finally:
        app.stop(timeout=30)
        for emu in portals:
            emu.stop()
