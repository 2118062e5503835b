"""Rate limits, scripted faults and request counters.

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

import random
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


def parse_fault_spec(spec: str | None) -> list[tuple[str, float]]:
    """`"503:0.2,429:0.1,500:0.05,drop:0.05"` -> [("503", 0.2), ...]; shares of requests."""
    out = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        kind, _, share = part.partition(":")
        kind = kind.strip().lower()
        if kind != "drop" and not kind.isdigit():
            raise ValueError(f"bad fault kind {kind!r}: use an HTTP status (503, 500, 429, ...) or 'drop'")
        value = float(share)
        if not 0 <= value <= 1:
            raise ValueError(f"fault share {value} is not between 0 and 1")
        out.append((kind, value))
    if sum(s for _, s in out) > 1 + 1e-9:
        raise ValueError("fault shares add up to more than 1")
    return out


class Faults:
    """Scripted failures: random shares per request, and queues of the next N failures/drops."""

    def __init__(self, spec: str | None = None, seed: int = 0) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.shares = parse_fault_spec(spec)
        self.fail_queue: list[list] = []  # [remaining, status, method or None]
        self.drop_queue: list[list] = []  # [remaining, method or None]
        self.latency_ms = 0
        self.method_latency: dict[str, int] = {}

    def set_spec(self, spec: str | None) -> None:
        shares = parse_fault_spec(spec)
        with self.lock:
            self.shares = shares

    def fail_next(self, n: int, status: int = 503, method: str | None = None) -> None:
        with self.lock:
            if n > 0:
                self.fail_queue.append([n, int(status), method.lower() if method else None])

    def drop_next(self, n: int, method: str | None = None) -> None:
        with self.lock:
            if n > 0:
                self.drop_queue.append([n, method.lower() if method else None])

    def set_latency(self, ms: int, method: str | None = None) -> None:
        with self.lock:
            if method:
                self.method_latency[method.lower()] = max(0, int(ms))
            else:
                self.latency_ms = max(0, int(ms))

    def latency(self, methods: list[str]) -> float:
        with self.lock:
            ms = self.latency_ms + sum(self.method_latency.get(m, 0) for m in dict.fromkeys(methods))
        return ms / 1000.0

    def take_fail(self, method: str, whole_request: bool) -> int | None:
        """The status of a queued failure for this call, if one is due (and consume it).

        Entries without a method hit whole HTTP requests only; entries with one hit requests or
        batch commands of that method.
        """
        with self.lock:
            for entry in self.fail_queue:
                target = entry[2]
                if (target is None and whole_request) or target == method:
                    entry[0] -= 1
                    if entry[0] <= 0:
                        self.fail_queue.remove(entry)
                    return entry[1]
        return None

    def take_drop(self, methods: list[str]) -> bool:
        """Whether this request is dropped after it ran: a queued drop for any of `methods`
        (the request's method, or a batch's command methods) or for any request."""
        with self.lock:
            for entry in self.drop_queue:
                if entry[1] is None or entry[1] in methods:
                    entry[0] -= 1
                    if entry[0] <= 0:
                        self.drop_queue.remove(entry)
                    return True
        return False

    def draw(self) -> str | None:
        """One random draw per request: a status string, "drop", or None."""
        with self.lock:
            if not self.shares:
                return None
            r = self.rng.random()
            acc = 0.0
            for kind, share in self.shares:
                acc += share
                if r < acc:
                    return kind
        return None


class Stats:
    """Requests per REST method (a batch counts once as "batch"), and batch commands per method."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.requests: dict[str, int] = {}
        self.commands: dict[str, int] = {}

    def count_request(self, method: str) -> None:
        with self.lock:
            self.total += 1
            self.requests[method] = self.requests.get(method, 0) + 1

    def count_command(self, method: str) -> None:
        with self.lock:
            self.commands[method] = self.commands.get(method, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests_total": self.total, "requests": dict(self.requests), "commands": dict(self.commands)}

    def reset(self) -> None:
        with self.lock:
            self.total = 0
            self.requests.clear()
            self.commands.clear()
