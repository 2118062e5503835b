"""Per-customer figures as columns: the counted purchases of every customer in flat numpy arrays,
and each figure of playbooks.facts (purchases, spend, first and last purchase, rhythm) computed
for all customers at once instead of in a Python loop per customer.

It gives the same numbers as facts.CustomerFacts to the last bit: sums add in the same order as
Python's `sum()` does on this interpreter (plain left to right before 3.12, Neumaier's
compensated sum from 3.12 on), so a quantile edge or a rounding never falls differently.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import chain

import numpy as np

from connector.model import Customer
from playbooks.facts import convert_amount

COMPENSATED_SUM = sys.version_info >= (3, 12)  # CPython's sum() of floats (gh-100425)


@dataclass
class PurchaseColumns:
    """Counted purchases (dated on or before today, amount above 0) of customers sorted by id.

    Customer i owns purchases start[i]:start[i + 1], in (date, purchase id) order as facts
    sorts them; `amount` is in the playbook currency, NaN where the currency has no rate.
    """

    ids: list[str]
    start: np.ndarray  # int64, len(ids) + 1
    day: np.ndarray  # int64 date ordinals
    amount: np.ndarray  # float64
    customers: list[Customer] | None = None  # kept when the plan needs them
    paid: np.ndarray | None = None  # bonuses paid on each purchase (playbook currency), when bonuses are on

    @property
    def owner(self) -> np.ndarray:
        """The customer index of every purchase."""
        return np.repeat(np.arange(len(self.ids)), np.diff(self.start))

    def pieces(self) -> Iterator[tuple[int, int, PurchaseColumns]]:
        """(first, past-last customer, their columns as views; `ids` only counts them) of consecutive
        customers holding about PURCHASES_AT_ONCE purchases each: a figure made per customer from
        per-purchase temporaries (owners, masks, copies) makes them a piece at a time - at 20M purchases
        they were 2 GB at once."""
        n, start = len(self.ids), self.start
        lo = 0
        while lo < n:
            hi = min(max(int(np.searchsorted(start, start[lo] + PURCHASES_AT_ONCE, side="right")) - 1, lo + 1), n)
            a, b = int(start[lo]), int(start[hi])
            yield lo, hi, PurchaseColumns(ids=range(hi - lo), start=start[lo:hi + 1] - a, day=self.day[a:b],
                                          amount=self.amount[a:b],
                                          paid=None if self.paid is None else self.paid[a:b])
            lo = hi


PURCHASES_AT_ONCE = 1 << 20


def purchase_columns(customers: Iterable[Customer], today: date, currency: str,
                     rates: Mapping[str, float], *, keep_customers: bool = False,
                     paid_field: str | None = None) -> PurchaseColumns:
    """The columns of `customers` (one pass; no per-customer object is kept unless asked);
    with `paid_field`, the bonuses paid on each purchase too (playbooks.bonus.rows)."""
    from playbooks.bonus import parse_paid

    people = sorted(customers, key=lambda c: c.id)
    days: list[int] = []
    amounts: list[float] = []
    paid: list[float] = []
    start = [0]
    nan = float("nan")
    for c in people:
        counted = sorted((p for p in c.purchases if p.date <= today and p.amount > 0), key=lambda p: (p.date, p.id))
        for p in counted:
            days.append(p.date.toordinal())
            a = convert_amount(p, currency, rates)
            amounts.append(nan if a is None else float(a))
            if paid_field:
                value = parse_paid(p.fields.get(paid_field)) if p.fields else 0.0
                paid.append(value * a / p.amount if value and a is not None else value)
        start.append(len(days))
    return PurchaseColumns(ids=[c.id for c in people], start=np.array(start, dtype=np.int64),
                           day=np.array(days, dtype=np.int64), amount=np.array(amounts, dtype=np.float64),
                           customers=people if keep_customers else None,
                           paid=np.array(paid, dtype=np.float64) if paid_field else None)


def group_sum(values: np.ndarray, owner: np.ndarray, groups: int) -> np.ndarray:
    """Per-group sums of `values` (grouped contiguously, in order), added as Python's sum() adds."""
    if not COMPENSATED_SUM:
        return np.bincount(owner, weights=values, minlength=groups)  # sequential, left to right
    return _neumaier(values, owner, groups)


def _neumaier(values: np.ndarray, owner: np.ndarray, groups: int) -> np.ndarray:
    """CPython 3.12's sum(): Neumaier's compensated sum, vectorised over groups position by position."""
    total = np.zeros(groups)
    comp = np.zeros(groups)
    if not len(values):
        return total
    counts = np.bincount(owner, minlength=groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    order = np.argsort(-counts, kind="stable")  # the groups still adding at step k are a prefix
    descending = -counts[order]  # ascending
    for k in range(int(-descending[0])):
        live = order[:int(np.searchsorted(descending, -k, side="left"))]
        x = values[starts[live] + k]
        f = total[live]
        t = f + x
        comp[live] += np.where(np.abs(f) >= np.abs(x), (f - t) + x, (x - t) + f)
        total[live] = t
    fix = (comp != 0) & np.isfinite(comp)
    total[fix] += comp[fix]
    return total


def round_column(values, digits: int) -> np.ndarray:
    """[round(v, digits) for v in values] on the whole column: round() gives the double nearest to the
    decimal k / 10^digits, k the exact value times 10^digits rounded half to even - which is
    rint(v * 10^digits) / 10^digits wherever v * 10^digits is not within rounding of a half (those
    few, and anything not finite or too large, go through round() itself)."""
    values = np.asarray(values, dtype=float)
    scale = 10.0 ** digits
    with np.errstate(all="ignore"):
        y = values * scale
        sure = np.abs(np.abs(y - np.floor(y)) - 0.5) > 8 * np.spacing(np.abs(y))
        sure &= np.isfinite(y) & (np.abs(y) < 2.0 ** 52)
        out = np.rint(y) / scale
    for i in np.flatnonzero(~sure).tolist():
        out[i] = round(float(values[i]), digits)
    return out


def python_sum(values: np.ndarray) -> float:
    """sum() over a column, exactly as Python adds the same list: one sum() over the numbers, made
    65,536 at a time (the whole list of 5M floats was 160 MB, the peak of a 5M-row analyze)."""
    if len(values) <= SUM_PIECE:
        return sum(values.tolist())
    return sum(chain.from_iterable(values[i:i + SUM_PIECE].tolist() for i in range(0, len(values), SUM_PIECE)))


SUM_PIECE = 1 << 16


@dataclass
class Figures:
    """Each customer's facts, as arrays over customers (index = position in PurchaseColumns.ids)."""

    n: np.ndarray  # counted purchases
    known: np.ndarray  # of them with an amount in the playbook currency
    monetary: np.ndarray  # sum of known amounts (0 without any)
    aov: np.ndarray
    first: np.ndarray  # date ordinals; 0 without purchases
    last: np.ndarray
    recency: np.ndarray  # days; -1 without purchases
    median_interval: np.ndarray | None  # days between distinct dates; NaN below two dates


def figures(cols: PurchaseColumns, today: date, *, with_rhythm: bool = False) -> Figures:
    n_cust = len(cols.ids)
    n = np.diff(cols.start)
    known, monetary = np.zeros(n_cust, dtype=np.int64), np.zeros(n_cust)
    rhythm = np.full(n_cust, np.nan) if with_rhythm else None
    for lo, hi, piece in cols.pieces():
        owner = piece.owner
        known_mask = ~np.isnan(piece.amount)
        known[lo:hi] = np.bincount(owner, weights=known_mask, minlength=hi - lo).astype(np.int64)
        monetary[lo:hi] = group_sum(piece.amount[known_mask], owner[known_mask], hi - lo)
        if rhythm is not None:
            rhythm[lo:hi] = median_intervals(piece, owner)
    aov = np.divide(monetary, known, out=np.zeros(n_cust), where=known > 0)
    has = n > 0
    first = np.zeros(n_cust, dtype=np.int64)
    last = np.zeros(n_cust, dtype=np.int64)
    first[has] = cols.day[cols.start[:-1][has]]
    last[has] = cols.day[cols.start[1:][has] - 1]
    recency = np.where(has, today.toordinal() - last, -1)
    return Figures(n=n, known=known, monetary=monetary, aov=aov, first=first, last=last, recency=recency,
                   median_interval=rhythm)


def median_intervals(cols: PurchaseColumns, owner: np.ndarray) -> np.ndarray:
    """statistics.median of the gaps between each customer's distinct purchase dates."""
    n_cust = len(cols.ids)
    out = np.full(n_cust, np.nan)
    same = np.zeros(len(cols.day), dtype=bool)
    same[1:] = (owner[1:] == owner[:-1]) & (cols.day[1:] == cols.day[:-1])
    d_day, d_owner = cols.day[~same], owner[~same]
    if len(d_day) < 2:
        return out
    pair = d_owner[1:] == d_owner[:-1]
    gaps, g_owner = (d_day[1:] - d_day[:-1])[pair], d_owner[1:][pair]
    order = np.lexsort((gaps, g_owner))
    gaps, g_owner = gaps[order], g_owner[order]
    count = np.bincount(g_owner, minlength=n_cust)
    begin = np.concatenate(([0], np.cumsum(count)[:-1]))
    has = count > 0
    mid = begin + count // 2
    odd = has & (count % 2 == 1)
    even = has & (count % 2 == 0)
    out[odd] = gaps[mid[odd]]
    out[even] = (gaps[mid[even] - 1] + gaps[mid[even]]) / 2
    return out
