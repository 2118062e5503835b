"""One schedule for all tenants, through the queue (`repeat-sales worker --beat`).

Each tenant has its interval (SCHEDULE_EVERY_MINUTES) and quiet hours (SCHEDULE_QUIET_HOURS, on
TIMEZONE's clock: no scheduled run starts then; events still sync). A tick queues a sync request
for every tenant that is due; the next due time is kept in Redis and moved on by one atomic call, so
two schedulers started by mistake still queue one run per interval, and the tenant lock (tenant_lock.py)
keeps a run that outlasts its interval from overlapping the next: the next waits, then runs.
Beat's fixed crontab cannot read intervals and quiet hours that each tenant keeps for itself, so
this is Celery beat's job done by a loop of our own that only queues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0
# 1 and the next due time stored when the tenant is due at ARGV[1] (one caller wins), else 0
DUE = """
local due = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < due then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class TenantSchedule:
    tenant: str
    every_minutes: float
    quiet: tuple[int, int] | None = None  # (from hour, to hour), may wrap midnight
    timezone: str | None = None
    crm: str | None = None  # the tenant's CRM, for the worker that runs its sync


def in_quiet_hours(hour: int, quiet: tuple[int, int] | None) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    return start <= hour < end if start < end else (hour >= start or hour < end)


def tenant_schedules(settings) -> list[TenantSchedule]:
    """Every tenant's schedule (the `.env`'s portal is the tenant `default`), each from its own settings."""
    from connector import tenants

    own_portal = settings.BITRIX_WEBHOOK_URL if settings.CRM == "bitrix" else settings.AMOCRM_BASE_URL
    found = {tenants.DEFAULT: settings.CRM} if own_portal else {}  # the `.env`'s own portal, if it names one
    for row in tenants.registry(settings).tenants():
        found.setdefault(row["tenant"], row["crm"])
    plans = []
    for tenant, crm in found.items():
        own = tenants.settings_for(settings, tenant, crm)
        plans.append(TenantSchedule(tenant, own.SCHEDULE_EVERY_MINUTES, own.quiet_hours(), own.TIMEZONE, crm))
    return plans


class Scheduler:
    def __init__(self, redis: Redis, request_sync: Callable[[str, str, dict], object],
                 schedules: Callable[[], list[TenantSchedule]], *, now: Callable[[], float] = time.time,
                 deployment: str | None = None) -> None:
        self.redis, self.request_sync, self.schedules, self.now = redis, request_sync, schedules, now
        self.prefix = f"rs:due:{deployment}:" if deployment else "rs:due:"  # a tenant `default` in each deployment
        self._due = redis.register_script(DUE)

    def tick(self) -> dict[str, str]:
        """Queue every due tenant's sync: {tenant: "queued" | "quiet" | "not due" | "failed"}."""
        outcome: dict[str, str] = {}
        for plan in self.schedules():
            now = self.now()
            local = datetime.fromtimestamp(now, ZoneInfo(plan.timezone) if plan.timezone else None)
            if in_quiet_hours(local.hour, plan.quiet):
                outcome[plan.tenant] = "quiet"
                continue
            interval = plan.every_minutes * 60
            try:
                due = self._due(keys=[self.prefix + plan.tenant], args=[now, now + interval, int(2 * interval) + 60])
            except RedisError as exc:
                log.warning("schedule tenant=%s not queued: %s", plan.tenant, exc)
                outcome[plan.tenant] = "failed"
                continue
            if not due:
                outcome[plan.tenant] = "not due"
                continue
            self.request_sync(plan.tenant, "schedule", {"tenant_crm": plan.crm})
            outcome[plan.tenant] = "queued"
            log.info("schedule tenant=%s sync=queued every_minutes=%g", plan.tenant, plan.every_minutes)
        return outcome
