"""The POSTs a portal makes to an application: the install callback, events, robot calls.

Doc: api-reference/events/index.md - form-urlencoded with PHP nesting (`data[FIELDS][ID]=759`),
delivered through a queue server after a small delay, never retried (a failed or unanswered
delivery is lost); settings/app-installation/local-apps/installation-callback.md - the install
callback is POSTed right after the app is added. Every delivery is kept for tests to read.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote

TIMEOUT_SECONDS = 10.0
USER_AGENT = "Bitrix24 Webhook Engine"


def php_form(data: dict) -> bytes:
    """`{"auth": {"member_id": "x"}, "document_id": ["crm", ...]}` -> `auth[member_id]=x&document_id[0]=crm`,
    brackets %-encoded as PHP's http_build_query writes them."""
    pairs: list[tuple[str, str]] = []

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif value is not None:
            pairs.append((key, "Y" if value is True else "N" if value is False else str(value)))

    walk(data, "")
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()


class Outbound:
    """One sender thread, so deliveries keep their order; `deliveries` lists every attempt."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.jobs: queue.Queue = queue.Queue()
        self.deliveries: list[dict] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bitrix-emulator-outbound", daemon=True)
        self._thread.start()

    def post_now(self, kind: str, url: str, data: dict) -> int:
        """Deliver in the caller's thread; the receiver's HTTP status (0 = no answer)."""
        return self._deliver(kind, url, data)

    def enqueue(self, kind: str, url: str, data: dict) -> None:
        self.jobs.put((kind, url, data))

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                self._deliver(*job)
            finally:
                self.jobs.task_done()

    def _deliver(self, kind: str, url: str, data: dict) -> int:
        request = urllib.request.Request(url, data=php_form(data), method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT})
        status = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError):
            status = 0
        with self._lock:
            self.deliveries.append({"kind": kind, "url": url, "status": status, "data": data, "at": time.time()})
        return status

    def sent(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [d for d in self.deliveries if kind is None or d["kind"] == kind]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.jobs.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.jobs.unfinished_tasks

    def stop(self) -> None:
        self.jobs.put(None)
