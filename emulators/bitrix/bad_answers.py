"""Answers that are not the portal's JSON: a page for people instead (a blocked or suspended portal,
fast-bitrix24 issue #216), or JSON that ends mid-way (PHP stopped while writing it: the body is
complete as HTTP goes, the JSON is not). Scripted by tests through `BitrixEmulator.answer_html` /
`truncate_next`."""

from __future__ import annotations

import threading

from emulators.kit.faults import call_matches


class BadAnswers:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.html: list | None = None  # [remaining or None for "until cleared", status, call pattern or None]
        self.truncations: list[list] = []  # [remaining, call pattern or None]

    def answer_html(self, n: int | None = None, status: int = 200, call: str | None = None) -> None:
        """The next n requests (every one, with None; those doing `call`, when given) get an HTML page
        with `status`; none of them runs."""
        with self.lock:
            self.html = [n, int(status), call or None] if n is None or n > 0 else None

    def truncate_next(self, n: int, call: str | None = None) -> None:
        """The next n requests (doing `call`, when given) run, then their JSON ends half-way."""
        with self.lock:
            if n > 0:
                self.truncations.append([int(n), call or None])

    def take_html(self, calls: list[str]) -> int | None:
        """The status of the HTML page due for a request doing `calls`, or None."""
        with self.lock:
            if self.html is None:
                return None
            remaining, status, pattern = self.html
            if pattern is not None and not any(call_matches(pattern, c) for c in calls):
                return None
            if remaining is not None:
                remaining -= 1
                self.html = [remaining, status, pattern] if remaining > 0 else None
            return status

    def take_truncation(self, calls: list[str]) -> bool:
        with self.lock:
            for entry in self.truncations:
                if entry[1] is None or any(call_matches(entry[1], c) for c in calls):
                    entry[0] -= 1
                    if entry[0] <= 0:
                        self.truncations.remove(entry)
                    return True
        return False

    def clear(self) -> None:
        with self.lock:
            self.html = None
            self.truncations.clear()
