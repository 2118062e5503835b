"""Jobs through Redis and real `repeat-sales worker` processes: durable once answered, finished by
another worker after a kill -9, nothing lost across a Redis restart, nothing written twice, robots first."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

from queue_support import (
    CUSTOMERS,
    QUEUE_URL,
    SEED,
    TODAY,
    all_done,
    bitrix_app_values,
    inbox_rows,
    markers,
    wait_for,
)

from connector.settings import load_settings
from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator


def state_db(values) -> Path:
    return Path(values["STATE_URL"].removeprefix("sqlite:///"))


def install(portal, webapp, values, timeout: float = 60) -> None:
    assert portal.app.install(webapp.url + "/bitrix/install") == 200
    wait_for(lambda: all_done(state_db(values)) and len(inbox_rows(state_db(values))) >= 2, timeout)


def single_process_run(tmp_path, **extra) -> tuple[dict, dict]:
    """The same shop installed on a fresh portal and synced by `serve` alone (no queue): what it ends with."""
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        values = {**bitrix_app_values(emu, tmp_path / "single"), "QUEUE_URL": None, **extra}
        app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
        try:
            assert emu.app.install(app.url + "/bitrix/install") == 200
            wait_for(lambda: app.installs.get("bitrix") and app.worker.wait_idle(1) and app.worker.stats["syncs"])
        finally:
            app.stop(timeout=30)
        return dict(markers(emu)), emu.stats()["objects"]


def test_install_and_its_first_sync_run_on_a_worker_and_are_marked_done(redis_server, portal, webapp, workers,
                                                                        values):
    workers.start()
    install(portal, webapp, values)
    rows = inbox_rows(state_db(values))
    assert [r["kind"] for r in rows][:2] == ["bitrix.install", "sync"] and all(r["error"] is None for r in rows)
    assert {r["kind"] for r in rows[2:]} <= {"sync"}  # the portal's events about what the first sync wrote
    assert webapp.installs.get("bitrix")["robots"], workers.logs()
    written = markers(portal)
    assert written and max(written.values()) == 1
    # the portal sends an event for every write of the first sync; they join one waiting request each (a few
    # requests: each ends at once, finding only the app's own writes - connector.quiet - so a later echo opens one)
    echoes = len(portal.app.outbound.sent("event"))
    syncs = sum(r["kind"] == "sync" for r in inbox_rows(state_db(values)))
    assert echoes >= 20 and syncs <= echoes // 5, (echoes, syncs)


def test_a_worker_killed_mid_write_is_finished_by_another_and_nothing_is_written_twice(
        redis_server, portal, tmp_path, values):
    from queue_support import Workers

    values = {**values, "BITRIX_WRITE_BATCH": 3}  # many small write requests: a kill lands between two
    expected_markers, expected_objects = single_process_run(tmp_path, BITRIX_WRITE_BATCH=3)
    group = Workers(values, tmp_path)
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    try:
        group.start()
        group.start()
        portal.set_latency(150)
        assert portal.app.install(app.url + "/bitrix/install") == 200
        wait_for(lambda: len(markers(portal)) >= 3, timeout=90)  # the first sync is writing
        redis = redis_server.client()
        lock = wait_for(lambda: redis.keys("rs:lock:sync:*"), timeout=10)[0]
        pid = int(redis.get(lock).decode().split(":")[1])
        os.kill(pid, signal.SIGKILL)
        next(p for p in group.procs if p.pid == pid).wait(10)  # reaped, as its supervisor would
        written_when_killed = sum(markers(portal).values())
        assert written_when_killed < sum(expected_markers.values()), "killed too late to prove anything"
        portal.set_latency(0)
        wait_for(lambda: all_done(state_db(values)), timeout=120)
    finally:
        app.stop(timeout=30)
        group.stop()
    assert dict(markers(portal)) == expected_markers, group.logs()
    assert portal.stats()["objects"] == expected_objects
    sync = [r for r in inbox_rows(state_db(values)) if r["kind"] == "sync"]
    assert max(r["attempts"] for r in sync) >= 2  # the sync ran again on the other worker


def test_events_answered_while_redis_is_down_are_kept_and_run_once_it_is_back(redis_server, portal, webapp,
                                                                              workers, values):
    workers.start()
    install(portal, webapp, values)
    redis_server.stop()
    contact = sorted(portal.store.contacts.rows)[3]
    deal = portal.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
    assert portal.app.outbound.wait_idle(30)
    answered = [d for d in portal.app.outbound.sent("event") if d["data"]["data"]["FIELDS"]["ID"] == str(deal)]
    assert answered and all(d["status"] == 200 for d in answered)
    assert not all_done(state_db(values))  # kept, not yet run
    redis_server.start()
    key = f"v1:{contact}:calendar:{deal}:thanks"  # day 2 after a purchase on 06-13 is today, 06-15
    wait_for(lambda: markers(portal)[key] == 1 and all_done(state_db(values)), timeout=60)
    assert max(markers(portal).values()) == 1, workers.logs()


def test_a_robot_call_is_answered_before_a_backlog_of_syncs(redis_server, portal, webapp, workers, values):
    first = workers.start()
    install(portal, webapp, values)
    workers.stop(first)
    for deal_id in (1, 2, 3):  # three events while no worker runs: a sync request waits, queued before the robot
        portal.touch_purchase(deal_id, comments=f"edit {deal_id}")
        assert portal.app.outbound.wait_idle(10)
    contact = sorted(portal.store.contacts.rows)[5]
    deal = portal.add_deal(contact, won=True, amount=3100, closed=datetime(2026, 6, 13, 10, 0))
    assert portal.app.outbound.wait_idle(10)
    token = portal.app.run_robot("rs_classify_customer", f"DEAL_{deal}")
    assert portal.app.outbound.wait_idle(10)
    rows = inbox_rows(state_db(values))
    robot = next(r for r in rows if r["lane"] == "robots")
    backlog = [r for r in rows if r["kind"] == "sync" and r["done_at"] is None and r["id"] < robot["id"]]
    assert backlog and all(r["started_at"] is None for r in backlog)
    workers.start()
    wait_for(lambda: portal.app.returned(token) and all_done(state_db(values)), timeout=60)
    rows = {r["id"]: r for r in inbox_rows(state_db(values))}
    assert all(rows[robot["id"]]["started_at"] < rows[r["id"]]["started_at"] for r in backlog), rows


def test_a_worker_with_beat_queues_the_tenants_scheduled_sync(redis_server, portal, webapp, workers, values):
    workers.start()
    install(portal, webapp, values)
    syncs = sum(r["kind"] == "sync" for r in inbox_rows(state_db(values)))
    workers.start("--beat")  # the tenant is due at once, then every SCHEDULE_EVERY_MINUTES
    wait_for(lambda: sum(r["kind"] == "sync" for r in inbox_rows(state_db(values))) == syncs + 1
             and all_done(state_db(values)), timeout=60)
    assert max(markers(portal).values()) == 1, workers.logs()


def test_the_sweep_sends_again_only_jobs_redis_no_longer_holds(redis_server, tmp_path):
    """A job waiting its turn in a long queue is not sent twice; one Redis lost (restart without its
    append-only file) is."""
    import time

    from connector.jobs.broker import JOBS, JobQueue, queue_name

    settings = load_settings(STATE_URL=f"sqlite:///{tmp_path / 'sweep.db'}", QUEUE_URL=QUEUE_URL,
                             QUEUE_REDELIVER_SECONDS=2)
    queue = JobQueue(settings)
    redis = redis_server.client()
    waiting = queue.put("default", "bitrix.install", "jobs", {"method": "complete_install"})
    jobs = queue_name(JOBS, queue.deployment)  # this deployment's queue
    time.sleep(2.5)  # older than QUEUE_REDELIVER_SECONDS, still in Redis: nobody took it yet
    assert queue.sweep() == 0 and redis.llen(jobs) == 1
    redis.flushall()  # Redis lost the message (and everything else)
    time.sleep(2.5)
    assert queue.sweep() == 1 and redis.llen(jobs) == 1
    assert queue.inbox.get(waiting) is not None and not queue.inbox.get(waiting).done
