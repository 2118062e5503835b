"""Scripted and random faults and slow answers, the same grammar and meaning on every emulator.

A *call* names what a request does in its CRM's words: a Bitrix24 method (`crm.deal.list`) or an
amoCRM `"METHOD /path"` (also matched by its id template, `"PATCH /api/v4/leads/{id}"`). A pattern
matches a call when equal, or, without a method, by path alone (`"/api/v4/leads"`); case is ignored.
Where in the request a fault strikes (before it runs, or after for a drop) is the CRM server's choice.
"""

from __future__ import annotations

import random
import threading

DROP = "drop"  # the request runs, then the connection closes without an answer


def parse_fault_spec(spec: str | dict | None) -> dict[str, float]:
    """`"503:0.2,429:0.1,drop:0.05"` (or the same as a dict) -> {"503": 0.2, ...}: the share of requests
    answered with that status, or, for `drop`, run and then cut off. A bad spec raises ValueError."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = [part.partition(":")[::2] for part in str(spec).split(",") if part.strip()]
    out: dict[str, float] = {}
    for kind, share in items:
        kind = kind.strip().lower()
        if kind != DROP and not (kind.isdigit() and 400 <= int(kind) <= 599):
            raise ValueError(f"bad fault kind {kind!r}: use an HTTP status (503, 500, 429, ...) or 'drop'")
        try:
            value = float(share)
        except (TypeError, ValueError):
            raise ValueError(f"fault {kind!r} needs a share between 0 and 1, e.g. {kind}:0.1") from None
        if not 0 <= value <= 1:
            raise ValueError(f"fault share {value} is not between 0 and 1")
        out[kind] = value
    if sum(out.values()) > 1 + 1e-9:
        raise ValueError("fault shares add up to more than 1")
    return out


def call_matches(pattern: str, call: str) -> bool:
    p, c = pattern.strip().lower(), call.lower()
    return p == c or (" " not in p and c.endswith(" " + p))


class Faults:
    """What goes wrong next: queued failures/drops (`fail_next`, `drop_next`), then random shares; and
    latency, for every answer plus per call. Thread-safe; the same seed draws the same faults."""

    def __init__(self, spec: str | dict | None = None, seed: int = 0, latency_ms: float = 0) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.shares = parse_fault_spec(spec)
        self.queue: list[list] = []  # [remaining, kind (status text or "drop"), call pattern or None]
        self.latency_ms = max(0.0, float(latency_ms))
        self.call_latency_ms: dict[str, float] = {}

    def set_spec(self, spec: str | dict | None) -> None:
        shares = parse_fault_spec(spec)
        with self.lock:
            self.shares = shares

    def fail_next(self, n: int, status: int = 503, call: str | None = None) -> None:
        self._script(n, str(int(status)), call)

    def drop_next(self, n: int, call: str | None = None) -> None:
        self._script(n, DROP, call)

    def _script(self, n: int, kind: str, call: str | None) -> None:
        parse_fault_spec({kind: 0})  # the same kinds as a spec
        with self.lock:
            if n > 0:
                self.queue.append([int(n), kind, call or None])

    def set_latency(self, ms: float, call: str | None = None) -> None:
        with self.lock:
            if call:
                self.call_latency_ms[call.strip().lower()] = max(0.0, float(ms))
            else:
                self.latency_ms = max(0.0, float(ms))

    def clear(self) -> None:
        """No queued faults, no random shares, no latency."""
        with self.lock:
            self.queue.clear()
            self.shares = {}
            self.latency_ms = 0.0
            self.call_latency_ms.clear()

    def latency(self, calls: list[str]) -> float:
        """Seconds an answer takes at least: the latency of every answer plus that of each matching call."""
        with self.lock:
            ms = self.latency_ms + sum(v for p, v in self.call_latency_ms.items()
                                       if any(call_matches(p, c) for c in calls))
        return ms / 1000.0

    def take(self, calls: list[str], *, fail: bool = True, drop: bool = True, whole_request: bool = True) -> str | None:
        """The first queued fault due for a request doing `calls` (consumed): a status text or "drop".

        An entry without a call strikes whole requests only (`whole_request`); one with a call strikes
        a request or, in a Bitrix24 batch, a command doing it."""
        with self.lock:
            for entry in self.queue:
                remaining, kind, pattern = entry
                if not (drop if kind == DROP else fail):
                    continue
                if (pattern is None and whole_request) or (
                        pattern is not None and any(call_matches(pattern, c) for c in calls)):
                    entry[0] -= 1
                    if entry[0] <= 0:
                        self.queue.remove(entry)
                    return kind
        return None

    def draw(self) -> str | None:
        """One random draw per request: a status text, "drop", or None."""
        with self.lock:
            if not self.shares:
                return None
            roll, acc = self.rng.random(), 0.0
            for kind, share in self.shares.items():
                acc += share
                if roll < acc:
                    return kind
        return None
