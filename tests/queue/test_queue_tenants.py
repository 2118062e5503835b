"""Two portals sharing one app, one `serve` with QUEUE_URL and two workers: each portal is a tenant whose
install and syncs run on the workers, named in the tasks by tenant id, and each ends as the other (the same
shop, the same playbook), nothing written twice."""

from __future__ import annotations

from pathlib import Path

import requests
from queue_support import all_done, app_portals, markers, stop_all, wait_for

from connector import tenants
from connector.state import State


def test_two_portals_are_two_tenants_synced_by_the_workers(redis_server, tmp_path):
    portals, values, workers, app = app_portals(2, tmp_path)
    db = Path(values["STATE_URL"].removeprefix("sqlite:///"))
    try:
        workers.start()
        workers.start()
        for emu in portals:
            r = requests.post(f"{emu.base_url}/_emulator/app/install", timeout=30,
                              json={"handler": app.url + "/bitrix/install", "app_url": app.url + "/bitrix/app"})
            assert r.status_code == 200 and r.json()["status"] == 200
            wait_for(lambda emu=emu: app.registry.tenant_of("bitrix", emu.app.member_id), timeout=90)
        wait_for(lambda: all(markers(emu) for emu in portals) and all_done(db), timeout=120)
        second = app.registry.tenant_of("bitrix", portals[1].app.member_id)
        assert second != tenants.DEFAULT
        state = State(tenants.state_path(app.settings, second))
        try:
            assert state.last_runs(10)  # its syncs ran on its own state
        finally:
            state.close()
        assert dict(markers(portals[0])) == dict(markers(portals[1])), workers.logs()
        assert max(markers(portals[1]).values()) == 1
        assert portals[0].stats()["objects"] == portals[1].stats()["objects"]
    finally:
        stop_all(app, workers, portals)


def test_installs_of_two_portals_before_any_worker_ran_are_two_tenants(redis_server, tmp_path):
    """Both portals install at once, while no worker has stored either install yet: each install (and the
    syncs after it) is its own portal's - the first the default, the second a tenant of its own - and both
    portals end with their actions written, nothing of one in the other's tenant."""
    portals, values, workers, app = app_portals(2, tmp_path)
    db = Path(values["STATE_URL"].removeprefix("sqlite:///"))
    try:
        for emu in portals:  # back to back: the inbox holds both installs, no worker runs yet
            r = requests.post(f"{emu.base_url}/_emulator/app/install", timeout=30,
                              json={"handler": app.url + "/bitrix/install", "app_url": app.url + "/bitrix/app"})
            assert r.status_code == 200 and r.json()["status"] == 200, r.text
        workers.start()
        wait_for(lambda: all(markers(emu) for emu in portals) and all_done(db), timeout=120)
        owners = [app.registry.tenant_of("bitrix", emu.app.member_id) for emu in portals]
        assert owners == [tenants.DEFAULT, portals[1].app.member_id], workers.logs()
        assert sorted(t.id for t in tenants.known(app.settings)) == sorted(owners)
        assert dict(markers(portals[0])) == dict(markers(portals[1])), workers.logs()
        assert max(markers(portals[1]).values()) == 1
    finally:
        stop_all(app, workers, portals)
