"""The local snapshot read as columns for the columnar evaluation: purchases and their line items
fetched in chunks straight out of SQLite (json_extract does the parsing in C), never a Customer
object per customer. A customer's object is made only when the plan asks for it (`SnapshotCustomers`).

The figures equal playbooks.columns.purchase_columns over State.customers() to the bit: the same
purchases counted (dated on or before today, amount above 0), in the same (date, id) order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from connector.model import Customer
from playbooks.columns import PurchaseColumns

CHUNK = 50_000  # rows fetched at a time: a chunk's tuples are let go once they are arrays
EPOCH = date(1970, 1, 1).toordinal()

_PURCHASES = ("SELECT customer_id, json_extract(data, '$.date'), json_extract(data, '$.amount'), "
              "json_extract(data, '$.currency'), json_extract(data, '$.fields'), json_extract(data, '$.nps'), id "
              "FROM purchases WHERE account=? ORDER BY customer_id, json_extract(data, '$.date'), "
              "json_extract(data, '$.id')")


def ordinals(days: Sequence[str]) -> np.ndarray:
    """ISO days ("2026-06-15") as date ordinals, in bulk."""
    return np.array(days, dtype="datetime64[D]").astype(np.int64) + EPOCH


@dataclass
class SnapshotColumns:
    """PurchaseColumns of the snapshot plus what the columns of a purchase carry for the metrics."""

    cols: PurchaseColumns
    nps: np.ndarray  # each counted purchase's answer (the deal's, else the posted one), -1 without
    with_items: np.ndarray  # per customer: some purchase has line items (None when not read)


def read_purchases(db: sqlite3.Connection, account: str, today: date, currency: str, rates: Mapping[str, float],
                   *, paid_field: str | None = None, answers: Mapping[str, int] | None = None) -> SnapshotColumns:
    """Every customer with a purchase in the snapshot, in id order, and its counted purchases."""
    from playbooks.bonus import parse_paid

    answers = answers or {}
    ids: list[str] = []
    owners, days, amounts, paid, nps = [], [], [], [], []
    t = today.toordinal()
    factor_of: dict[str | None, float] = {}
    rows = db.execute(_PURCHASES, (account,))
    while chunk := rows.fetchmany(CHUNK):
        cid, day, amount, cur, fields, score, pid = zip(*chunk, strict=True)
        del chunk
        owner = np.empty(len(cid), dtype=np.int64)
        last = ids[-1] if ids else None
        for k, c in enumerate(cid):  # rows come grouped by customer
            if c != last:
                ids.append(c)
                last = c
            owner[k] = len(ids) - 1
        d = ordinals(day)
        a = np.array(amount, dtype=np.float64)
        keep = (d <= t) & (a > 0)
        for c in set(cur) - factor_of.keys():
            factor_of[c] = 1.0 if c == currency or not c else rates.get(c, np.nan)
        factor = np.array([factor_of[c] for c in cur], dtype=np.float64)
        owners.append(owner[keep])
        days.append(d[keep])
        amounts.append((a * factor)[keep])
        kept = np.flatnonzero(keep).tolist()
        if paid_field:
            p = np.zeros(len(kept))
            for j, k in enumerate(kept):
                if fields[k]:
                    value = parse_paid(json.loads(fields[k]).get(paid_field))
                    if value and not np.isnan(factor[k]):
                        value = value * (amount[k] * factor[k]) / amount[k]
                    p[j] = value
            paid.append(p)
        nps.append(np.array([score[k] if score[k] is not None else answers.get(pid[k], -1) for k in kept]
                            if answers or any(s is not None for s in score) else np.full(len(kept), -1),
                            dtype=np.int64))
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    start = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=len(ids))))).astype(np.int64)
    join = lambda parts, kind: np.concatenate(parts) if parts else np.zeros(0, dtype=kind)  # noqa: E731
    cols = PurchaseColumns(ids=ids, start=start, day=join(days, np.int64), amount=join(amounts, np.float64),
                           paid=join(paid, np.float64) if paid_field else None)
    return SnapshotColumns(cols=cols, nps=join(nps, np.int64), with_items=np.zeros(len(ids), dtype=bool))


class SnapshotCustomers(Sequence[Customer]):
    """The snapshot's customers in the columns' order, each read from SQLite when asked for.

    `prefetch(indices)` reads the customers about to be asked for in batches (one query per 500),
    so the plan's due customers cost a few hundred queries, not one each; the answers' posted
    scores are put on the purchases as connector.feedback.with_answers does."""

    def __init__(self, state, account: str, ids: list[str], answers: Mapping[str, int] | None = None) -> None:
        self.state, self.account, self.ids = state, account, ids
        self.answers = answers or {}
        self._ready: dict[int, Customer] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        found = self._ready.pop(i, None)
        if found is None:
            found = self._read([i])[i]
        return found

    def __iter__(self) -> Iterator[Customer]:
        from connector.feedback import with_answers

        return with_answers(self.state.customers(self.account, lean=True), self.answers)

    def prefetch(self, indices: Sequence[int]) -> None:
        self._ready.update(self._read(indices))

    def _read(self, indices: Sequence[int]) -> dict[int, Customer]:
        from connector.feedback import with_answers

        at = {self.ids[i]: i for i in indices}
        return {at[c.id]: c for c in with_answers(self.state.customers(self.account, at, lean=True), self.answers)}


_ITEMS = ("SELECT p.customer_id, p.rowid, json_extract(p.data, '$.date'), json_extract(j.value, '$.product_id'), "
          "json_extract(j.value, '$.name'), json_extract(j.value, '$.quantity'), json_extract(j.value, '$.category') "
          "FROM purchases p, json_each(p.data, '$.items') j WHERE p.account=? AND json_extract(p.data, '$.amount')>0 "
          "AND json_extract(p.data, '$.date')<=? ORDER BY p.customer_id, json_extract(p.data, '$.date'), "
          "json_extract(p.data, '$.id'), j.key")


def read_items(db: sqlite3.Connection, account: str, today: date, ids: list[str]):
    """The line items of the counted purchases (playbooks.columnar_learn.ItemColumns), in the order
    facts.learn_shop walks them; also who has line items on any purchase (the shop learns from those)."""
    from playbooks.columnar_learn import ItemColumns

    at = {c: i for i, c in enumerate(ids)}
    index: dict[str, int] = {}
    keys: list[str] = []
    names: list[str] = []
    categories: list[str | None] = []
    key_categories: list[set] = []
    owners, purchases, days, keyed, quantities = [], [], [], [], []
    number, last_row = -1, None
    rows = db.execute(_ITEMS, (account, today.isoformat()))
    while chunk := rows.fetchmany(CHUNK):
        owner, purchase, key = [], [], []
        day, qty = [], []
        for cid, rowid, d, pid, name, q, category in chunk:
            k = pid or name
            if not k:
                continue
            if rowid != last_row:
                number += 1
                last_row = rowid
            i = index.get(k)
            if i is None:
                i = index[k] = len(keys)
                keys.append(k)
                names.append(name)
                categories.append(None)
                key_categories.append(set())
            if category:
                if categories[i] is None:
                    categories[i] = category
                key_categories[i].add(category)
            owner.append(at[cid])
            purchase.append(number)
            key.append(i)
            day.append(d)
            qty.append(q)
        del chunk
        owners.append(np.array(owner, dtype=np.int64))
        purchases.append(np.array(purchase, dtype=np.int64))
        keyed.append(np.array(key, dtype=np.int64))
        days.append(ordinals(day) if day else np.zeros(0, dtype=np.int64))
        quantities.append(np.array(qty, dtype=np.float64))
    join = lambda parts, kind: np.concatenate(parts) if parts else np.zeros(0, dtype=kind)  # noqa: E731
    return ItemColumns(owner=join(owners, np.int64), purchase=join(purchases, np.int64), day=join(days, np.int64),
                       key=join(keyed, np.int64), quantity=join(quantities, np.float64), keys=keys, names=names,
                       categories=categories, key_categories=key_categories)


def read_birthdays(db: sqlite3.Connection, account: str, ids: list[str]) -> np.ndarray:
    """Each customer's birthday as month * 100 + day (0: none known), in the order of `ids`."""
    at = {c: i for i, c in enumerate(ids)}
    out = np.zeros(len(ids), dtype=np.int64)
    rows = db.execute("SELECT id, json_extract(data, '$.birthday') FROM customers WHERE account=? "
                      "AND json_extract(data, '$.birthday') IS NOT NULL", (account,))
    for cid, day in rows:
        i = at.get(cid)
        if i is not None and day:
            out[i] = int(day[5:7]) * 100 + int(day[8:10])
    return out
