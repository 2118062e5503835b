"""The account's requests-per-second gate and its bad answers (faults and latency are the shared kit's).

Doc: developers.kommo.com/docs/limitations - at most 7 requests per second; going over answers 429,
and a client that keeps going over gets its IP blocked (every request 403) until support lifts it.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from emulators.kit.faults import call_matches


class RateGate:
    """A sliding one-second window per client address; repeated violations block the address."""

    def __init__(self, *, enabled: bool, per_second: float, block_after: int = 20,
                 block_seconds: float = 60.0, clock=time.monotonic) -> None:
        self.enabled = enabled
        self.per_second = per_second
        self.block_after = block_after  # violations within VIOLATION_WINDOW that trigger the block
        self.block_seconds = block_seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.seen: dict[str, deque[float]] = {}
        self.violations: dict[str, deque[float]] = {}
        self.blocked_until: dict[str, float] = {}
        self.rejected = 0
        self.blocked = 0

    VIOLATION_WINDOW = 60.0

    def admit(self, client: str) -> str | None:
        """None (go on), "429" (over the limit) or "403" (blocked)."""
        if not self.enabled:
            return None
        now = self.clock()
        with self.lock:
            if self.blocked_until.get(client, 0) > now:
                self.blocked += 1
                return "403"
            window = self.seen.setdefault(client, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.per_second:
                self.rejected += 1
                marks = self.violations.setdefault(client, deque())
                marks.append(now)
                while marks and now - marks[0] > self.VIOLATION_WINDOW:
                    marks.popleft()
                if self.block_after and len(marks) >= self.block_after:
                    self.blocked_until[client] = now + self.block_seconds
                    marks.clear()
                return "429"
            window.append(now)
            return None

    def unblock(self) -> None:
        with self.lock:
            self.blocked_until.clear()
            self.violations.clear()


class BadAnswers:
    """Answers that are not the API's: a gateway's HTML page where JSON belongs, or a body cut short.

    Doc: amocrm-api-php#526 (a 429 that arrives as the gateway's HTML) and #434 (the nginx 403 page); a
    request cut mid-answer is a proxy's or a network's doing. Each strikes after the request ran.
    """

    KINDS = ("html", "truncated")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[list] = []  # [remaining, kind, call pattern or None, status]

    def add(self, n: int, kind: str, call: str | None, status: int = 200) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"bad answer kind {kind!r}: use one of {', '.join(self.KINDS)}")
        with self.lock:
            if n > 0:
                self.queue.append([int(n), kind, call or None, int(status)])

    def take(self, calls: list[str]) -> tuple[str, int] | None:
        with self.lock:
            for entry in self.queue:
                remaining, kind, pattern, status = entry
                if pattern is None or any(call_matches(pattern, c) for c in calls):
                    entry[0] -= 1
                    if entry[0] <= 0:
                        self.queue.remove(entry)
                    return kind, status
        return None

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()
