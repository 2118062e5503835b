"""`serve` with QUEUE_URL: a route's job becomes an inbox row plus a named task, never a closure.

A route builds its job as it always did (connector/webapp/worker.py `Job`, its `run` a `partial` of
the CRM app's own method with JSON-able arguments); here that becomes {crm, method, args, sync,
public_url}, kept in the inbox before the route answers 200.
"""

from __future__ import annotations

from functools import partial

from connector.errors import RepeatSalesError
from connector.jobs.broker import JOBS, ROBOTS, JobQueue


def job_payload(host, job) -> dict:
    run = job.run
    if not isinstance(run, partial) or not hasattr(run.func, "__self__"):
        raise TypeError(f"job {job.name}: a queued job is a CRM app's method with JSON arguments")
    crm = next((name for name, app in host.apps.items() if app is run.func.__self__), None)
    return {"crm": crm, "method": run.func.__name__, "args": list(run.args), "sync": job.sync,
            "public_url": host.public_url}


def tenant_of(runtime) -> str:
    """The tenant a request belongs to: the state's account of the configured CRM (until tenants have ids
    of their own); `default` before the CRM is installed."""
    try:
        return runtime.account()
    except (RepeatSalesError, ValueError):
        return "default"


class QueuedWork:
    """The three hooks the routes call (`submit`, `submit_robot`, `request_sync`), on the queue."""

    def __init__(self, host, settings) -> None:
        self.host = host
        self.queue = JobQueue(settings)

    def submit(self, job) -> None:
        self.queue.put(tenant_of(self.host.runtime), job.name, JOBS, job_payload(self.host, job))

    def submit_robot(self, job) -> None:
        self.queue.put(tenant_of(self.host.runtime), job.name, ROBOTS, job_payload(self.host, job))

    def request_sync(self) -> None:
        self.queue.request_sync(tenant_of(self.host.runtime))

    def snapshot(self) -> dict:
        return {"queue": "redis", **self.queue.inbox.counts()}
