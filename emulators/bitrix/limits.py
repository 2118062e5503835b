"""The portal's limits (faults and counters are the shared kit's, emulators.kit).

- Leaky bucket: +1 per HTTP request (a batch is one), drains `drain_per_second`; the request
  that would overflow `bucket_size` gets 503 QUERY_LIMIT_EXCEEDED before it runs.
  Doc: settings/performance/limits.md
- Operating time (`OperatingMeter`): each call books the seconds it kept the portal busy to its
  method, in one-minute buckets; the sum over the last 10 minutes is `time.operating`. The call that
  takes it past the limit (480 s on the cloud) completes; from then on that method answers 429
  OPERATION_TIME_LIMIT for 10 minutes; other methods go on. Doc: settings/performance/limits.md,
  api-reference/data-types.md#time
- The cost of a call (`CostModel`): `real` charges a list call with `start >= 0` for every row the
  portal counts for `total` plus the offset it skips, a keyset call (`start=-1`) for the rows it
  looks at (about one page), everything else a small fixed time; `off` charges the fixed time only.
  A request whose calls add up to more than 60 s is cut. Doc: settings/performance/huge-data.md,
  settings/performance/limits.md
- `time_scale` speeds the clocks (2.0 = the bucket drains twice as fast, windows and blocks last half
  as long) so a benchmark runs the same protocol in less wall time; charged seconds are not scaled.
  Nothing here sleeps: the cost is booked, not waited for.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

WINDOW_SECONDS = 600.0
BUCKET_SECONDS = 60.0
# Doc: settings/performance/limits.md - "сверх 480 секунд в рамках прошедших 10 минут"
OPERATING_LIMIT_SECONDS = 480.0
# Doc: settings/performance/huge-data.md - 2,387,743 leads counted in 49.9 s: ~21 us a row
ROW_SECONDS = 49.9 / 2_387_743
# Doc: settings/performance/limits.md - a cloud request is cut at 60 s
REQUEST_CUT_SECONDS = 60.0
COST_MODELS = ("real", "off")


@dataclass(slots=True)
class ListWork:
    """What one list call made the database do, for the cost model (limits.py)."""

    touched: int = 0  # rows counted for `total` and skipped by the offset; a keyset call, one page
    served: int = 0  # rows on the page


# Set by the dispatcher around one call; every QueryEngine.run adds to it.
LIST_WORK: ContextVar[ListWork | None] = ContextVar("list_work", default=None)


def book_list_work(touched: int, served: int) -> None:
    work = LIST_WORK.get()
    if work is not None:
        work.touched += touched
        work.served += served


class LeakyBucket:
    def __init__(self, size: int = 50, drain_per_second: float = 2.0, time_scale: float = 1.0) -> None:
        self.size = size
        self.drain = drain_per_second * time_scale
        self.level = 0.0
        self.stamp = time.monotonic()
        self.lock = threading.Lock()
        self.rejected = 0  # requests answered 503 QUERY_LIMIT_EXCEEDED (stats: `rate_limited`)

    def admit(self) -> bool:
        """Count one request; False when it would overflow the bucket (it is then not counted)."""
        with self.lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.stamp) * self.drain)
            self.stamp = now
            if self.level + 1 > self.size:
                self.rejected += 1
                return False
            self.level += 1
            return True

    def reset(self) -> None:
        with self.lock:
            self.level = 0.0
            self.stamp = time.monotonic()
            self.rejected = 0


class CostModel:
    """Seconds one call keeps the portal busy (its operating time). `extra` adds time to calls of a
    method (or all, under None): a portal under load, scripted by tests."""

    def __init__(self, mode: str = "real", per_call: float = 0.001) -> None:
        if mode not in COST_MODELS:
            raise ValueError(f"cost model {mode!r}: use one of {', '.join(COST_MODELS)}")
        self.mode = mode
        self.per_call = per_call
        self.extra: dict[str | None, float] = {}

    @property
    def real(self) -> bool:
        return self.mode == "real"

    def seconds(self, rows_touched: int = 0, method: str = "") -> float:
        """A fixed time per call, plus, with the real model, ~21 us for each row the database touched."""
        base = self.per_call + (rows_touched * ROW_SECONDS if self.real else 0.0)
        return base + self.extra.get(None, 0.0) + self.extra.get(method.lower(), 0.0)


class OperatingMeter:
    """Per-method operating time over a sliding 10-minute window of one-minute buckets.

    `limit` None means no limit. `peak` keeps, per method, the highest 10-minute sum ever booked
    (what a benchmark checks against the limit); `total` everything booked since the last reset.
    """

    def __init__(self, per_call: float = 0.001, limit: float | None = None, time_scale: float = 1.0) -> None:
        self.per_call = per_call
        self.limit = limit
        self.window = WINDOW_SECONDS / time_scale
        self.bucket = BUCKET_SECONDS / time_scale
        self.scale = time_scale
        self.buckets: dict[str, deque] = {}  # method -> deque([bucket_start, seconds])
        self.blocked_until: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.lock = threading.Lock()

    def _trim(self, method: str, now: float) -> deque:
        q = self.buckets.setdefault(method, deque())
        while q and q[0][0] + self.window <= now:
            q.popleft()
        return q

    def blocked(self, method: str) -> bool:
        """True while the method serves its 10-minute block (Doc: limits.md, "блокируется ... на 10 минут")."""
        if self.limit is None:
            return False
        with self.lock:
            now = time.time()
            until = self.blocked_until.get(method)
            if until is not None and now < until:
                return True
            self.blocked_until.pop(method, None)
            return False

    def charge(self, method: str, seconds: float | None = None) -> tuple[float, int]:
        """Book one call (`per_call` seconds unless told); return (operating seconds now, operating_reset_at)."""
        spent = self.per_call if seconds is None else seconds
        with self.lock:
            now = time.time()
            q = self._trim(method, now)
            if q and now < q[-1][0] + self.bucket:
                q[-1][1] += spent
            else:
                q.append([now, spent])
            operating, reset_at = self._report(q, now)
            self.peak[method] = max(self.peak.get(method, 0.0), operating)
            self.total[method] = self.total.get(method, 0.0) + spent
            if self.limit is not None and operating >= self.limit and method not in self.blocked_until:
                self.blocked_until[method] = now + self.window
            return operating, reset_at

    def current(self, method: str) -> tuple[float, int]:
        with self.lock:
            now = time.time()
            return self._report(self._trim(method, now), now)

    def _report(self, q: deque, now: float) -> tuple[float, int]:
        """The sum, and when part of it is freed: the oldest bucket leaves the window."""
        total = sum(b[1] for b in q)
        reset_at = math.ceil((q[0][0] if q else now) + self.window)  # whole seconds, not before it is freed
        return total, reset_at

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {m: {"peak": round(self.peak[m], 3), "total": round(self.total.get(m, 0.0), 3)}
                    for m in sorted(self.peak)}

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()
            self.blocked_until.clear()
            self.peak.clear()
            self.total.clear()
