"""One sync per tenant at a time across every worker on every machine: a Redis lock with a TTL that a
thread renews while the sync runs.

Why Redis and not the state's `sync` lock: that one names a host and a PID, and only a process on the
same host can tell the holder died; a worker killed on another machine would hold it for
LOCK_STALE_SECONDS. A Redis lock left by a killed worker frees itself one TTL later (seconds), and
every worker sees the same one. The state lock still guards each run inside (a CLI run against the
same state waits its turn).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from redis import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)


class TenantLock:
    """`with TenantLock(redis, tenant, ttl) as held:` - `held` is False when another worker has it.
    `deployment`: the state's id (two deployments on one Redis may both have a tenant `default`)."""

    def __init__(self, redis: Redis, tenant: str, ttl_seconds: float, deployment: str | None = None) -> None:
        self.lock = redis.lock(_key(tenant, deployment), timeout=ttl_seconds, blocking=False, thread_local=False)
        self.ttl = ttl_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> bool:
        if not self.lock.acquire(token=self.holder):
            return False
        self._renewer = threading.Thread(target=self._renew, name="rs-lock-renew", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.reacquire()
            except (LockError, RedisError) as exc:  # lost (Redis restarted): the run goes on under the state lock
                log.warning("tenant lock=%s not renewed: %s", self.lock.name, exc)

    def __exit__(self, *exc) -> None:
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        try:
            self.lock.release()
        except (LockError, RedisError):
            pass  # expired or gone with a Redis restart: nothing to release


def _key(tenant: str, deployment: str | None) -> str:
    return f"rs:lock:sync:{deployment}:{tenant}" if deployment else f"rs:lock:sync:{tenant}"


def holder(redis: Redis, tenant: str, deployment: str | None = None) -> str | None:
    """Who holds the tenant's lock now, `host:pid:nonce` (for /status and tests)."""
    value = redis.get(_key(tenant, deployment))
    return value.decode() if value else None
