"""Living within the portal's operating-time budget: each method may keep the portal busy 480 s in
any 10 minutes; past that it answers 429 OPERATION_TIME_LIMIT for 10 minutes.

Doc: settings/performance/limits.md - every answer's `time` carries `operating` (this method's seconds
in the last 10 minutes) and `operating_reset_at` (when part of it is freed); inside a `batch` each
command's `result_time` carries its own. We slow down before the limit: a method at three quarters
of it waits for its `operating_reset_at`; a method the portal refused waits out its block. A wait
longer than `max_wait` is not sat through: the caller ends the run with its position saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from connector.errors import CrmRateLimited

log = logging.getLogger(__name__)

OPERATING_LIMIT_SECONDS = 480.0  # Doc: settings/performance/limits.md - 480 s per method in 10 minutes
WINDOW_SECONDS = 600.0  # ... summed over the last 10 minutes; a refused method stays blocked 10 minutes
SLOW_DOWN_SHARE = 0.75  # past this share of the limit, wait for the reset: a batch adds at most 60 s
MAX_WAIT_SECONDS = 60.0  # a longer wait ends the run (its position saved) instead of holding a worker


class OperatingBudget:
    """What the portal said about each method's operating time, and how long to wait before calling it.

    `window_seconds` is the portal's 10 minutes (an emulator with a time scale has shorter ones);
    `clock` and `sleep` are arguments so that tests never wait on a real clock.
    """

    def __init__(self, *, limit_seconds: float = OPERATING_LIMIT_SECONDS, window_seconds: float = WINDOW_SECONDS,
                 max_wait_seconds: float = MAX_WAIT_SECONDS, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit_seconds
        self.window = window_seconds
        self.max_wait = max_wait_seconds
        self.clock, self.sleep = clock, sleep
        self.used: dict[str, tuple[float, float]] = {}  # method -> (operating, operating_reset_at)
        self.blocked_until: dict[str, float] = {}
        self.peak: dict[str, float] = {}  # the highest `operating` each method reported
        self.waited = 0.0

    def see(self, method: str, block: object) -> None:
        """Take note of one answer's `time` block (no `operating` in it: nothing to learn)."""
        if not isinstance(block, Mapping) or "operating" not in block:
            return
        try:
            operating = float(block["operating"])
            reset_at = float(block.get("operating_reset_at") or 0)
        except (TypeError, ValueError):
            return
        self.used[method] = (operating, reset_at)
        self.peak[method] = max(self.peak.get(method, 0.0), operating)

    def refused(self, method: str) -> None:
        """The portal answered OPERATION_TIME_LIMIT for this method: it is blocked for its window."""
        now = self.clock()
        if self.blocked_until.get(method, 0.0) <= now:
            self.blocked_until[method] = now + self.window
            log.warning("bitrix operating_time_limit method=%s blocked_seconds=%.0f", method, self.window)

    def wait_for(self, methods: Iterable[str]) -> float:
        """Seconds to wait before these methods may be called (0: go on)."""
        now = self.clock()
        wait = 0.0
        for method in set(methods):
            until = self.blocked_until.get(method, 0.0)
            if until > now:
                wait = max(wait, until - now)
                continue
            operating, reset_at = self.used.get(method, (0.0, 0.0))
            if operating >= SLOW_DOWN_SHARE * self.limit and reset_at > now:
                wait = max(wait, reset_at - now)
        return wait

    def pace(self, methods: Iterable[str]) -> None:
        """Wait while these methods are near their limit or blocked; a wait past `max_wait` raises
        CrmRateLimited (nothing was sent) with `retry_after`."""
        methods = list(methods)
        while (wait := self.wait_for(methods)) > 0:
            busy = sorted(m for m in set(methods) if self.wait_for([m]) > 0)
            if wait > self.max_wait:
                raise CrmRateLimited(
                    f"the portal's operating-time limit for {', '.join(busy)} is spent or nearly so; "
                    f"it frees in {wait:.0f} s", crm="bitrix", method=busy[0] if busy else "",
                    crm_code="OPERATION_TIME_LIMIT", retry_after=wait,
                    hint="run again later; nothing is lost")
            log.info("bitrix operating_time_wait methods=%s seconds=%.1f", ",".join(busy), wait)
            self.sleep(wait)
            self.waited += wait
            for method in busy:  # waited out: the portal's next answer says where it stands
                self.blocked_until.pop(method, None)
                if method in self.used:
                    self.used[method] = (self.used[method][0], 0.0)
