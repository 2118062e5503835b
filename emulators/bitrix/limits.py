"""The portal's rate limits (faults and counters are the shared kit's, emulators.kit).

- Leaky bucket: +1 per HTTP request (a batch is one), drains `drain_per_second`; the request
  that would overflow `bucket_size` gets 503 QUERY_LIMIT_EXCEEDED before it runs.
  Doc: settings/performance/limits.md
- Operating time: each call is charged a small fixed `per_call` time to its method; the sum
  over 10 one-minute buckets is `time.operating` (cumulative). Once it reaches the limit, the
  next call to that method gets 429 OPERATION_TIME_LIMIT. Doc: settings/performance/limits.md,
  api-reference/data-types.md#time
- `time_scale` speeds the clock of both (2.0 = drains twice as fast, windows half as long) so a
  benchmark can run the same protocol in less wall time.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_SECONDS = 600.0
BUCKET_SECONDS = 60.0


class LeakyBucket:
    def __init__(self, size: int = 50, drain_per_second: float = 2.0, time_scale: float = 1.0) -> None:
        self.size = size
        self.drain = drain_per_second * time_scale
        self.level = 0.0
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def admit(self) -> bool:
        """Count one request; False when it would overflow the bucket (it is then not counted)."""
        with self.lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.stamp) * self.drain)
            self.stamp = now
            if self.level + 1 > self.size:
                return False
            self.level += 1
            return True

    def reset(self) -> None:
        with self.lock:
            self.level = 0.0
            self.stamp = time.monotonic()


class OperatingMeter:
    """Per-method execution time over a sliding 10-minute window of one-minute buckets."""

    def __init__(self, per_call: float = 0.001, limit: float | None = None, time_scale: float = 1.0) -> None:
        self.per_call = per_call
        self.limit = limit
        self.window = WINDOW_SECONDS / time_scale
        self.bucket = BUCKET_SECONDS / time_scale
        self.scale = time_scale
        self.buckets: dict[str, deque] = {}  # method -> deque([bucket_start, seconds])
        self.lock = threading.Lock()

    def _trim(self, method: str, now: float) -> deque:
        q = self.buckets.setdefault(method, deque())
        while q and q[0][0] + self.window <= now:
            q.popleft()
        return q

    def blocked(self, method: str) -> bool:
        if self.limit is None:
            return False
        with self.lock:
            q = self._trim(method, time.time())
            return sum(b[1] for b in q) >= self.limit

    def charge(self, method: str) -> tuple[float, int]:
        """Book one call; return (cumulative operating seconds, operating_reset_at)."""
        with self.lock:
            now = time.time()
            q = self._trim(method, now)
            if q and now < q[-1][0] + self.bucket:
                q[-1][1] += self.per_call
            else:
                q.append([now, self.per_call])
            return self._report(q)

    def current(self, method: str) -> tuple[float, int]:
        with self.lock:
            return self._report(self._trim(method, time.time()))

    def _report(self, q: deque) -> tuple[float, int]:
        total = sum(b[1] for b in q)
        reset_at = int(q[0][0] + self.window) if q else int(time.time() + self.window)
        return total, reset_at

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()
