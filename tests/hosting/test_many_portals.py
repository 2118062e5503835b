"""The hosted app, whole, over HTTP: PostgreSQL + Redis + three Bitrix24 portals of one app and an amoCRM
account; `serve` and two `worker` processes; the app installed into each portal through the portal, the account
connected through its OAuth. Each portal ends as the single-portal run of the same shop, with one worker
killed -9 mid-write (the other finishes its job, nothing doubled) and Redis restarted mid-run (nothing lost).

CI runs this with CI=true: PostgreSQL and redis-server are there (.ci/run), so nothing skips.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path

import pytest

from tests.hosting.harness import REDIS_SERVER, Hosting, crm_state, markers, single_portal_state, wait_for

CUSTOMERS = 100
SMALL_WRITES = {"BITRIX_WRITE_BATCH": 3}  # many small write requests: a kill lands between two


def need_redis() -> None:
    if Path(REDIS_SERVER).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{REDIS_SERVER} is missing: apt-get install redis-server (.ci/run does)")
    pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")


def kill_a_worker_mid_write(h: Hosting, portal, expected: int) -> int:
    """kill -9 the worker holding a tenant's sync lock while that portal is half written; its pid."""
    wait_for(lambda: 3 <= sum(markers(portal).values()), timeout=180, what="a first sync writing")
    redis = h.redis.client()
    lock = wait_for(lambda: redis.keys("rs:lock:sync:*"), timeout=30, what="a sync holding its tenant's lock")[0]
    pid = int(redis.get(lock).decode().split(":")[1])
    victim = next(p for p in h.workers if p.pid == pid)
    os.kill(pid, signal.SIGKILL)
    victim.wait(10)  # reaped, as its supervisor would
    return pid


@pytest.mark.timeout(900)
def test_many_portals_on_postgresql_redis_and_two_workers(pg_url, tmp_path):
    need_redis()
    single = single_portal_state(tmp_path / "single-bitrix", CUSTOMERS, extra=SMALL_WRITES)
    # an account connected through the OAuth redirect is prepared as `repeat-sales install` does, then synced
    single_amo = single_portal_state(tmp_path / "single-amocrm", CUSTOMERS, crm="amocrm")
    with Hosting(tmp_path / "hosted", portals=3, customers=CUSTOMERS, amocrm=True, workers=2, pg_url=pg_url,
                 extra=SMALL_WRITES) as h:
        for emu in h.portals:
            emu.set_latency(60)  # each request takes a while: the kill lands mid-write
        h.install_all()
        killed = kill_a_worker_mid_write(h, h.portals[0], sum(single["markers"].values()))
        assert sum(1 for p in h.workers if p.poll() is None) == 1
        for emu in h.portals:
            emu.set_latency(0)
        wait_for(lambda: h.crm_states() == [single] * 3 + [single_amo], timeout=300,
                 what=f"every portal as its single-portal run (worker {killed} killed)")
        h.wait_runs(1, 4, timeout=120)

        listed = h.tenants()
        assert len(listed) == 4 and sorted(t["crm"] for t in listed) == ["amocrm", "bitrix", "bitrix", "bitrix"]
        assert {t["portal"] for t in listed} == {e.base_url.split("//")[1] for e in [*h.portals, h.amo]}

        # Redis restarts while a portal's event comes in: the event was answered (kept in the state), its sync
        # runs once Redis is back
        portal = h.portals[1]
        for emu in h.portals:  # the events about what the syncs wrote are delivered first
            assert emu.app.outbound.wait_idle(180)
        h.redis.stop()
        contact = sorted(portal.store.contacts.rows)[3]
        deal = portal.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
        assert portal.app.outbound.wait_idle(120)
        answered = [d for d in portal.app.outbound.sent("event") if d["data"]["data"]["FIELDS"]["ID"] == str(deal)]
        assert answered and all(d["status"] == 200 for d in answered), h.log("serve")
        h.redis.start()
        key = f"v1:{contact}:calendar:{deal}:thanks"  # day 2 after a purchase on 06-13 is today, 06-15
        wait_for(lambda: markers(portal)[key] == 1, timeout=120, what="the event's sync after Redis came back")

        # a sync of every tenant, queued for the workers: nothing new, nothing twice
        before = h.newest_runs()
        done = h.cli("sync", "--all-tenants", "--format", "json")
        assert done.returncode == 0, done.stderr[-2000:]
        synced = json.loads(done.stdout)["tenants"]
        assert sorted(t["tenant"] for t in synced) == sorted(t["tenant"] for t in listed)
        assert all(t["queued"] for t in synced), synced
        wait_for(lambda: all(n > before[t] for t, n in h.newest_runs().items()), timeout=300,
                 what="each tenant's queued sync run by the workers")
        states = h.crm_states()
        assert states[0] == states[2] == single and states[3] == single_amo, h.logs()
        assert max(markers(portal).values()) == 1 and crm_state(portal)["objects"]["task"] >= \
            single["objects"]["task"]
