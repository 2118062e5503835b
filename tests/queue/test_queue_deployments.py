"""Two deployments on one Redis (a leftover worker of an earlier run, a staging beside production): each
deployment's jobs reach only its own workers. Seen in a benchmark: a worker of an earlier run, still
connected to a Redis on the same port, took the new run's install message, found no such row in its own
inbox, answered "done already", and the install waited for the sweep."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from queue_support import QUEUE_URL, ROOT, TODAY, Workers, bitrix_app_values, inbox_rows, wait_for

from connector.jobs import broker
from connector.settings import load_settings
from connector.webapp import WebApp
from connector.webapp.inbox import Inbox


def state_db(values) -> Path:
    return Path(values["STATE_URL"].removeprefix("sqlite:///"))


def ready(workers: Workers) -> bool:
    return " ready." in workers.logs()


def test_a_worker_of_another_deployment_on_the_same_redis_never_takes_our_jobs(redis_server, portal, tmp_path):
    other = bitrix_app_values(portal, tmp_path / "earlier-run")  # its own state: another deployment
    ours = bitrix_app_values(portal, tmp_path / "this-run", QUEUE_REDELIVER_SECONDS=300)  # no sweep in this test
    stale = Workers(other, tmp_path / "earlier-run")
    own = Workers(ours, tmp_path / "this-run")
    app = WebApp(load_settings(**ours), port=0, today=lambda: TODAY).start()
    try:
        stale.start()
        wait_for(lambda: ready(stale), timeout=60)
        assert portal.app.install(app.url + "/bitrix/install") == 200
        time.sleep(2)  # the stale worker's chance to take the message (it is waiting on Redis)
        own.start()
        wait_for(lambda: any(r["kind"] == "bitrix.install" and r["done_at"] for r in inbox_rows(state_db(ours))),
                 timeout=90)  # by our worker, long before a sweep would queue it again
        install = next(r for r in inbox_rows(state_db(ours)) if r["kind"] == "bitrix.install")
        assert install["error"] is None and install["attempts"] == 1, install
        assert app.installs.get("bitrix")["robots"], own.logs()
    finally:
        app.stop(timeout=30)
        stale.stop()
        own.stop()
    assert "done already" not in stale.logs() and "repeat_sales." not in stale.logs().split(" ready.", 1)[1]
    assert inbox_rows(state_db(other)) == []


def test_a_message_of_another_deployment_is_refused_loudly_and_left_to_its_own_sweep(redis_server, portal,
                                                                                    tmp_path):
    values = bitrix_app_values(portal, tmp_path, QUEUE_REDELIVER_SECONDS=300)  # no sweep within the test
    settings = load_settings(**values)
    inbox = Inbox(settings.state_target, settings.sealer())
    entry = inbox.put("default", "sync", broker.JOBS, {"reason": "event"})
    workers = Workers(values, tmp_path)
    try:
        workers.start()
        wait_for(lambda: ready(workers), timeout=60)
        redis = redis_server.client()
        mark = broker.queued_key("0123456789", entry)  # the other deployment's sweep takes it for still queued
        redis.set(mark, "1")
        app = broker.celery_app(settings, inbox.deployment)  # a message in our queue claiming another deployment
        app.send_task("repeat_sales.sync", args=["default", "sync", entry, "0123456789"],
                      queue=broker.queue_name(broker.JOBS, inbox.deployment))
        wait_for(lambda: "0123456789" in workers.logs(), timeout=30)
    finally:
        workers.stop()
    line = next(x for x in workers.logs().splitlines() if "0123456789" in x)
    assert "ERROR" in line and inbox.deployment in line and f"id={entry}" in line, line
    assert not redis.exists(mark)  # so the other deployment's sweep sends it again to its own workers
    [row] = inbox_rows(state_db(values))
    assert row["started_at"] is None and row["done_at"] is None  # never run, never marked: its own sweep sends it


def test_a_worker_whose_state_cannot_be_reached_stops_at_once_with_one_line(redis_server, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "CRM": "bitrix", "LOG_LEVEL": "INFO",
           "QUEUE_URL": QUEUE_URL,
           "STATE_URL": "postgresql://rs:s3cret-pw@127.0.0.1:1/repeat_sales"}  # nothing listens on port 1
    done = subprocess.run([sys.executable, "-m", "connector", "worker"], env=env, cwd=tmp_path, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "state database" in done.stderr and "STATE_URL" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout and " ready." not in done.stderr
