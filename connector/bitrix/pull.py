"""Reading Bitrix24 lists the way the docs require on big portals: by keyset, 50 pages a request.

Doc: settings/performance/huge-data.md - with `start >= 0` the portal counts the whole list for
`total` on every call (49.9 s on 2.39M rows, against 0.097 s with `start=-1`), so `start + 50`
paging is not for big lists: read them with `order {ID: ASC}`, `filter {">ID": last}`,
`start: -1`, and stop at a page of fewer than 50 rows.
Doc: settings/how-to-call-rest-api/batch.md - a command may use an earlier one's result as
`$result[cmd][...]`: page i of a chain filters `>ID` by `$result[<page i-1>][49][ID]`, so one
`batch` carries up to 50 pages of a list, 2,500 rows (the official SDK's call_list_fast does the
same). Every open list adds its chain to the shared `batch`, the most urgent first, so requests
leave full. Commands after a chain's short page are ignored whatever the portal made of their
unresolved reference. Product rows of up to 250 won deals are one keyset read of
`crm.item.productrow.list` with an `=ownerId` array (Doc: crm/universal/product-rows/
crm-item-productrow-list.md, "`=` works with arrays"), never a call per deal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from connector.bitrix.batching import send
from connector.bitrix.client import BATCH_LIMIT, OPERATION_TIME_LIMIT, PAGE_SIZE, BitrixClient, scope_of
from connector.errors import CrmRequestRejected

log = logging.getLogger(__name__)

LAG_SECONDS = 600  # re-read window behind the cursor: a change saved while we read is not missed
DEALS_PER_ROWS_READ = 250  # deals in one `=ownerId` array; a longer query string risks the portal's input limits
# method -> (the id's name in `filter`/`order`, its name in the rows answered); "ID" for the rest
KEYSET_FIELDS = {"crm.item.productrow.list": ("id", "id"), "tasks.task.list": ("ID", "id")}
# Doc: api-reference/user/user-get.md - sorted by `sort` (a field) and `order` (ASC|DESC), not an `order` object
SORT_AND_ORDER = {"user.get"}


def _rows(result: object, key: str | None) -> list[dict]:
    if key is None:
        return list(result) if isinstance(result, list) else []
    if isinstance(result, dict):
        value = result.get(key)
        return list(value) if isinstance(value, list) else []
    return []


def _id(row: object, name: str) -> int | None:
    try:
        return int(row.get(name)) if isinstance(row, dict) else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@dataclass(eq=False)
class KeysetRead:
    """One list read page after page by keyset, through the `Pager`.

    `key` names the rows inside the result (e.g. "productRows"); an `optional` read (a missing
    scope, a method the portal lacks) is skipped with a warning instead of failing the pull. Lower
    `priority` goes first. `after` is the id of the last row delivered (the next page starts past
    it); `want` how many pages to chain in the next batch, doubled after a full chain when `grow`
    (a list of unknown size), so a small list costs one command and a big one fills batches;
    `most` how many it may take when a batch has room left (a page past the end costs a command,
    never a request). `context` is the caller's (e.g. the deals of a rows read).
    """

    label: str
    method: str
    params: Mapping[str, object] = field(default_factory=dict)
    key: str | None = None
    optional: bool = False
    priority: int = 5
    context: object = None
    after: int = 0
    want: int = 1
    most: int = 0
    grow: bool = True
    done: bool = False
    failed: bool = False

    @property
    def finished(self) -> bool:
        return self.done or self.failed

    @property
    def fields(self) -> tuple[str, str]:
        return KEYSET_FIELDS.get(self.method, ("ID", "ID"))

    def command(self, after: int | str) -> tuple[str, dict]:
        """This read's page past `after` (an id, or a reference to the previous page's last one)."""
        id_name = self.fields[0]
        params = dict(self.params)
        params["filter"] = {**dict(params.get("filter") or {}), f">{id_name}": after}  # type: ignore[arg-type]
        if self.method in SORT_AND_ORDER:
            params["sort"], params["order"] = id_name, "ASC"
        else:
            params["order"] = {id_name: "ASC"}
        params["start"] = -1
        return self.method, params

    def last_id_of(self, label: str) -> str:
        """`$result[<label>][...][49][ID]`: the last row of a full page, for the next page's filter."""
        path = f"$result[{label}]" + (f"[{self.key}]" if self.key else "")
        return f"{path}[{PAGE_SIZE - 1}][{self.fields[1]}]"


@dataclass
class PageResult:
    read: KeysetRead
    rows: list[dict]
    last: bool  # the read's final page is in: every row of it has been delivered


class Pager:
    """Open keyset reads, sent as chains in shared batches of 50 commands, lowest priority number first."""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client
        self.reads: list[KeysetRead] = []

    def add(self, read: KeysetRead) -> KeysetRead:
        if not read.finished:
            self.reads.append(read)
        return read

    def batches(self) -> Iterator[list[PageResult]]:
        """Send until every read is finished; the caller may `add` reads between batches.

        A read whose method is near or past its operating-time limit waits (budget.py) while the
        others go on; when only such reads are left, the budget waits or raises CrmRateLimited.
        """
        while True:
            self.reads = [r for r in self.reads if not r.finished]
            if not self.reads:
                return
            chains = self._compose()
            if not chains:  # wait for the read that frees first (or end the run, when that is far)
                budget = self.client.budget
                budget.pace([min(self.reads, key=lambda r: budget.wait_for([r.method])).method])
                continue
            commands: dict[str, tuple[str, Mapping[str, object]]] = {}
            for n, (read, pages) in enumerate(chains):
                for i in range(pages):
                    label = f"c{n}_{i}"
                    commands[label] = read.command(read.after if i == 0 else read.last_id_of(f"c{n}_{i - 1}"))
            res = send(self.client, commands)
            yield self._take(chains, res)

    def _compose(self) -> list[tuple[KeysetRead, int]]:
        """Each read its `want`, most urgent first; then room left goes to reads up to their `most`.
        No method gets more commands than its operating-time allowance (budget.py)."""
        slots, chains = BATCH_LIMIT, []
        budget = self.client.budget
        allowed: dict[str, int] = {}
        for read in sorted(self.reads, key=lambda r: r.priority):  # stable: FIFO within a priority
            if slots <= 0:
                break
            if read.method not in allowed:
                allowed[read.method] = budget.allowance(read.method) if budget.wait_for([read.method]) <= 0 else 0
            pages = min(max(1, read.want), slots, allowed[read.method])
            if pages <= 0:
                continue
            chains.append([read, pages])
            slots -= pages
            allowed[read.method] -= pages
        for chain in chains:
            if slots <= 0:
                break
            extra = max(0, min(chain[0].most - chain[1], slots, allowed[chain[0].method]))
            chain[1] += extra
            slots -= extra
            allowed[chain[0].method] -= extra
        return [(read, pages) for read, pages in chains]

    def _take(self, chains: list[tuple[KeysetRead, int]], res) -> list[PageResult]:
        """Each chain's pages up to its first short page, refusal or gap. Fatal refusals raise before
        any read moves, so an error leaves every read where the last delivered page left it."""
        for n, (read, pages) in enumerate(chains):
            for i in range(pages):
                error = res.errors.get(f"c{n}_{i}")
                if error is not None:
                    _check(read, error)
                    break
                if len(_rows(res.result.get(f"c{n}_{i}"), read.key)) < PAGE_SIZE:
                    break
        out: list[PageResult] = []
        for n, (read, pages) in enumerate(chains):
            taken: list[dict] = []
            full = True
            for i in range(pages):
                label = f"c{n}_{i}"
                if label in res.errors:
                    full = False
                    if _code(res.errors[label]) != OPERATION_TIME_LIMIT:  # optional, refused: skipped
                        read.failed = True
                    break
                if label not in res.result:
                    full = False
                    break
                rows = _rows(res.result[label], read.key)
                first = _id(rows[0], read.fields[1]) if rows else None
                if rows and (first is None or first <= read.after):  # not past the last page: never taken
                    full = False
                    break
                taken += rows
                if rows:
                    read.after = _id(rows[-1], read.fields[1]) or read.after
                if len(rows) < PAGE_SIZE:
                    read.done, full = True, False
                    break
            if full and read.grow:
                read.want = min(BATCH_LIMIT, read.want * 2)
                read.most = max(read.most, read.want)
            if taken or read.finished:
                out.append(PageResult(read, taken, read.finished))
        return out


def _code(error: object) -> str:
    return str(error.get("error", "")) if isinstance(error, dict) else ""


def _check(read: KeysetRead, error: dict) -> None:
    """A refusal that stops the pull raises; a time limit waits (the budget knows), an optional read is skipped."""
    if _code(error) == OPERATION_TIME_LIMIT:
        return
    text = str(error.get("error_description") or error.get("error") or "error")
    if read.optional:
        log.warning("skipped optional list method=%s error=%s", read.method, text[:80])
        return
    hint = (f"add the scope {scope_of(read.method)} to the incoming webhook (or the app) and run again"
            if _code(error) == "insufficient_scope" else None)
    raise CrmRequestRejected(text, crm="bitrix", method=read.method, crm_code=_code(error), hint=hint)


def list_pages(client: BitrixClient, method: str, params: Mapping[str, object], *,
               key: str | None = None) -> Iterator[list[dict]]:
    """Every row of one list, by keyset, in chunks of up to 2,500 (one HTTP request each).

    An `order` by anything but the id is kept by sorting the (small) list here: a keyset read
    goes by id.
    """
    order = dict(params.get("order") or {})  # type: ignore[arg-type]
    read = KeysetRead(method, method, {k: v for k, v in params.items() if k not in ("order", "start")}, key=key)
    pager = Pager(client)
    pager.add(read)
    if not order or [str(k).upper() for k in order] == [read.fields[0].upper()]:
        for results in pager.batches():
            for result in results:
                yield result.rows
        return
    rows = [row for results in pager.batches() for result in results for row in result.rows]
    for name, direction in reversed(list(order.items())):
        rows.sort(key=lambda r, f=str(name): _sortable(r.get(f)), reverse=str(direction).upper() == "DESC")
    yield rows


def _sortable(value: object) -> tuple:
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, "" if value is None else str(value))


@dataclass(eq=False)
class DealGroup:
    """Won deals waiting for their product rows (one rows read)."""

    deals: list[dict]
    rows: dict[str, list[dict]]
    read: KeysetRead | None = None


def rows_read(group: DealGroup, priority: int, rows_per_deal: float) -> KeysetRead:
    """Every product row of these deals, as one keyset read by row id; its first chain is sized
    a little under the rows expected, so it rarely asks for a page past the end."""
    ids = list(group.rows)
    read = KeysetRead("rows", "crm.item.productrow.list", {"filter": {"=ownerType": "D", "=ownerId": ids}},
                      key="productRows", priority=priority, context=group, grow=False)
    group.read = read
    plan_rows(read, rows_per_deal, 0)
    return read


def plan_rows(read: KeysetRead, rows_per_deal: float, taken: int) -> None:
    """Pages to chain next: the full pages still expected (at least one); with room to spare, up to
    half as many again."""
    group: DealGroup = read.context  # type: ignore[assignment]
    expected = rows_per_deal * len(group.deals) - taken
    read.want = max(1, min(BATCH_LIMIT, int(0.9 * expected // PAGE_SIZE)))
    read.most = max(read.want, min(BATCH_LIMIT, int(1.5 * expected // PAGE_SIZE) + 1))


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
