"""The transactions CSV as purchase columns for `analyze`, without a Python object per purchase.

connector.transactions_csv reads and checks every line into per-row arrays; here the rows become
purchases in bulk, by the same rules (an order is one purchase dated by its earliest row, summed
over its rows sorted as the reader sorts them; a row without an order is one purchase, named by
its day, "day#k" for the k-th of a day). Customers with a refund row outside any order (it is
matched to an earlier purchase, one after the other) go through the reader's own code. A customer's object (for the rules) is made only when asked for: `customers[i]`.
The result is playbooks.columns.PurchaseColumns equal, to the bit, to purchase_columns() over
read_transactions() (a test compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np

from connector.model import Customer, Purchase
from connector.transactions_csv import CsvSummary, _Rows, read_rows
from playbooks.columns import PurchaseColumns, round_column


class TransactionTable:
    """Every purchase of the file as arrays; customers in id order (index = position in `ids`)."""

    def __init__(self, rows: _Rows, summary: CsvSummary) -> None:
        self.rows = rows
        ids = rows.customers_ids.values
        by_id = sorted(range(len(ids)), key=ids.__getitem__)
        self.ids = [ids[i] for i in by_id]
        self._interned = np.array(by_id, dtype=np.int64)  # position -> the reader's customer index
        pos = np.empty(len(ids), dtype=np.int64)
        pos[self._interned] = np.arange(len(ids))
        cust = pos[np.frombuffer(rows.cust, dtype=np.int32)]
        self._row_order = np.argsort(cust, kind="stable")  # each customer's rows in file order
        self._row_start = np.concatenate(([0], np.cumsum(np.bincount(cust, minlength=len(ids)))))
        amount = np.frombuffer(rows.amount, dtype=np.float64)
        product = np.frombuffer(rows.product, dtype=np.int32)
        self.with_items = np.bincount(cust[(product > 0) & (amount >= 0)], minlength=len(ids)) > 0
        loose_refund = (np.frombuffer(rows.order, dtype=np.int32) == 0) & (amount < 0)
        slow = np.zeros(len(ids), dtype=bool)
        slow[cust[loose_refund]] = True
        bulk, self._members, p_slow = _bulk_purchases(rows, cust, ~slow[cust])
        bulk = list(bulk)
        del cust
        self._slow = slow | p_slow
        slow_parts = self._slow_purchases(np.flatnonzero(self._slow), summary)
        keep = ~p_slow[bulk[0]] if len(bulk[0]) else np.zeros(0, dtype=bool)
        none = np.full(len(slow_parts[0]), -1)
        tails = [*slow_parts, none, none, slow_parts[-1], none]
        del slow_parts

        def joined(j: int) -> np.ndarray:  # one column of the purchases, its row-sized parts let go at once
            a, bulk[j], b, tails[j] = bulk[j], None, tails[j], None
            return np.concatenate((a[keep], b))

        # (cust, day, amount, currency, rank, begin, end, pos, k): sorted a column at a time, so only
        # three of the nine row-sized columns exist twice at once (the peak of a 5M-row file)
        self.cust, self.day, rank = joined(0), joined(1), joined(4)
        order = np.lexsort((rank, self.day, self.cust))
        del rank
        self.cust, self.day = self.cust[order], self.day[order]
        self.amount, self.currency, self._begin, self._end, pos, self._k = (
            joined(j)[order] for j in (2, 3, 5, 6, 7, 8))
        del order
        # each customer's purchases in the reader's order (Customer.purchases), as indexes into the arrays
        self._reader = np.lexsort((pos, self.cust))
        self._start = np.concatenate(([0], np.cumsum(np.bincount(self.cust, minlength=len(ids)))))
        self._iso: dict[int, str] = {}  # a day's ISO text, the id of its purchases without an order
        summary.customers = len(ids)
        summary.purchases = len(self.cust)

    def in_id_order(self, by_reader: np.ndarray) -> np.ndarray:
        """A column over the reader's customers (rows.customers_ids) put in the table's order (by id)."""
        return by_reader[self._interned]

    def _slow_purchases(self, which: np.ndarray, summary: CsvSummary) -> tuple[np.ndarray, ...]:
        """The reader's own purchases of these customers (refunds matched one after the other)."""
        cust, day, amount, cur, rank = [], [], [], [], []
        intern = self.rows.strings
        for i in which.tolist():
            c = self._customer(i, summary)
            ordered = sorted(c.purchases, key=lambda p: (p.date, p.id))
            for k, p in enumerate(ordered):
                cust.append(i)
                day.append(p.date.toordinal())
                amount.append(p.amount)
                cur.append(intern.index[p.currency])
                rank.append(k)
        return (np.array(cust, dtype=np.int64), np.array(day, dtype=np.int64), np.array(amount, dtype=np.float64),
                np.array(cur, dtype=np.int64), np.array(rank, dtype=np.int64))

    def _customer(self, i: int, summary: CsvSummary) -> Customer:
        if not self._slow[i]:
            return self._made(i)
        rows = self._row_order[self._row_start[i]:self._row_start[i + 1]].tolist()
        return self.rows.customer(int(self._interned[i]), rows, summary)

    def _made(self, i: int) -> Customer:
        """Customer i from the arrays (a customer of the bulk path), the objects the reader would make,
        in its order: same ids, dates, rounded totals, currencies and line items."""
        rows, members = self.rows, self._members
        ci = int(self._interned[i])
        cid, strings = rows.customers_ids.values[ci], rows.strings.values
        mine = self._reader[int(self._start[i]):int(self._start[i + 1])]
        purchases = []
        for day, amount, cur, begin, end, k in zip(*(a[mine].tolist() for a in (
                self.day, self.amount, self.currency, self._begin, self._end, self._k)), strict=True):
            group = members[begin:end].tolist()
            d = rows._date(day)
            order = rows.order[group[0]]
            items = tuple(rows._item(m) for m in group if rows.product[m] and rows.amount[m] >= 0)
            if order:
                pid = strings[order]
            else:
                pid = self._iso.get(day) or self._iso.setdefault(day, d.isoformat())
                pid = pid if k == 1 else f"{pid}#{k}"
            purchases.append(Purchase(id=pid, customer_id=cid, date=d, amount=amount, currency=strings[cur],
                                      items=items))
        name, email, phone = rows.profile.get(ci, ("", "", ""))
        return Customer(id=cid, name=name, emails=(email,) if email else (), phones=(phone,) if phone else (),
                        purchases=tuple(purchases))


    @property
    def customers(self) -> Sequence[Customer]:
        """The customers in id order, each made when asked for (and not kept)."""
        return _Customers(self)

    def last_day(self) -> date | None:
        return date.fromordinal(int(self.day.max())) if len(self.day) else None

    def columns(self, today: date, currency: str, rates: Mapping[str, float], *,
                paid_field: str | None = None) -> PurchaseColumns:
        """playbooks.columns.purchase_columns of the file's customers, from the arrays (a CSV's
        purchases carry no deal fields: no bonuses paid on any)."""
        strings = self.rows.strings.values
        factor = np.array([1.0 if s == currency or not s else rates.get(s, np.nan) for s in strings])
        counted = (self.day <= today.toordinal()) & (self.amount > 0)
        f = factor[self.currency[counted]]
        amount = self.amount[counted]
        amount = np.where(f == 1.0, amount, amount * f)
        start = np.concatenate(([0], np.cumsum(np.bincount(self.cust[counted], minlength=len(self.ids)))))
        return PurchaseColumns(ids=list(self.ids), start=start, day=self.day[counted], amount=amount,
                               paid=np.zeros(len(amount)) if paid_field else None)


class _Customers(Sequence[Customer]):
    def __init__(self, table: TransactionTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self._table._customer(i, CsvSummary())


def _bulk_purchases(rows: _Rows, cust: np.ndarray, fast: np.ndarray) -> tuple[np.ndarray, ...]:
    """(customer, day, rounded total, currency, rank within its day by id, first and past-last member,
    place in the reader's order, k of "day#k"), the members and the customers to redo (none) of the
    purchases of the `fast` rows: grouped by order (else one a row), summed in the reader's order."""
    idx = np.flatnonzero(fast)
    amount = np.frombuffer(rows.amount, dtype=np.float64)[idx]
    qty = np.frombuffer(rows.qty, dtype=np.float64)[idx]
    day = np.frombuffer(rows.day, dtype=np.int32)[idx].astype(np.int64)
    order = np.frombuffer(rows.order, dtype=np.int32)[idx]
    product = np.frombuffer(rows.product, dtype=np.int32)[idx]
    category = np.frombuffer(rows.category, dtype=np.int32)[idx]
    currency = np.frombuffer(rows.currency, dtype=np.int32)[idx].astype(np.int64)
    owner = cust[idx]
    strings = rows.strings.values
    rank_of = np.empty(len(strings), dtype=np.int64)  # a string's place in Python's sort
    rank_of[np.array(sorted(range(len(strings)), key=strings.__getitem__), dtype=np.int64)] = np.arange(len(strings))
    if (order > 0).any():
        key = np.where(order > 0, order.astype(np.int64), -1 - np.arange(len(idx)))
        group = np.unique(key, return_inverse=True)[1]
        del key  # the temporaries go as soon as used: at 5M rows each is 40 MB
        # members sorted as the reader sorts them: product, amount, quantity, category (then file order)
        s = np.lexsort((np.arange(len(idx)), rank_of[category], qty, amount, rank_of[product], group))
        g = group[s]
        del group
    else:  # no orders: each row its own purchase (numbered in file order: any numbering gives the same
        s = np.arange(len(idx))  # purchases, and this one is sorted by customer already)
        g = s
    del category
    heads = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1]))) if len(g) else np.zeros(0, dtype=np.int64)
    total = np.bincount(g, weights=amount[s])  # left to right, as sum() adds
    del g
    rounded = round_column(total, 2)  # Python's round() (numpy's may differ in the last digit)
    del total
    members = idx[s]  # row numbers, each purchase's rows together in the reader's order
    p_day = np.minimum.reduceat(day[s], heads) if len(heads) else np.zeros(0, dtype=np.int64)
    first = s[heads]
    p_cust, p_cur = owner[first], currency[first]
    ends = np.append(heads[1:], len(s)).astype(np.int64)
    # the reader's order of a customer's purchases: day, rows without an order first, order id, then the
    # first row's amount, product and quantity, then where the purchase first appears in the file
    p_order = order[first]
    seen = np.minimum.reduceat(idx[s], heads) if len(heads) else np.zeros(0, dtype=np.int64)
    if p_order.any() or product.any():
        reader = np.lexsort((seen, qty[first], rank_of[product[first]], amount[first], rank_of[p_order], p_order > 0,
                             p_day, p_cust))
    else:  # the keys that are the same for every purchase left out; the amounts sorted only where they decide
        reader = _lexsort_ties((seen, qty[first], amount[first]), (p_day, p_cust))
    position = np.empty(len(reader), dtype=np.int64)
    position[reader] = np.arange(len(reader))
    # a purchase without an order is named by its day, the k-th of that day "day#k" (k from 2)
    loose = p_order[reader] == 0
    key_c, key_d = p_cust[reader], p_day[reader]
    new_group = np.ones(len(reader), dtype=bool)
    new_group[1:] = (key_c[1:] != key_c[:-1]) | (key_d[1:] != key_d[:-1])
    count = np.cumsum(loose)
    before = np.maximum.accumulate(np.where(new_group, np.arange(len(reader)), 0))
    k_sorted = count - np.where(before > 0, count[before - 1], 0)
    k = np.empty(len(reader), dtype=np.int64)
    k[reader] = np.where(loose, k_sorted, 0)
    # the columns order a customer's purchases by (day, id): where a day has several, by their ids
    rank = np.zeros(len(reader), dtype=np.int64)
    starts = np.flatnonzero(new_group)
    ends_g = np.append(starts[1:], len(reader))
    several = ends_g - starts > 1
    if several.any():
        several &= ~_rank_loose_days(rank, reader, new_group, starts, several, p_order, k)
        strings = rows.strings.values
        for lo, hi in zip(starts[several].tolist(), ends_g[several].tolist(), strict=True):
            which = reader[lo:hi]
            ids = [strings[o] if o else _day_id(d, kk) for o, d, kk in
                   zip(p_order[which].tolist(), p_day[which].tolist(), k[which].tolist(), strict=True)]
            by_id = sorted(range(len(ids)), key=ids.__getitem__)
            rank[which[by_id]] = np.arange(len(ids))
    redo = np.zeros(int(cust.max()) + 1 if len(cust) else 0, dtype=bool)
    return (p_cust, p_day, rounded, p_cur, rank, heads, ends, position, k), members, redo


def _lexsort_ties(minor: tuple[np.ndarray, ...], major: tuple[np.ndarray, ...]) -> np.ndarray:
    """np.lexsort(minor + major) where the minor keys (the last of them unique) matter only between rows
    equal in every major key: sorting a million amounts costs 0.35 s, the few ties next to nothing."""
    o = np.lexsort(major)
    if len(o) < 2:
        return o
    same = np.ones(len(o) - 1, dtype=bool)
    for key in major:
        k = key[o]
        same &= k[1:] == k[:-1]
    if not same.any():
        return o
    group = np.cumsum(np.concatenate(([True], ~same))) - 1
    tied = np.bincount(group)[group] > 1
    rows = o[tied]
    o[tied] = rows[np.lexsort((*(key[rows] for key in minor), group[tied]))]
    return o


def _rank_loose_days(rank: np.ndarray, reader: np.ndarray, new_group: np.ndarray, starts: np.ndarray,
                     several: np.ndarray, p_order: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Fill `rank` for the customer-days whose purchases all lack an order (ids "day", "day#2", ...): by
    the ids' string order, which is the order of their suffixes ("" < "#10" < "#2"); which days it did."""
    gid = np.cumsum(new_group) - 1  # the customer-day of each place in the reader's order
    ordered = np.add.reduceat((p_order[reader] > 0).astype(np.int64), starts) > 0
    done = several & ~ordered
    at = np.flatnonzero(done[gid])
    if not len(at):
        return done
    kk = k[reader[at]]
    suffix = ["" if j == 1 else f"#{j}" for j in range(int(kk.max()) + 1)]
    by_text = np.empty(len(suffix), dtype=np.int64)
    by_text[sorted(range(1, len(suffix)), key=suffix.__getitem__)] = np.arange(len(suffix) - 1)
    o = np.lexsort((by_text[kk], gid[at]))
    g = gid[at][o]
    heads = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    rank[reader[at[o]]] = np.arange(len(o)) - np.repeat(heads, np.diff(np.append(heads, len(o))))
    return done


def _day_id(ordinal: int, k: int) -> str:
    d = date.fromordinal(ordinal).isoformat()
    return d if k == 1 else f"{d}#{k}"


def read_transaction_table(path: str | Path, *, default_currency: str = "RUB") -> tuple[TransactionTable, CsvSummary]:
    """The CSV (every line checked by connector.transactions_csv) as a TransactionTable."""
    rows, summary = read_rows(path, default_currency=default_currency)
    return TransactionTable(rows, summary), summary
