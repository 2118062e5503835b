"""Pulling from Bitrix24 at the API's limit: 50 list pages in one `batch` = 2,500 rows a request.

A list is read with one plain call (it tells `total`), then the remaining `start` offsets
packed 50 to a batch. Product rows of many deals come from one `crm.item.productrow.list`
command each (`=ownerId` takes an array; Doc: crm/universal/product-rows/crm-item-productrow-list.md),
so rows never cost a call per deal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from connector.bitrix.client import BATCH_LIMIT, PAGE_SIZE, BitrixClient
from connector.errors import CrmRequestRejected

log = logging.getLogger(__name__)

LAG_SECONDS = 600  # re-read window behind the cursor: a change saved while we read is not missed
ROWS_PER_COMMAND_TARGET = PAGE_SIZE  # aim each product-row command at one full page


def _rows(result: object, key: str | None) -> list[dict]:
    if key is None:
        return list(result) if isinstance(result, list) else []
    if isinstance(result, dict):
        value = result.get(key)
        return list(value) if isinstance(value, list) else []
    return []


def list_pages(client: BitrixClient, method: str, params: Mapping[str, object], *,
               key: str | None = None) -> Iterator[list[dict]]:
    """Every row of a list method, yielded in chunks of up to 2,500 (one HTTP request each)."""
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
            label, err = next(iter(res.errors.items()))
            raise CrmRequestRejected(str(err.get("error_description") or err.get("error") or "error"),
                                     crm="bitrix", method=method, crm_code=str(err.get("error", "")))
        rows: list[dict] = []
        for o in chunk:
            rows.extend(_rows(res.result.get(f"p{o}"), key))
        yield rows


@dataclass(frozen=True)
class ListSpec:
    """One list to read: `key` names the rows inside the result (e.g. "tasks"); optional lists
    (a missing scope, a method the portal lacks) are skipped with a warning instead of failing."""

    label: str
    method: str
    params: Mapping[str, object] = field(default_factory=dict)
    key: str | None = None
    optional: bool = False


def read_lists(client: BitrixClient, specs: list[ListSpec]) -> Iterator[tuple[str, list[dict]]]:
    """Several lists at the lower bound: their first pages share one request, then every
    remaining page is packed 50 to a batch, in the order of `specs`. Yields (label, rows)."""
    first = client.batch({s.label: (s.method, {**s.params, "start": 0}) for s in specs})
    pending: list[tuple[ListSpec, int]] = []
    for spec in specs:
        if _failed(spec, first.errors.get(spec.label)):
            continue
        yield spec.label, _rows(first.result.get(spec.label), spec.key)
        if spec.label in first.next:
            total = int(first.total.get(spec.label) or 0)
            pending += [(spec, o) for o in range(PAGE_SIZE, total, PAGE_SIZE)]
    for i in range(0, len(pending), BATCH_LIMIT):
        chunk = pending[i:i + BATCH_LIMIT]
        res = client.batch({f"{s.label}.{o}": (s.method, {**s.params, "start": o}) for s, o in chunk})
        grouped: dict[str, list[dict]] = {}
        for spec, offset in chunk:
            if not _failed(spec, res.errors.get(f"{spec.label}.{offset}")):
                grouped.setdefault(spec.label, []).extend(_rows(res.result.get(f"{spec.label}.{offset}"), spec.key))
        yield from grouped.items()


def _failed(spec: ListSpec, error: dict | None) -> bool:
    if not error:
        return False
    text = str(error.get("error_description") or error.get("error") or "error")
    if spec.optional:
        log.warning("skipped optional list method=%s error=%s", spec.method, text[:80])
        return True
    raise CrmRequestRejected(text, crm="bitrix", method=spec.method, crm_code=str(error.get("error", "")))


class ProductRowReader:
    """Product rows of many deals per command; the command size adapts to rows per deal."""

    def __init__(self, client: BitrixClient) -> None:
        self.client = client
        self.deals_seen = 0
        self.rows_seen = 0

    def _deals_per_command(self) -> int:
        if self.deals_seen < 20:
            return 25
        per_deal = max(self.rows_seen / self.deals_seen, 0.2)
        return max(1, min(250, int(ROWS_PER_COMMAND_TARGET / (per_deal * 1.25))))

    def rows_for(self, deal_ids: list[str]) -> dict[str, list[dict]]:
        """deal id -> its product rows, for every id given (deals without rows map to [])."""
        by_deal: dict[str, list[dict]] = {d: [] for d in deal_ids}
        size = self._deals_per_command()
        pending: list[tuple[list[str], int]] = [(deal_ids[i:i + size], 0)
                                                for i in range(0, len(deal_ids), size)]
        while pending:
            wave, pending = pending[:BATCH_LIMIT], pending[BATCH_LIMIT:]
            commands = {
                f"r{n}": ("crm.item.productrow.list",
                          {"filter": {"=ownerType": "D", "=ownerId": ids}, "order": {"id": "asc"},
                           "start": start})
                for n, (ids, start) in enumerate(wave)
            }
            res = self.client.batch(commands)
            if res.errors:
                label, err = next(iter(res.errors.items()))
                raise CrmRequestRejected(str(err.get("error_description") or "error"), crm="bitrix",
                                         method="crm.item.productrow.list", crm_code=str(err.get("error", "")))
            for n, (ids, _start) in enumerate(wave):
                for row in _rows(res.result.get(f"r{n}"), "productRows"):
                    owner = str(row.get("ownerId", ""))
                    if owner in by_deal:
                        by_deal[owner].append(row)
                        self.rows_seen += 1
                if f"r{n}" in res.next:  # more than a page for this group of deals
                    pending.append((ids, int(res.next[f"r{n}"])))
        self.deals_seen += len(deal_ids)
        return by_deal


def since_filter(cursor_value: str | None, parse: Callable) -> dict[str, str]:
    """`>=DATE_MODIFY` a little behind the cursor (LAG_SECONDS), in the portal's own offset."""
    if not cursor_value:
        return {}
    moment = parse(cursor_value, field="cursor")
    return {">=DATE_MODIFY": (moment - timedelta(seconds=LAG_SECONDS)).isoformat()}
