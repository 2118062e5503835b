"""The POSTs a portal makes to an application: the install callback, events, robot calls.

Doc: api-reference/events/index.md - form-urlencoded with PHP nesting (`data[FIELDS][ID]=759`),
delivered through a queue server after a small delay, never retried (a failed or unanswered
delivery is lost); settings/app-installation/local-apps/installation-callback.md - the install
callback is POSTed right after the app is added. Every delivery is kept for tests to read.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

from emulators.kit.delivery import FormSender
from emulators.kit.forms import php_pairs

TIMEOUT_SECONDS = 10.0
USER_AGENT = "Bitrix24 Webhook Engine"


def php_form(data: dict) -> bytes:
    """`{"auth": {"member_id": "x"}, "document_id": ["crm", ...]}` -> `auth[member_id]=x&document_id[0]=crm`,
    brackets %-encoded as PHP's http_build_query writes them."""
    pairs = php_pairs(data, yes="Y", no="N")
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()


class Outbound:
    """One sender thread, so deliveries keep their order; `deliveries` lists every attempt."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self.sender = FormSender("bitrix-emulator-outbound", timeout=timeout, user_agent=USER_AGENT)
        self.deliveries: list[dict] = []
        self._lock = threading.Lock()

    def post_now(self, kind: str, url: str, data: dict) -> int:
        """Deliver in the caller's thread; the receiver's HTTP status (0 = no answer)."""
        status = self.sender.post(url, php_form(data))
        self._keep(kind, url, data, status)
        return status

    def enqueue(self, kind: str, url: str, data: dict) -> None:
        self.sender.enqueue(url, php_form(data), lambda status: self._keep(kind, url, data, status))

    def _keep(self, kind: str, url: str, data: dict, status: int) -> None:
        with self._lock:
            self.deliveries.append({"kind": kind, "url": url, "status": status, "data": data, "at": time.time()})

    def sent(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [d for d in self.deliveries if kind is None or d["kind"] == kind]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.sender.wait_idle(timeout)

    def stop(self) -> None:
        self.sender.stop()
