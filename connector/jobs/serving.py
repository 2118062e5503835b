"""`serve` with QUEUE_URL: a route's job becomes an inbox row plus a named task, never a closure.

A route builds its job as it always did (connector/webapp/worker.py `Job`, its `run` a `partial` of
the CRM app's own method with JSON-able arguments); here that becomes {crm, method, args, sync,
public_url}, kept in the inbox before the route answers 200.
"""

from __future__ import annotations

from functools import partial

from connector.jobs.broker import CRM_EVENT, JOBS, ROBOTS, JobQueue


def where(host) -> dict:
    """How a worker rebuilds the tenant's host (connector.tenants.settings_for): its CRM, an amoCRM account's
    address."""
    crm = getattr(host, "crm", None) or host.settings.CRM
    return {"tenant_crm": crm, "base_url": host.settings.AMOCRM_BASE_URL if crm == "amocrm" else None}


def job_payload(host, job) -> dict:
    run = job.run
    if not isinstance(run, partial) or not hasattr(run.func, "__self__"):
        raise TypeError(f"job {job.name}: a queued job is a CRM app's method with JSON arguments")
    crm = next((name for name, app in host.apps.items() if app is run.func.__self__), None)
    return {"crm": crm, "method": run.func.__name__, "args": list(run.args), "sync": job.sync,
            "public_url": host.public_url, **where(host)}


class QueuedWork:
    """A tenant's three hooks the routes call (`submit`, `submit_robot`, `request_sync`), on the queue."""

    def __init__(self, host, settings) -> None:
        self.host = host  # a TenantHost: its `id` is the tenant every task names
        self.queue = JobQueue(settings)

    def submit(self, job) -> None:
        self.queue.put(self.host.id, job.name, JOBS, job_payload(self.host, job))

    def submit_robot(self, job) -> None:
        self.queue.put(self.host.id, job.name, ROBOTS, job_payload(self.host, job))

    def request_sync(self, *, crm_event: bool = False) -> None:
        """`crm_event`: a record changed in the CRM (maybe by the app's own write): its sync may end early
        (connector.quiet); any other reason joining the same waiting request makes it a full sync."""
        self.queue.request_sync(self.host.id, CRM_EVENT if crm_event else "event", where(self.host))

    def snapshot(self) -> dict:
        return {"queue": "redis", **self.queue.inbox.counts()}
