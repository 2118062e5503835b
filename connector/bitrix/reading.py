"""One pull of a Bitrix24 portal: catalogue, customers, then won deals with their product rows, and
where it stands, so that a pull the portal stopped (its operating-time limit, an HTML page, a cut
request) goes on in the next run exactly where it stopped: no page read twice, none skipped.

Customers and deals are read by keyset in id order, so "where" is the last id delivered. Won deals
wait for their product rows in groups of 250; groups are delivered in the order they were formed,
so what is read but not delivered yet (waiting deals, groups with part of their rows) is a short
list kept in the position as it came from the portal. The small catalogue lists are read again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from connector.bitrix import mapping
from connector.bitrix.client import BATCH_LIMIT
from connector.bitrix.pull import (
    DEALS_PER_ROWS_READ,
    DealGroup,
    KeysetRead,
    Pager,
    plan_rows,
    rows_read,
    since_filter,
    take_rows,
)
from connector.crm import Cursor, PullPage
from connector.errors import CrmError, CrmRecordError

POSITION_VERSION = 1
ROWS_PER_DEAL_GUESS = 2.0  # product rows a won deal has, until the first group is in


class PortalRead:
    """The reads of one pull and what they have delivered. `pages()` streams; `position()` says where it is."""

    def __init__(self, adapter, since: Cursor | None, resume_at: dict | None = None) -> None:
        self.adapter = adapter
        self.since = since
        saved = resume_at if isinstance(resume_at, dict) and resume_at.get("v") == POSITION_VERSION else {}
        changed = since_filter(since.modified_since if since else None, mapping.moment)
        if adapter.customer_key == "company":
            method, select = "crm.company.list", adapter.company_select
        else:
            method, select = "crm.contact.list", adapter.contact_select
        self.customers = _resumed(KeysetRead("customers", method, {"filter": changed, "select": select},
                                             priority=2, want=BATCH_LIMIT, most=BATCH_LIMIT), saved.get("customers"))
        # incremental: every changed deal (a won deal may have been reopened); full: won deals only
        deal_filter = dict(changed) if since else {"STAGE_SEMANTIC_ID": mapping.WON}
        self.deals = _resumed(KeysetRead("deals", "crm.deal.list", {"filter": deal_filter,
                                                                     "select": adapter.deal_select},
                                         priority=3, want=BATCH_LIMIT, most=BATCH_LIMIT), saved.get("deals"))
        self.waiting: list[dict] = list(saved.get("waiting") or [])  # won deals not yet in a rows read
        self.groups: deque[DealGroup] = deque()  # in the order formed; delivered in that order
        for g in saved.get("groups") or []:
            group = DealGroup(list(g["deals"]), {str(k): list(v) for k, v in g["rows"].items()})
            read = rows_read(group, 1, ROWS_PER_DEAL_GUESS)
            read.after, read.done = int(g.get("after") or 0), bool(g.get("done"))
            plan_rows(read, ROWS_PER_DEAL_GUESS, sum(len(v) for v in group.rows.values()))
            self.groups.append(group)
        self.high_water = _HighWater(since.modified_since if since else "", cap=str(saved.get("high_water") or ""))
        self.rows_seen = self.deals_seen = 0  # of delivered groups: rows a won deal has, on average

    def position(self) -> dict:
        """Where the next run goes on: JSON-ready, raw rows as the portal sent them."""
        return {"v": POSITION_VERSION,
                "customers": {"after": self.customers.after, "done": self.customers.finished},
                "deals": {"after": self.deals.after, "done": self.deals.finished},
                "waiting": self.waiting,
                "groups": [{"deals": g.deals, "rows": g.rows, "after": g.read.after if g.read else 0,
                            "done": bool(g.read and g.read.finished)} for g in self.groups],
                "high_water": self.high_water.cap or self.high_water.value}

    @property
    def rows_per_deal(self) -> float:
        return self.rows_seen / self.deals_seen if self.deals_seen else ROWS_PER_DEAL_GUESS

    def pages(self) -> Iterator[PullPage]:
        """Stream the pull; a CrmError leaves with `resume_at` set to the position after the last page."""
        try:
            yield from self._pages()
        except CrmError as exc:
            exc.resume_at = self.position()
            raise

    def _pages(self) -> Iterator[PullPage]:
        adapter = self.adapter
        pager = Pager(adapter.client)
        catalogue = [pager.add(read) for read in adapter.catalogue_reads()]
        for read in (self.customers, self.deals, *(g.read for g in self.groups)):
            if read is not None:
                pager.add(read)
        raw_catalogue: dict[str, list[dict]] = {read.label: [] for read in catalogue if read.label != "honorific"}
        products = None
        self._group_waiting(pager)
        while True:
            results = next(pager.batches(), None)  # may raise: nothing is taken after the last page yielded
            page = PullPage()
            for result in results or ():
                label = result.read.label
                if label == "honorific":
                    adapter.gender.learn_honorifics(result.rows)
                elif label in raw_catalogue:
                    raw_catalogue[label].extend(result.rows)
                elif label == "rows":
                    take_rows(result)
                    if not result.last:
                        group: DealGroup = result.read.context  # type: ignore[assignment]
                        plan_rows(result.read, self.rows_per_deal, sum(len(v) for v in group.rows.values()))
                elif label == "customers":
                    self.high_water.see(result.rows)
                    page.customers += adapter.map_records(result.rows, adapter.to_customer, page)
                else:
                    self.high_water.see(result.rows)
                    for raw in result.rows:
                        if mapping.text(raw.get("STAGE_SEMANTIC_ID")) == mapping.WON:
                            self.waiting.append(raw)
                        else:
                            page.removed_purchase_ids.append(mapping.text(raw.get("ID")))
            self._group_waiting(pager)
            if products is None and all(read.finished for read in catalogue):
                products = adapter.catalogue(raw_catalogue, page)
            if products is not None:
                self._deliver(products, page)
            page.cursor = self.high_water.cursor()
            yield page
            if not pager.reads and not self.groups:
                return

    def _group_waiting(self, pager: Pager) -> None:
        while len(self.waiting) >= DEALS_PER_ROWS_READ or (self.waiting and self.deals.finished):
            group = DealGroup(self.waiting[:DEALS_PER_ROWS_READ],
                              {mapping.text(d.get("ID")): [] for d in self.waiting[:DEALS_PER_ROWS_READ]})
            self.waiting = self.waiting[DEALS_PER_ROWS_READ:]
            pager.add(rows_read(group, 1, self.rows_per_deal))
            self.groups.append(group)

    def _deliver(self, products: dict, page: PullPage) -> None:
        """Groups whose rows are all in, oldest first; a complete group behind an open one waits."""
        adapter = self.adapter
        while self.groups and self.groups[0].read is not None and self.groups[0].read.finished:
            group = self.groups.popleft()
            self.rows_seen += sum(len(v) for v in group.rows.values())
            self.deals_seen += len(group.deals)
            page.purchases += adapter.map_records(group.deals, lambda raw, g=group: adapter.to_purchase(
                raw, g.rows[mapping.text(raw.get("ID"))], products), page)


def _resumed(read: KeysetRead, saved: object) -> KeysetRead:
    if isinstance(saved, dict):
        read.after = int(saved.get("after") or 0)
        read.done = bool(saved.get("done"))
    return read


class _HighWater:
    """The latest DATE_MODIFY seen, compared as moments whatever offset each was written in.

    `cap`: the high-water mark where an earlier run of this pull stopped. A change made since then
    to a row already read is newer than it, so a resumed pull's cursor stays there.
    """

    def __init__(self, start: str, cap: str = "") -> None:
        self.value, self.stamp = start, _stamp(start) if start else 0.0
        self.cap = cap
        if cap:
            self.see([{"DATE_MODIFY": cap}])

    def see(self, rows: list[dict]) -> None:
        for raw in rows:
            value = mapping.text(raw.get("DATE_MODIFY"))
            if value and value != self.value:
                stamp = _stamp(value)
                if stamp > self.stamp:
                    self.value, self.stamp = value, stamp

    def cursor(self) -> Cursor | None:
        value = self.cap or self.value
        return Cursor(value) if value else None


def _stamp(value: str) -> float:
    try:
        moment = mapping.moment(value, field="DATE_MODIFY")
    except CrmRecordError:
        return 0.0
    return moment.timestamp() if moment else 0.0
