"""The inbox in the state (SQLite or PostgreSQL): kept before the answer, sealed at rest, swept when a job
was never finished, and claimed by one sweep only when several run at once."""

from __future__ import annotations

import threading

from connector.sealing import Sealer, new_key
from connector.store import engine
from connector.webapp.inbox import CRM_EVENT, Inbox


def stored_payloads(target) -> list[str]:
    """The payload column as it lies in the state, read past the Inbox."""
    db = engine.connect(target, timeout=10)
    try:
        return [row[0] for row in db.execute("SELECT payload FROM app_inbox")]
    finally:
        db.close()


def test_a_job_is_kept_sealed_and_read_back(state_target):
    inbox = Inbox(state_target, Sealer(new_key()))
    entry_id = inbox.put("bitrix:a.example", "bitrix.install", "jobs", {"args": [{"refresh_token": "r-secret-1"}]})
    assert stored_payloads(state_target) and not any("r-secret-1" in p for p in stored_payloads(state_target))
    entry = inbox.get(entry_id)
    assert entry.payload == {"args": [{"refresh_token": "r-secret-1"}]} and not entry.done


def test_one_sync_answers_every_open_request_of_its_tenant(state_target):
    inbox = Inbox(state_target)
    a = [inbox.put("bitrix:a", "sync", "jobs", {}) for _ in range(3)]
    inbox.put("bitrix:b", "sync", "jobs", {})
    inbox.put("bitrix:a", "bitrix.robot.rs_classify_customer", "robots", {})
    assert inbox.open_syncs("bitrix:a") == a
    inbox.done(a)
    assert inbox.open_syncs("bitrix:a") == [] and inbox.counts() == {"open": 2, "done": 3}
    assert inbox.get(a[0]).done and not inbox.get(a[0] + 3).done


def test_the_sweep_finds_jobs_never_queued_or_left_by_a_dead_worker(state_target):
    inbox = Inbox(state_target)
    never = inbox.put("t", "sync", "jobs", {}, now=1000.0)  # Redis was down: never queued
    taken = inbox.put("t", "bitrix.install", "jobs", {}, now=1000.0)
    inbox.enqueued(taken, now=1001.0)
    inbox.started(taken, now=1002.0)  # its worker died
    running = inbox.put("t", "bitrix.robot.rs_classify_customer", "robots", {}, now=1000.0)
    inbox.enqueued(running, now=1001.0)
    inbox.started(running, now=1095.0)  # started a moment ago
    done = inbox.put("t", "sync", "jobs", {}, now=1000.0)
    inbox.done([done], now=1003.0)
    assert [row[0] for row in inbox.overdue(60, now=1100.0)] == [never, taken]
    assert inbox.get(taken).attempts == 1


def test_a_swept_job_is_not_swept_again_before_its_timeout(state_target):
    inbox = Inbox(state_target)
    lost = inbox.put("t", "sync", "jobs", {}, now=1000.0)
    assert [row[0] for row in inbox.overdue(60, now=1100.0)] == [lost]
    assert inbox.overdue(60, now=1101.0) == []  # queued again a second ago: give it its time
    assert [row[0] for row in inbox.overdue(60, now=1170.0)] == [lost]  # lost again: swept again


def test_sweeps_running_at_once_on_several_workers_queue_each_job_once(state_target):
    first = Inbox(state_target)
    lost = [first.put(f"tenant-{i % 5}", "sync", "jobs", {}, now=1000.0) for i in range(200)]
    sweepers = [Inbox(state_target) for _ in range(4)]
    start = threading.Barrier(len(sweepers))
    found: list[list] = [[] for _ in sweepers]

    def sweep(i: int) -> None:
        start.wait()
        found[i] = [row[0] for row in sweepers[i].overdue(60, now=1100.0)]

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(len(sweepers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    swept = [entry_id for ids in found for entry_id in ids]
    assert sorted(swept) == lost  # every lost job queued again, none by two sweeps


def test_workers_read_the_robots_queue_first_in_whatever_order_kombu_lists_the_queues():
    """kombu hands the queue order a set (its order changes with each process's string hashing)."""
    from kombu.utils.scheduling import cycle_by_name

    from connector.jobs.broker import celery_app
    from connector.settings import load_settings

    app = celery_app(load_settings(QUEUE_URL="redis://127.0.0.1:1/0"))
    order = cycle_by_name(app.conf.broker_transport_options["queue_order_strategy"])()
    for listed in (["jobs", "robots"], ["robots", "jobs"], {"jobs", "robots"}):
        order.update(listed)
        assert order.consume(2) == ["robots", "jobs"]
        order.rotate("robots")  # the transport calls this after each message: the order stays
        assert order.consume(2) == ["robots", "jobs"]


def test_a_sync_request_joins_the_one_still_waiting_for_a_worker(state_target):
    inbox = Inbox(state_target)
    first, new = inbox.put_sync("bitrix:a", {"reason": "event"})
    assert new
    assert inbox.put_sync("bitrix:a", {"reason": "event"}) == (first, False)  # a burst is one request
    other, new = inbox.put_sync("bitrix:b", {"reason": "event"})
    assert new and other != first  # another tenant's is its own
    inbox.started(first)  # a worker began: it may have read the CRM already, so a later event asks again
    second, new = inbox.put_sync("bitrix:a", {"reason": "event"})
    assert new and second != first
    assert inbox.open_syncs("bitrix:a") == [first, second] and inbox.counts() == {"open": 3, "done": 0}


def test_a_full_sync_request_joining_a_crm_events_one_makes_it_a_full_sync(state_target):
    """CRM events' syncs may end early when the changes are the app's own writes (connector.quiet); a
    schedule's, a robot's or a feedback answer's request that joins one must not end early with it."""
    inbox = Inbox(state_target)
    first, _ = inbox.put_sync("bitrix:a", {"reason": CRM_EVENT})
    assert inbox.reasons([first]) == [CRM_EVENT]
    assert inbox.put_sync("bitrix:a", {"reason": "schedule"}) == (first, False)
    assert inbox.put_sync("bitrix:a", {"reason": CRM_EVENT}) == (first, False)  # a later event keeps it full
    assert inbox.reasons([first]) == ["schedule"]


def test_each_state_is_one_deployment_whose_id_is_made_once_and_names_its_queues(state_at):
    from connector.jobs.broker import JOBS, ROBOTS, RobotsFirst, queue_name

    first = Inbox(state_at("a.db")).deployment
    assert Inbox(state_at("a.db")).deployment == first  # every process of the deployment reads the same id
    other = Inbox(state_at("b.db")).deployment
    assert other != first
    names = [queue_name(JOBS, first), queue_name(ROBOTS, first)]
    assert names == [f"jobs.{first}", f"robots.{first}"]
    order = RobotsFirst([])
    order.update(names)  # as the Redis transport hands it its queues
    assert order.consume(2) == [f"robots.{first}", f"jobs.{first}"]  # robots first, also under their own names
