"""The POSTs a CRM makes on its own (events, webhooks, install callbacks): form bodies sent in order by
one thread, each answer's HTTP status handed back (0 = no answer), so the CRM can keep or judge it."""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable


class FormSender:
    def __init__(self, name: str, *, timeout: float, user_agent: str) -> None:
        self.timeout, self.user_agent = timeout, user_agent
        self.jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def post(self, url: str, body: bytes) -> int:
        """Deliver in the caller's thread; the receiver's HTTP status (0 = no answer)."""
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError):
            return 0

    def enqueue(self, url: str, body: bytes, then: Callable[[int], None] | None = None) -> None:
        """Deliver after those queued before; `then(status)` runs before the job counts as done."""
        self.jobs.put((url, body, then))

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                url, body, then = job
                status = self.post(url, body)
                if then is not None:
                    then(status)
            finally:
                self.jobs.task_done()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.jobs.unfinished_tasks

    def stop(self) -> None:
        self.jobs.put(None)
