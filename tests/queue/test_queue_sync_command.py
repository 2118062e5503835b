"""`repeat-sales sync --all-tenants` / `--tenant ID` with QUEUE_URL: a sync of each tenant is queued for the
workers and the command returns (issue 19, part 7); without a worker nothing is synced by the command itself,
and once a worker runs, each tenant's sync runs there."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from queue_support import all_done, app_portals, inbox_rows, markers, stop_all, wait_for

from connector import tenants
from connector.state import State
from tests.conftest import run_cli


def runs_of(settings) -> dict[str, int]:
    """How many runs each tenant's state holds."""
    found = {}
    for tenant in tenants.known(settings):
        state = State(tenants.state_target(settings, tenant.id))
        try:
            found[tenant.id] = len(state.last_runs(100))
        finally:
            state.close()
    return found


def test_sync_of_every_tenant_is_queued_for_the_workers(redis_server, tmp_path):
    portals, values, workers, app = app_portals(2, tmp_path)
    db = Path(values["STATE_URL"].removeprefix("sqlite:///"))
    try:
        first = workers.start()
        for emu in portals:
            r = requests.post(f"{emu.base_url}/_emulator/app/install", timeout=30,
                              json={"handler": app.url + "/bitrix/install"})
            assert r.status_code == 200 and r.json()["status"] == 200, r.text
            wait_for(lambda emu=emu: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=90)
        wait_for(lambda: all(markers(emu) for emu in portals) and all_done(db), timeout=120)
        for emu in portals:  # the events about what the first syncs wrote, and their syncs
            assert emu.app.outbound.wait_idle(60)
        wait_for(lambda: all_done(db), timeout=120)
        workers.stop(first)
        before = runs_of(app.settings)
        assert sorted(before) == sorted([tenants.DEFAULT, portals[1].app.member_id])

        env = {**workers.env, "CWD": str(tmp_path)}
        done = run_cli(["sync", "--all-tenants", "--format", "json"], env, timeout=60)
        assert done.returncode == 0, done.stderr
        queued = json.loads(done.stdout)["tenants"]
        assert sorted(q["tenant"] for q in queued) == sorted(before) and all(q["queued"] for q in queued), queued
        assert runs_of(app.settings) == before  # nothing ran in the command: the syncs wait for a worker
        open_syncs = [r for r in inbox_rows(db) if r["kind"] == "sync" and r["done_at"] is None]
        assert sorted(r["id"] for r in open_syncs) == sorted(q["job"] for q in queued)

        done = run_cli(["sync", "--tenant", portals[1].app.member_id], env, timeout=60)
        assert done.returncode == 0 and "queued" in done.stdout and portals[1].app.member_id in done.stdout, \
            done.stdout + done.stderr

        workers.start()
        wait_for(lambda: all_done(db), timeout=120)
        after = runs_of(app.settings)
        assert all(after[t] > before[t] for t in before), (before, after, workers.logs())
        assert all(max(markers(emu).values()) == 1 for emu in portals)  # nothing written twice
    finally:
        stop_all(app, workers, portals)
