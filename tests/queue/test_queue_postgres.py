"""The queue with the state on PostgreSQL (STATE_URL=postgresql://...): `serve` keeps the install and its
first sync in PostgreSQL's inbox before the 200, a real `repeat-sales worker` runs them from there and marks
them done, and nothing of the state lands in a local file."""

from __future__ import annotations

import time

from queue_support import (
    TODAY,
    Workers,
    all_done,
    app_portals,
    bitrix_app_values,
    inbox_rows,
    markers,
    stop_all,
    wait_for,
)

from connector.settings import load_settings
from connector.state import State
from connector.webapp import WebApp
from tests.store_engines import fresh_schema


def test_on_postgresql_the_install_and_its_first_sync_run_on_a_worker(redis_server, portal, tmp_path, pg_url):
    url = fresh_schema(pg_url, "queue")
    values = bitrix_app_values(portal, tmp_path, STATE_URL=url)
    workers = Workers(values, tmp_path)
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    try:
        workers.start()
        assert portal.app.install(app.url + "/bitrix/install") == 200
        wait_for(lambda: len(inbox_rows(url)) >= 2 and all_done(url), timeout=120)
        rows = inbox_rows(url)
        assert [r["kind"] for r in rows][:2] == ["bitrix.install", "sync"], workers.logs()
        assert all(r["error"] is None and r["attempts"] >= 1 for r in rows[:2]), rows
        assert app.installs.get("bitrix")["robots"], workers.logs()
        written = markers(portal)
        assert written and max(written.values()) == 1, workers.logs()
    finally:
        app.stop(timeout=30)
        workers.stop()
    state = State(url)
    try:
        assert [r["kind"] for r in state.last_runs(10)].count("sync") >= 1  # the worker's sync, in PostgreSQL
    finally:
        state.close()
    assert not [p.name for p in tmp_path.iterdir() if p.suffix == ".db" or p.name.startswith("postgresql")]


def test_serve_keeps_the_schema_of_a_portal_whose_install_still_waits_for_a_worker(redis_server, tmp_path, pg_url):
    """Installs arriving while every worker is busy (or none runs yet): `serve` must not take a portal it has
    queued for an unverified one the auth server refused and drop its schema under the worker that then
    installs it (seen in CI as a tenant whose install failed on every retry)."""
    from connector import tenants

    url = fresh_schema(pg_url, "queued_installs")
    portals, values, workers, app = app_portals(3, tmp_path, STATE_URL=url)
    try:
        assert portals[0].app.install(app.url + "/bitrix/install") == 200
        workers.start()  # the default portal's install is stored before the others come (a known race)
        wait_for(lambda: app.registry.tenant_of("bitrix", portals[0].app.member_id), timeout=90)
        workers.stop()
        for emu in portals[1:]:  # no worker runs: both installs wait in the inbox
            assert emu.app.install(app.url + "/bitrix/install") == 200
        wait_for(lambda: len(tenants.stored_tenants(app.settings)) >= 2, timeout=30)
        time.sleep(1)  # what serve may still do with the two it has queued (before: drop the first one's schema)
        assert len(tenants.stored_tenants(app.settings)) == 2, "a queued portal's schema was dropped"
        workers.start()
        wait_for(lambda: all(app.registry.tenant_of("bitrix", emu.app.member_id) for emu in portals), timeout=120)
        wait_for(lambda: all(markers(emu) for emu in portals) and all_done(url), timeout=180)
        assert all(max(markers(emu).values()) == 1 for emu in portals), workers.logs()
    finally:
        stop_all(app, workers, portals)


def test_a_portal_removed_by_tenants_remove_installs_again_into_a_new_schema(redis_server, tmp_path, pg_url):
    """`tenants remove --yes` (another process) drops a tenant's schema; the worker that made it once must
    make it again when the portal installs again, not take it for still there (its install failed)."""
    import subprocess
    import sys

    from queue_support import ROOT

    from connector import tenants
    from connector.store import engine

    url = fresh_schema(pg_url, "reinstall")
    portals, values, workers, app = app_portals(2, tmp_path, STATE_URL=url)
    other = portals[1].app.member_id
    try:
        workers.start()
        for emu in portals:
            assert emu.app.install(app.url + "/bitrix/install") == 200
            wait_for(lambda emu=emu: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=120)
        wait_for(lambda: all_done(url) and tenants.state_exists(app.settings, other), timeout=180)
        removed = subprocess.run([sys.executable, "-m", "connector", "tenants", "remove", other, "--yes"],
                                 env={**workers.env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, timeout=120,
                                 capture_output=True, text=True)
        assert removed.returncode == 0 and "schema" in removed.stdout, removed.stderr
        assert other not in tenants.stored_tenants(app.settings)
        done_before = len(inbox_rows(url))
        assert portals[1].app.install(app.url + "/bitrix/install") == 200
        wait_for(lambda: app.registry.tenant_of("bitrix", other) and all_done(url)
                 and any(r["kind"] == "sync" for r in inbox_rows(url)[done_before:]), timeout=180)
        again = inbox_rows(url)[done_before:]
        assert [r["error"] for r in again] == [None] * len(again), (again, workers.logs())
        assert other in tenants.stored_tenants(app.settings)
        db = engine.connect(tenants.with_search_path(url, tenants.schema_name(url, other)), timeout=10)
        try:
            assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] >= 1  # its new sync, in its new schema
        finally:
            db.close()
    finally:
        stop_all(app, workers, portals)
