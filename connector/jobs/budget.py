"""Each portal's request budget, shared by every worker: a bucket in Redis shaped like the CRM's own.

Bitrix24 counts requests in a leaky bucket - 50 in a burst, draining 2 a second on standard plans
(Doc: settings/performance/limits.md; BITRIX_REQUEST_POOL / BITRIX_REQUESTS_PER_SECOND); a request
that overflows it is answered 503 QUERY_LIMIT_EXCEEDED. amoCRM allows 7 requests in any second
(AMOCRM_REQUESTS_PER_SECOND). Each client's own limiter counts only its process; with ten workers on
one portal they would send ten times the budget. With QUEUE_URL set every client takes its turn from
one bucket per portal in Redis (one Lua call, Redis' own clock). Each adapter names its shape
(connector/bitrix, connector/amocrm `shared_budget`), a few requests under the portal's size so
that network jitter never tips it over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

AMOCRM_WINDOW_SECONDS = 1.1  # the adapter's own margin (WINDOW_MARGIN_SECONDS) on the one-second window
KEY_TTL_MS = 120_000

# Returns 0 when the request may go now, else the milliseconds to wait before asking again.
LEAKY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size, drain = tonumber(ARGV[1]), tonumber(ARGV[2]) / 1000
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or tostring(now))
level = math.max(0, level - (now - stamp) * drain)
if level + 1 > size then
  return math.ceil((level + 1 - size) / drain)
end
redis.call('HSET', KEYS[1], 'level', tostring(level + 1), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
"""
WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= cap then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(first[2]) + window - now + 1)
end
redis.call('ZADD', KEYS[1], now, tostring(now) .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
"""


class SharedBudget:
    """`acquire()` blocks until this portal's shared bucket lets one more request go (the limiter interface
    of the amoCRM client, and the gate of the Bitrix24 client)."""

    def __init__(self, redis: Redis, key: str, *, shape: str, size: int, per_second: float,
                 sleep: Callable[[float], None] = time.sleep, fallback=None) -> None:
        self.redis, self.key, self.sleep = redis, key, sleep
        self.fallback = fallback  # the client's own limiter, for while Redis is away
        if shape == "leaky":
            self.script, self.args = redis.register_script(LEAKY), [size, per_second, KEY_TTL_MS]
        else:
            self.script, self.args = redis.register_script(WINDOW), [size, int(AMOCRM_WINDOW_SECONDS * 1000), KEY_TTL_MS]
        self.waited = 0.0
        self._n = 0

    def acquire(self) -> None:
        while True:
            self._n += 1
            try:
                wait_ms = int(self.script(keys=[self.key], args=[*self.args, f"{id(self)}:{self._n}"]))
            except RedisError as exc:  # Redis away: fall back on the client's own limiter, never stop the run
                log.warning("shared budget=%s unavailable (%s): this process paces alone", self.key, exc)
                if self.fallback is not None:
                    self.fallback.acquire()
                return
            if wait_ms <= 0:
                return
            self.waited += wait_ms / 1000
            self.sleep(wait_ms / 1000)


def shared(settings, key: str, *, shape: str, size: int, per_second: float = 0, fallback=None) -> SharedBudget | None:
    """The bucket `key` (a CRM and its portal) every worker shares when QUEUE_URL is set; None otherwise.
    `shape`: "leaky" (`size` in a burst, draining `per_second`) or "window" (`size` in any second)."""
    if settings.QUEUE_URL is None:
        return None
    from connector.jobs.broker import redis_client

    return SharedBudget(redis_client(settings), f"rs:budget:{key}", shape=shape, size=max(1, size),
                        per_second=per_second, fallback=fallback)
