"""Reading lists from amoCRM at 250 a page, to the end, with an incremental window by `updated_at`.

Doc: kommo.com/developers/content/api_v4/leads-api - `limit` up to 250, `page` from 1; an empty
page is 204 with no body (amocrm-api-php#299); a page shorter than `limit` is the last one, and
`next` may be present on a full last page, so a final 204 can follow (amocrm-api-php#209, #193).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from connector.amocrm.client import CRM, AmoClient
from connector.errors import CrmRequestRejected

PAGE_SIZE = 250  # Doc: amocrm-api-php PagesFilterTrait - max 250 (the old 500 is gone)
LAG_SECONDS = 600  # re-read window behind the cursor: a change saved while we read is not missed


@dataclass
class Paginator:
    """Picks the next page and nothing else; a repeated page is an error, not an endless loop."""

    short_page_ends: bool = True  # false for catalog elements, whose page size changed unannounced (#528)
    page: int = 1
    last_ids: tuple | None = None

    def advance(self, body: Mapping, rows: list[dict], limit: int) -> bool:
        ids = tuple(r.get("id") for r in rows)
        if ids and ids == self.last_ids:
            raise CrmRequestRejected("the account returned the same page twice", crm=CRM,
                                     hint="a paging bug on the server side; run again with --full later")
        self.last_ids = ids
        links = body.get("_links") if isinstance(body.get("_links"), Mapping) else {}
        if "next" not in links or (self.short_page_ends and len(rows) < limit):
            return False
        self.page += 1
        return True


def pages(client: AmoClient, path: str, key: str, params: Mapping[str, object] | None = None, *,
          limit: int = PAGE_SIZE, short_page_ends: bool = True) -> Iterator[list[dict]]:
    """Every row of a list, a page (one HTTP request) at a time; 204 and empty pages end it."""
    paginator = Paginator(short_page_ends=short_page_ends)
    while True:
        body = client.request("GET", path, params={**(params or {}), "page": paginator.page, "limit": limit})
        if not isinstance(body, Mapping):
            return  # 204: nothing (more) to read
        embedded = body.get("_embedded") if isinstance(body.get("_embedded"), Mapping) else {}
        rows = [r for r in embedded.get(key) or [] if isinstance(r, dict)]
        if not rows:
            return
        yield rows
        if not paginator.advance(body, rows, limit):
            return
