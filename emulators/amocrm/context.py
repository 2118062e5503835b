"""What a route handler gets: the account, the request, and the emulator's own origin for `_links`."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.amocrm.render import ApiError
from emulators.amocrm.store import AccountStore

MAX_BATCH = 250  # Doc: developers.kommo.com/docs/limitations - at most 250 per add/update request


@dataclass
class Ctx:
    store: AccountStore
    base: str
    method: str
    path: str
    pairs: list[tuple[str, str]]
    query: dict
    body: object
    params: dict[str, str] = field(default_factory=dict)

    @property
    def filters(self) -> dict:
        value = self.query.get("filter")
        return value if isinstance(value, dict) else {}

    def items(self, *, max_items: int = MAX_BATCH) -> list[dict]:
        """A write's JSON array body; empty -> 400, too long -> 422 (Doc: reference §10)."""
        body = self.body
        if body in (None, [], {}):
            raise ApiError(400, "Request data can not be empty")
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
            raise ApiError(400, "Request body must be a JSON array of objects")
        if len(body) > max_items:
            raise ApiError(422, f"Limit {max_items} per page")
        return body


def request_id(item: dict, index: int) -> str:
    """Echoed back as given, else the item's index as a string (Doc: amocrm.ru/.../leads-api)."""
    value = item.get("request_id")
    return str(index) if value in (None, "") else str(value)
