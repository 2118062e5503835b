"""Pulling from Bitrix24 at the API's limit: 50 list pages in one `batch` = 2,500 rows a request.

Every page the pull needs is one command in a shared queue (`Pager`): a list's first page tells
its `total`, and the rest of its pages are queued at once; each request carries the 50
highest-priority commands waiting, whatever list they belong to, so batches leave full.
Product rows of up to 250 won deals are one paged read of `crm.item.productrow.list` with an
`=ownerId` array (Doc: crm/universal/product-rows/crm-item-productrow-list.md, RU: "`=` works with
arrays"), so rows never cost a call per deal and only the last page of each group is short.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from connector.bitrix.client import BATCH_LIMIT, PAGE_SIZE, BitrixClient
from connector.errors import CrmRequestRejected

log = logging.getLogger(__name__)

LAG_SECONDS = 600  # re-read window behind the cursor: a change saved while we read is not missed
DEALS_PER_ROWS_READ = 250  # deals in one `=ownerId` array; a longer query string risks the portal's input limits


def _rows(result: object, key: str | None) -> list[dict]:
    if key is None:
        return list(result) if isinstance(result, list) else []
    if isinstance(result, dict):
        value = result.get(key)
        return list(value) if isinstance(value, list) else []
    return []


def list_pages(client: BitrixClient, method: str, params: Mapping[str, object], *,
               key: str | None = None) -> Iterator[list[dict]]:
    """Every row of one list method, in chunks of up to 2,500 (one HTTP request each)."""
    first = client.call(method, {**params, "start": 0})
    yield _rows(first["result"], key)
    if "next" not in first:
        return
    total = int(first.get("total") or 0)
    offsets = list(range(PAGE_SIZE, total, PAGE_SIZE))
    for i in range(0, len(offsets), BATCH_LIMIT):
        chunk = offsets[i:i + BATCH_LIMIT]
        res = client.batch({f"p{o}": (method, {**params, "start": o}) for o in chunk})
        if res.errors:
            _label, err = next(iter(res.errors.items()))
            raise CrmRequestRejected(str(err.get("error_description") or err.get("error") or "error"),
                                     crm="bitrix", method=method, crm_code=str(err.get("error", "")))
        rows: list[dict] = []
        for o in chunk:
            rows.extend(_rows(res.result.get(f"p{o}"), key))
        yield rows


@dataclass(eq=False)
class PagedRead:
    """One list to read through the `Pager`, every page of it.

    `key` names the rows inside the result (e.g. "productRows"); an `optional` read (a missing
    scope, a method the portal lacks) is skipped with a warning instead of failing the pull.
    Lower `priority` goes first. `context` is the caller's (e.g. the deals of a rows read).
    """

    label: str
    method: str
    params: Mapping[str, object] = field(default_factory=dict)
    key: str | None = None
    optional: bool = False
    priority: int = 5
    context: object = None
    outstanding: int = 0  # pages queued or in flight
    failed: bool = False

    @property
    def finished(self) -> bool:
        return self.outstanding == 0


@dataclass
class PageResult:
    read: PagedRead
    rows: list[dict]
    last: bool  # the read's final page is in: every row of it has been delivered


class Pager:
    """A queue of page commands, sent 50 to a `batch`, lowest priority number first (FIFO within one)."""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client
        self._queue: list[tuple[int, int, PagedRead, int]] = []
        self._seq = itertools.count()

    def add(self, read: PagedRead) -> PagedRead:
        self._push(read, 0)
        return read

    def _push(self, read: PagedRead, start: int) -> None:
        read.outstanding += 1
        heapq.heappush(self._queue, (read.priority, next(self._seq), read, start))

    def batches(self) -> Iterator[list[PageResult]]:
        """Send until nothing is queued; the caller may `add` reads between batches."""
        while self._queue:
            chunk = [heapq.heappop(self._queue) for _ in range(min(BATCH_LIMIT, len(self._queue)))]
            res = self.client.batch({f"c{n}": (read.method, {**read.params, "start": start})
                                     for n, (_p, _s, read, start) in enumerate(chunk)})
            out: list[PageResult] = []
            for n, (_p, _s, read, start) in enumerate(chunk):
                label = f"c{n}"
                read.outstanding -= 1
                if read.failed or _failed(read, res.errors.get(label)):
                    read.failed = True
                    continue
                if start == 0 and label in res.next:
                    for offset in range(PAGE_SIZE, int(res.total.get(label) or 0), PAGE_SIZE):
                        self._push(read, offset)
                out.append(PageResult(read, _rows(res.result.get(label), read.key), read.finished))
            yield out


def _failed(read: PagedRead, error: dict | None) -> bool:
    if not error:
        return False
    text = str(error.get("error_description") or error.get("error") or "error")
    if read.optional:
        log.warning("skipped optional list method=%s error=%s", read.method, text[:80])
        return True
    raise CrmRequestRejected(text, crm="bitrix", method=read.method, crm_code=str(error.get("error", "")))


@dataclass(eq=False)
class DealGroup:
    """Won deals waiting for their product rows (one rows read)."""

    deals: list[dict]
    rows: dict[str, list[dict]]


def rows_read(deals: list[dict], priority: int) -> PagedRead:
    """Every product row of these deals, as one paged read ordered by row id."""
    ids = [str(d.get("ID")) for d in deals]
    return PagedRead("rows", "crm.item.productrow.list",
                     {"filter": {"=ownerType": "D", "=ownerId": ids}, "order": {"id": "asc"}},
                     key="productRows", priority=priority, context=DealGroup(deals, {i: [] for i in ids}))


def take_rows(result: PageResult) -> DealGroup:
    """File a rows page under its deals; rows of deals we did not ask for are dropped."""
    group: DealGroup = result.read.context  # type: ignore[assignment]
    for row in result.rows:
        bucket = group.rows.get(str(row.get("ownerId", "")))
        if bucket is not None:
            bucket.append(row)
    return group


def since_filter(cursor_value: str | None, parse: Callable) -> dict[str, str]:
    """`>=DATE_MODIFY` a little behind the cursor (LAG_SECONDS), in the portal's own offset."""
    if not cursor_value:
        return {}
    moment = parse(cursor_value, field="cursor")
    return {">=DATE_MODIFY": (moment - timedelta(seconds=LAG_SECONDS)).isoformat()}
