"""`repeat-sales worker`: a Celery worker on QUEUE_URL (start one per core, on as many machines as
share the state), plus housekeeping: the inbox sweep, and with `--beat` the schedule of all tenants."""

from __future__ import annotations

import logging
import os
import socket
import threading

from connector.jobs.broker import JOBS, ROBOTS, queue_name, redis_client, sweep_once
from connector.jobs.scheduler import TICK_SECONDS, Scheduler, tenant_schedules
from connector.jobs.tasks import register

log = logging.getLogger(__name__)


def housekeeping(settings, runner, stop: threading.Event, *, beat: bool) -> None:
    every = max(1.0, settings.QUEUE_REDELIVER_SECONDS / 2)
    redis = redis_client(settings)
    scheduler = Scheduler(redis, runner.queue.request_sync, lambda: tenant_schedules(settings),
                          deployment=runner.queue.deployment) if beat else None
    step = min(every, TICK_SECONDS)
    while not stop.wait(step):
        try:
            sweep_once(redis, runner.queue, every)
            if scheduler is not None:
                scheduler.tick()
        except Exception:  # a bug or the state away: logged, tried again at the next step
            log.exception("worker housekeeping failed")


def run_worker(concurrency: int, beat: bool) -> int:
    from connector.redact import setup_logging
    from connector.settings import load_settings
    from connector.webapp import settings_secrets

    settings = load_settings()
    settings.require("QUEUE_URL")
    setup_logging(settings.LOG_LEVEL, secrets=settings_secrets(settings))
    from connector.jobs.broker import celery_app
    from connector.webapp.inbox import Inbox

    deployment = Inbox(settings.state_target, settings.sealer()).deployment  # the state, reached before Redis
    app = celery_app(settings, deployment)
    runner = register(app, settings)
    stop = threading.Event()
    threading.Thread(target=housekeeping, args=(settings, runner, stop), kwargs={"beat": beat},
                     name="rs-housekeeping", daemon=True).start()
    queues = f"{queue_name(ROBOTS, deployment)},{queue_name(JOBS, deployment)}"
    log.info("worker deployment=%s queues=%s concurrency=%d beat=%s", deployment, queues, concurrency, beat)
    argv = ["worker", "-Q", queues, "--concurrency", str(concurrency),
            "--pool", "solo" if concurrency == 1 else "prefork", "--loglevel", settings.LOG_LEVEL,
            "-n", f"repeat-sales-{os.getpid()}@{socket.gethostname()}", "--without-gossip", "--without-mingle"]
    try:
        app.worker_main(argv)
    finally:
        stop.set()
    return 0
