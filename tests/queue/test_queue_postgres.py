"""The queue with the state on PostgreSQL (STATE_URL=postgresql://...): `serve` keeps the install and its
first sync in PostgreSQL's inbox before the 200, a real `repeat-sales worker` runs them from there and marks
them done, and nothing of the state lands in a local file."""

from __future__ import annotations

from queue_support import TODAY, Workers, all_done, bitrix_app_values, inbox_rows, markers, wait_for

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
