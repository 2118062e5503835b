"""The account's requests-per-second gate (faults and latency are the shared kit's, emulators.kit).

Doc: developers.kommo.com/docs/limitations - at most 7 requests per second; going over answers 429,
and a client that keeps going over gets its IP blocked (every request 403) until support lifts it.
"""

from __future__ import annotations

import threading
import time
from collections import deque


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
