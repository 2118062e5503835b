"""Request counters behind `GET /_emulator/stats` (design.md: `requests_total`, `requests` per call)."""

from __future__ import annotations

import threading


class RequestStats:
    """Requests per call (a Bitrix24 batch counts once, as "batch"); with `commands`, also the commands
    inside batches per method, so traffic tests can tell a batch of 50 from 50 requests."""

    def __init__(self, *, commands: bool = False) -> None:
        self.lock = threading.Lock()
        self.total = 0
        self.requests: dict[str, int] = {}
        self.commands: dict[str, int] | None = {} if commands else None

    def count_request(self, call: str) -> None:
        with self.lock:
            self.total += 1
            self.requests[call] = self.requests.get(call, 0) + 1

    def count_command(self, call: str) -> None:
        with self.lock:
            if self.commands is not None:
                self.commands[call] = self.commands.get(call, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            snap: dict = {"requests_total": self.total, "requests": dict(self.requests)}
            if self.commands is not None:
                snap["commands"] = dict(self.commands)
            return snap

    def reset(self) -> None:
        with self.lock:
            self.total = 0
            self.requests.clear()
            if self.commands is not None:
                self.commands.clear()
