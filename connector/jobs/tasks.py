"""The worker side: each task reads its job from the inbox by id, runs it, and marks it done there.

A sync takes the tenant's lock (tenant_lock.py) and answers every open sync request of the tenant at
once (a burst of events is one sync); a tenant whose sync runs elsewhere is asked again a moment
later. Jobs (an install, an uninstall, a deleted deal, an OAuth grant) run under the same lock; a
robot's answer runs at once, on its own queue, beside a sync - as on the in-process robots' lane.
A job is a CRM app's own method, named in the inbox and looked up in JOB_METHODS (never a pickled
closure): the same code `serve` runs without a queue.
"""

from __future__ import annotations

import logging
import time

from celery import Celery

from connector import clock, registry, tenants
from connector.errors import RepeatSalesError, StateLocked
from connector.jobs.broker import CRM_EVENT, JOBS, ROBOTS, TASKS, JobQueue, lock_seconds, redis_client
from connector.jobs.serving import job_payload, where
from connector.jobs.tenant_lock import TenantLock
from connector.webapp.runtime import Runtime

log = logging.getLogger(__name__)

JOB_METHODS = frozenset({"complete_install", "_forget", "_forget_purchase", "answer_robot", "complete_oauth"})
BUSY_RETRY_SECONDS = 1.0  # the tenant's sync runs on another worker: ask again this soon
BUSY_RETRIES = 3600


class JobHost:
    """What a CRM app's job method needs of the webhook app, in a worker: settings, runtime, installs,
    the public address the job was accepted at, and a way to queue follow-up work."""

    def __init__(self, settings, queue: JobQueue, tenant: str, where: dict, public_url: str | None = None) -> None:
        self.id, self.queue, self.crm = tenant, queue, where.get("tenant_crm") or settings.CRM
        self.base = settings
        self.settings = tenants.settings_for(settings, tenant, self.crm, where.get("base_url"))
        self.installs = tenants.registry(settings).for_tenant(tenant)
        self.public_url = (public_url or settings.APP_PUBLIC_URL or "").rstrip("/")
        self.apps: dict = {}
        self.refresh()

    def refresh(self) -> None:
        """A fresh runtime for each job: a playbook saved on the settings page since counts; the tenant's state
        made again if `tenants remove` dropped it since (the portal installs again)."""
        tenants.state_target(self.base, self.id)
        self.runtime = Runtime(self.settings, lambda: clock.today(self.settings.TIMEZONE), installs=self.installs)

    def app(self, crm: str):
        if crm not in self.apps:
            self.apps[crm] = registry.crm(crm).webapp_class()(self)
        return self.apps[crm]

    def request_sync(self, *, crm_event: bool = False) -> None:
        self.queue.request_sync(self.id, CRM_EVENT if crm_event else "job", where(self))

    def submit(self, job) -> None:  # a job's own follow-up (none today) goes through the queue too
        self.queue.put(self.id, job.name, JOBS, job_payload(self, job))

    def submit_robot(self, job) -> None:
        self.queue.put(self.id, job.name, ROBOTS, job_payload(self, job))


class Busy(Exception):
    """The tenant's lock is taken: the task is asked again later."""


class Runner:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.queue = JobQueue(settings)
        self.inbox = self.queue.inbox
        self.redis = redis_client(settings)
        self._hosts: dict[tuple, JobHost] = {}

    def host(self, tenant: str, where: dict, public_url: str | None = None) -> JobHost:
        """One host per tenant and address, its CRM apps built once (their pages warm a view when built)."""
        key = (tenant, where.get("tenant_crm"), where.get("base_url"), public_url)
        if key not in self._hosts:
            self._hosts[key] = JobHost(self.settings, self.queue, tenant, where, public_url)
        else:
            self._hosts[key].refresh()
        return self._hosts[key]

    def run(self, tenant: str, kind: str, entry_id: int, deployment: str | None = None) -> str:
        if deployment is not None and deployment != self.queue.deployment:
            # Never run, never marked: its own deployment's sweep sends it again to its own workers.
            log.error("worker of deployment %s refused job=%s id=%s tenant=%s of deployment %s: two deployments "
                      "share this Redis and this message reached the wrong one; it is dropped, its own sweep "
                      "queues it again", self.queue.deployment, kind, entry_id, tenant, deployment)
            return "refused"
        entry = self.inbox.get(entry_id)
        if entry is None or entry.done:
            return "done already"  # answered by a sync that ran for a later request, or a redelivery
        if kind == "sync":
            return self._locked(tenant, lambda: self._sync(tenant, entry.payload))
        if entry.lane == ROBOTS:
            return self._job(tenant, entry)
        return self._locked(tenant, lambda: self._job(tenant, entry))

    def _locked(self, tenant: str, work) -> str:
        with TenantLock(self.redis, tenant, lock_seconds(self.settings), self.queue.deployment) as held:
            if not held:
                raise Busy(tenant)
            return work()

    def _sync(self, tenant: str, where: dict) -> str:
        ids = self.inbox.open_syncs(tenant)  # every request so far; one arriving from now on gets a sync of its own
        if not ids:
            return "done already"
        for i in ids:
            self.inbox.started(i)
        # read once started: a request joining from now on gets a row of its own (Inbox.put_sync)
        quiet = all(r == CRM_EVENT for r in self.inbox.reasons(ids))  # only CRM events: maybe the app's own writes
        host = self.host(tenant, where)
        state = host.runtime.open_state()
        started = time.monotonic()
        try:
            report = host.runtime.sync(state, quiet_if_unchanged=quiet)
        except StateLocked:
            raise Busy(tenant) from None  # a CLI run holds the state: the requests stay open
        except RepeatSalesError as exc:  # recorded in the runs table; the next event or tick retries
            self.inbox.done(ids, error=str(exc))
            log.warning("worker tenant=%s sync=failed error=%s", tenant, exc)
            return "failed"
        finally:
            state.close()
        self.inbox.done(ids)
        if report is None:
            log.info("worker tenant=%s sync=skipped requests=%d: no change but the app's own writes", tenant, len(ids))
            return "no change"
        log.info("worker tenant=%s sync=done requests=%d written=%s seconds=%.2f", tenant, len(ids),
                 report.stats.get("written"), time.monotonic() - started)
        return "done"

    def _job(self, tenant: str, entry) -> str:
        payload = entry.payload
        if payload.get("method") not in JOB_METHODS:
            self.inbox.done([entry.id], error="unknown job")
            log.error("worker job=%s id=%s: unknown method %r", entry.kind, entry.id, payload.get("method"))
            return "failed"
        self.inbox.started(entry.id)
        host = self.host(tenant, payload, payload.get("public_url"))
        state = host.runtime.open_state()
        try:
            getattr(host.app(payload["crm"]), payload["method"])(*payload.get("args", []), state)
        except RepeatSalesError as exc:
            self.inbox.done([entry.id], error=str(exc))
            log.warning("worker job=%s failed error=%s", entry.kind, exc)
            return "failed"
        except Exception:
            self.inbox.done([entry.id], error="internal error")
            log.exception("worker job=%s crashed", entry.kind)
            return "failed"
        finally:
            state.close()
        if payload.get("sync"):  # kept before this job is done: never lost in between
            self.queue.request_sync(tenant, entry.kind, where(host))
        self.inbox.done([entry.id])
        log.info("worker job=%s id=%s done", entry.kind, entry.id)
        return "done"


def register(app: Celery, settings) -> Runner:
    """The named tasks on `app`; each takes JSON only: (tenant, kind, inbox id, deployment id)."""
    runner = Runner(settings)

    def task(self, tenant: str, kind: str, entry_id: int, deployment: str | None = None) -> str:
        try:
            result = runner.run(tenant, kind, entry_id, deployment)
        except Busy:
            raise self.retry(countdown=BUSY_RETRY_SECONDS, max_retries=BUSY_RETRIES) from None
        except Exception:  # the failed message is acknowledged and gone: without its mark the sweep sends it again
            runner.queue.forget(entry_id)
            raise
        runner.queue.forget(entry_id, deployment if result == "refused" else None)
        return result

    for name in set(TASKS.values()):
        app.task(name=name, bind=True, acks_late=True)(task)

    def sweep() -> int:
        return runner.queue.sweep()

    app.task(name="repeat_sales.sweep")(sweep)
    return runner
