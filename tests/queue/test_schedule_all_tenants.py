"""One schedule for all tenants: each tenant's interval and quiet hours, one queued run per interval even
with two schedulers, and a sync that outlasts its interval never overlapped by the next."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from connector.errors import SettingsError
from connector.jobs.scheduler import Scheduler, TenantSchedule, in_quiet_hours
from connector.jobs.tenant_lock import TenantLock
from connector.settings import load_settings

MOSCOW = "Europe/Moscow"


def at(hour: int, minute: int = 0) -> float:
    return datetime(2026, 6, 15, hour, minute, tzinfo=ZoneInfo(MOSCOW)).timestamp()


def test_quiet_hours_wrap_midnight():
    assert [h for h in range(24) if in_quiet_hours(h, (22, 7))] == [0, 1, 2, 3, 4, 5, 6, 22, 23]
    assert [h for h in range(24) if in_quiet_hours(h, (13, 15))] == [13, 14]
    assert not in_quiet_hours(3, None)


def test_quiet_hours_setting_names_the_fix():
    assert load_settings(SCHEDULE_QUIET_HOURS="22-07").quiet_hours() == (22, 7)
    for bad in ("22", "25-07", "7-7", "late-early"):
        with pytest.raises(SettingsError, match="SCHEDULE_QUIET_HOURS"):
            load_settings(SCHEDULE_QUIET_HOURS=bad)


def test_queue_url_must_be_redis():
    with pytest.raises(SettingsError, match="QUEUE_URL"):
        load_settings(QUEUE_URL="amqp://127.0.0.1:5672")


def test_each_tenant_runs_at_its_own_interval_outside_its_quiet_hours(redis_server):
    queued: list[tuple[str, str]] = []
    now = [at(12)]
    plans = [TenantSchedule("bitrix:a.example", 60, (22, 7), MOSCOW),
             TenantSchedule("bitrix:b.example", 15, None, MOSCOW),
             TenantSchedule("amocrm:c.example", 60, (11, 14), MOSCOW)]
    first = Scheduler(redis_server.client(), lambda t, why, where: queued.append((t, why)), lambda: plans,
                      now=lambda: now[0])
    second = Scheduler(redis_server.client(), lambda t, why, where: queued.append((t, why)), lambda: plans,
                       now=lambda: now[0])  # started by mistake: still one run per interval
    assert first.tick() == {"bitrix:a.example": "queued", "bitrix:b.example": "queued", "amocrm:c.example": "quiet"}
    assert set(second.tick().values()) == {"not due", "quiet"}
    assert queued == [("bitrix:a.example", "schedule"), ("bitrix:b.example", "schedule")]
    now[0] = at(12, 16)
    assert first.tick() == {"bitrix:a.example": "not due", "bitrix:b.example": "queued", "amocrm:c.example": "quiet"}
    now[0] = at(14, 1)
    assert second.tick() == {"bitrix:a.example": "queued", "bitrix:b.example": "queued",
                             "amocrm:c.example": "queued"}
    now[0] = at(23, 30)
    assert first.tick()["bitrix:a.example"] == "quiet"
    assert [t for t, _ in queued].count("bitrix:b.example") == 4  # 12:00, 12:16, 14:01, 23:30


def test_one_sync_per_tenant_at_a_time_across_workers(redis_server):
    redis = redis_server.client()
    with TenantLock(redis, "bitrix:a.example", 2) as held:
        assert held
        with TenantLock(redis, "bitrix:a.example", 2) as again:
            assert not again  # the next run waits for this one
        with TenantLock(redis, "bitrix:b.example", 2) as other:
            assert other  # another tenant runs beside it
        time.sleep(2.5)  # longer than the TTL: renewed while the run goes on
        with TenantLock(redis, "bitrix:a.example", 2) as late:
            assert not late
    with TenantLock(redis, "bitrix:a.example", 2) as after:
        assert after
