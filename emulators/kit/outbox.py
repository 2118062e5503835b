"""Everything an emulated CRM would have sent to a customer (e-mails, messenger messages, SMS, bot
texts), in order: the witness of what reached customers (`GET /_emulator/outbox`).

`key` is the plugin's action key read from the marker the CRM keeps out of the customer's sight
(an activity's ORIGIN_ID, a field), never from the text the customer reads.
"""

from __future__ import annotations

import threading


class Outbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict] = []

    def add(self, *, channel: str, to: str, contact_id: int | str, subject: str, text: str, marker: str) -> None:
        key = marker[3:] if marker.startswith("rs:") else ""
        with self._lock:
            self._items.append({"channel": channel, "to": to, "contact_id": str(contact_id), "subject": subject,
                                "text": text, "key": key})

    def items(self) -> list[dict]:
        with self._lock:
            return [dict(item) for item in self._items]
