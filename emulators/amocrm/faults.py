"""Scripted and random faults, per-path latency, and the account's requests-per-second gate.

Doc: developers.kommo.com/docs/limitations - at most 7 requests per second; going over answers 429,
and a client that keeps going over gets its IP blocked (every request 403) until support lifts it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

FAULT_KINDS = {"429", "500", "502", "503", "504", "401", "400", "drop"}


@dataclass
class Fault:
    kind: str  # an HTTP status as text, or "drop" (applied, then the connection is cut)
    path: str | None = None  # "/api/v4/tasks", a template "/api/v4/leads/{id}", or "POST /api/v4/tasks"

    def matches(self, method: str, path: str, template: str) -> bool:
        if self.path is None:
            return True
        want_method, _, want_path = self.path.rpartition(" ")
        if want_method and want_method.upper() != method:
            return False
        return want_path in (path, template)


def parse_spec(spec: str | dict | None) -> dict[str, float]:
    """`503:0.2,429:0.1,drop:0.05` (or a dict) -> {"503": 0.2, ...}; a bad spec raises ValueError."""
    if not spec:
        return {}
    items = spec.items() if isinstance(spec, dict) else (part.split(":", 1) for part in str(spec).split(","))
    out: dict[str, float] = {}
    for kind, share in items:
        kind = str(kind).strip().lower()
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; use one of {sorted(FAULT_KINDS)}")
        value = float(share)
        if not 0 <= value <= 1:
            raise ValueError(f"fault share must be within 0..1, got {value}")
        out[kind] = value
    if sum(out.values()) > 1:
        raise ValueError("fault shares add up to more than 1")
    return out


class FaultPlan:
    """What goes wrong with the next requests: scripted (fail_next/drop_next) first, then random shares."""

    def __init__(self, spec: str | dict | None = None, *, seed: int = 0, latency_ms: int = 0) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.shares = parse_spec(spec)
        self.queue: deque[Fault] = deque()
        self.latency: dict[str | None, float] = {None: latency_ms / 1000}

    def set_spec(self, spec: str | dict | None) -> None:
        shares = parse_spec(spec)
        with self.lock:
            self.shares = shares

    def script(self, n: int, kind: str, path: str | None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.queue.extend(Fault(kind, path) for _ in range(n))

    def set_latency(self, ms: float, path: str | None = None) -> None:
        with self.lock:
            self.latency[path] = ms / 1000

    def delay(self, method: str, path: str, template: str) -> float:
        with self.lock:
            for key, seconds in self.latency.items():
                if key is not None and Fault("x", key).matches(method, path, template):
                    return seconds
            return self.latency.get(None, 0.0)

    def next_fault(self, method: str, path: str, template: str) -> str | None:
        with self.lock:
            for i, fault in enumerate(self.queue):
                if fault.matches(method, path, template):
                    del self.queue[i]
                    return fault.kind
            if self.shares:
                roll, acc = self.rng.random(), 0.0
                for kind, share in self.shares.items():
                    acc += share
                    if roll < acc:
                        return kind
        return None

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()
            self.shares = {}
            self.latency = {None: 0.0}


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
