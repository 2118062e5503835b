"""How a pull reads an account: one series of pages per list, each able to resume where a run stopped.

Filters are alpha: `GET /api/v4/account?with=is_api_filter_enabled` says whether this account applies
them, and where it does not they are ignored (Doc: amocrm.ru/developers/content/crm_platform/filters-api,
/account-info). With filters on, a series reads `order[updated_at]=asc` from the cursor (a full pull:
won leads one pipeline at a time, since the leads list filters "only one stage in one pipeline", Doc:
developers.kommo.com/reference/leads-list). With filters off, an incremental series reads
`order[updated_at]=desc` until it passes the cursor, never the whole account; a full one reads it all.

A `Position` is where the next run starts should this one stop (429 with a long wait, a block, a bad
answer): filters on, the series' `updated_at` high water (read again from there, minus the lag, so
nothing is skipped); filters off, the page reached (read again from the page before it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from connector.amocrm.client import CRM, AmoClient
from connector.amocrm.pull import LAG_SECONDS, PAGE_SIZE, Paginator
from connector.errors import CrmRequestRejected

EVENTS_PAGE = 100  # Doc: amocrm.ru/developers/content/crm_platform/events-and-notes - at most 100 a page
PREFIX = "resume:v1:"


@dataclass(frozen=True)
class Position:
    """The run's own start (`since`, "" for a full pull), the series it was in, and how far it got."""

    since: str
    series: str
    page: int = 1
    after: int = 0

    def text(self) -> str:
        return f"{PREFIX}{self.since}:{self.series}:{self.page}:{self.after}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        if not text.startswith(PREFIX):
            return None
        since, _, rest = text[len(PREFIX):].partition(":")
        try:
            series, page, after = rest.rsplit(":", 2)
            return cls(since, series, int(page), int(after))
        except ValueError:
            raise CrmRequestRejected(f"the saved resume position {text[:60]!r} is damaged", crm=CRM,
                                     hint="run `repeat-sales sync --full` once") from None


@dataclass
class Series:
    """One list read as a run of pages: its path, its `_embedded` key and the filters it needs."""

    name: str
    path: str
    key: str
    params: dict[str, object] = field(default_factory=dict)
    limit: int = PAGE_SIZE
    timestamp: str = "updated_at"  # the field the cursor compares (events: created_at)


def stamp(value: object) -> int:
    try:
        return int(float(value)) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def since_seconds(since: str) -> int | None:
    """The cursor as Unix seconds, or None for a full pull."""
    if not since:
        return None
    try:
        return int(float(since))
    except ValueError:
        raise CrmRequestRejected(f"the saved cursor {since[:20]!r} is not an amoCRM timestamp", crm=CRM,
                                 hint="run `repeat-sales sync --full` once") from None


def read(client: AmoClient, series: Series, *, since: str, filters_on: bool,
         start: Position | None = None) -> Iterator[tuple[list[dict], Position]]:
    """Rows of one series a page at a time, each with the position after it.

    Rows older than the cursor (minus the lag) are dropped here, so an account that ignores the
    filter costs requests, never wrong data.
    """
    bound = since_seconds(since)
    floor = None if bound is None else max(0, bound - LAG_SECONDS)
    here = start or Position(since, series.name)
    if series.timestamp != "updated_at":
        yield from _events(client, series, floor, here)
    elif filters_on:
        yield from _ascending(client, series, floor, here)
    elif floor is not None:
        yield from _newest_first(client, series, floor, here)
    else:
        yield from _everything(client, series, here)


def _pages(client: AmoClient, series: Series, params: dict, first: int) -> Iterator[tuple[list[dict], int]]:
    paginator = Paginator(page=first)
    while True:
        body = client.request("GET", series.path, params={**params, "page": paginator.page, "limit": series.limit})
        if not isinstance(body, Mapping):
            return  # 204: nothing (more) to read
        embedded = body.get("_embedded") if isinstance(body.get("_embedded"), Mapping) else {}
        rows = [r for r in embedded.get(series.key) or [] if isinstance(r, dict)]
        if not rows:
            return
        page = paginator.page
        more = paginator.advance(body, rows, series.limit)
        yield rows, page
        if not more:
            return


def _ascending(client: AmoClient, series: Series, floor: int | None,
               here: Position) -> Iterator[tuple[list[dict], Position]]:
    """Oldest first from the cursor; a resumed series starts again at its high water (keyset)."""
    lower = max(floor or 0, here.after - LAG_SECONDS if here.after else 0) or None
    params = {**series.params, "order[updated_at]": "asc"}
    if lower is not None:
        params["filter[updated_at][from]"] = lower
    high = here.after
    for rows, page in _pages(client, series, params, 1):
        rows = [r for r in rows if lower is None or stamp(r.get("updated_at")) >= lower]
        high = max([high, *(stamp(r.get("updated_at")) for r in rows)])
        yield rows, replace(here, page=page + 1, after=high)


def _events(client: AmoClient, series: Series, floor: int | None,
            here: Position) -> Iterator[tuple[list[dict], Position]]:
    """The events list, newest first; its filters are not the alpha list filters, so they apply
    (Doc: amocrm.ru/developers/content/crm_platform/events-and-notes)."""
    params = dict(series.params)
    if floor is not None:
        params["filter[created_at][from]"] = floor
    for rows, page in _pages(client, series, params, max(1, here.page - 1)):
        yield [r for r in rows if floor is None or stamp(r.get("created_at")) >= floor], replace(here, page=page + 1)


def _newest_first(client: AmoClient, series: Series, floor: int,
                  here: Position) -> Iterator[tuple[list[dict], Position]]:
    """Filters off: `order[updated_at]=desc` until a page reaches past the cursor. Changes made while we
    read only push rows down the list, so going on from the page before the one reached skips none."""
    params = {**series.params, "order[updated_at]": "desc", "filter[updated_at][from]": floor}
    for rows, page in _pages(client, series, params, max(1, here.page - 1)):
        fresh = [r for r in rows if stamp(r.get("updated_at")) >= floor]
        yield fresh, replace(here, page=page + 1)
        if len(fresh) < len(rows):
            return  # this page reached past the cursor: everything further down is older


def _everything(client: AmoClient, series: Series, here: Position) -> Iterator[tuple[list[dict], Position]]:
    """Filters off, a full pull: the whole list, oldest id first; resumed from the page before the one
    reached (a row that left the list meanwhile shifts the rest up by one)."""
    params = {**series.params, "order[id]": "asc"}
    for rows, page in _pages(client, series, params, max(1, here.page - 1)):
        yield rows, replace(here, page=page + 1)
