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
SLOW_DOWN_SHARE = 0.75  # past this share, with no call cost known yet, wait for the reset (a request adds <= 60 s)
SAFE_SHARE = 0.9  # commands are sent while their expected cost keeps the method under this share
RESET_SLACK_SECONDS = 1.0  # `operating_reset_at` is whole seconds: a second more, and that part is surely freed
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
        self.call_cost: dict[str, float] = {}  # method -> the most one call was seen to add
        self.probe: set[str] = set()  # waited for a reset: one call shows where the method stands now
        self.blocked_until: dict[str, float] = {}
        self.peak: dict[str, float] = {}  # the highest `operating` each method reported
        self.waited = 0.0

    def see(self, method: str, block: object, *, after: float | None = None) -> None:
        """Take note of one answer's `time` block (no `operating` in it: nothing to learn).

        `after`: this method's `operating` one command earlier in the same batch, so the step is one
        call's cost.
        """
        if not isinstance(block, Mapping) or "operating" not in block:
            return
        try:
            operating = float(block["operating"])
            reset_at = float(block.get("operating_reset_at") or 0)
        except (TypeError, ValueError):
            return
        if after is not None and operating > after:
            self.call_cost[method] = max(self.call_cost.get(method, 0.0), operating - after)
        self.used[method] = (operating, reset_at)
        self.peak[method] = max(self.peak.get(method, 0.0), operating)
        self.probe.discard(method)

    def allowance(self, method: str) -> int:
        """How many calls of this method may go in the next request (a big number: no limit in sight)."""
        if method in self.probe:
            return 1
        if method not in self.used:
            return 10**6
        operating, reset_at = self.used[method]
        cost = self.call_cost.get(method)
        if not cost:
            room = 10**6 if operating < SLOW_DOWN_SHARE * self.limit else 0
        else:
            room = max(0, int((SAFE_SHARE * self.limit - operating) // cost))
        if room < 1 and reset_at + RESET_SLACK_SECONDS <= self.clock():  # part freed since: one call tells how much
            return 1
        return room

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
            reset_at = self.used.get(method, (0.0, 0.0))[1]
            if self.allowance(method) < 1 and reset_at + RESET_SLACK_SECONDS > now:
                wait = max(wait, reset_at + RESET_SLACK_SECONDS - now)
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
                    self.probe.add(method)
