"""The shop-wide learning (facts.learn_shop) and the replenishment rule's run-outs from line-item
columns: consumption cycles of steady re-buyers, co-purchase counts, product names and categories,
computed in bulk instead of making every customer's facts to learn from them.

Same answers as facts.learn_shop (the tests compare them): the line items come in the order the
reference walks them (customers by id, counted purchases by (date, id), items as listed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np

from connector.model import Product
from playbooks.facts import MAX_PARTNERS, MAX_PRODUCTS_FOR_PAIRS, ShopFacts


@dataclass
class ItemColumns:
    """Line items of counted purchases (those with a product key), in the reference's walking order."""

    owner: np.ndarray  # customer index (position in PurchaseColumns.ids)
    purchase: np.ndarray  # a number per purchase, rising in the walking order
    day: np.ndarray  # date ordinal of the purchase
    key: np.ndarray  # index into `keys` (facts.product_key: product id, else name)
    quantity: np.ndarray  # float64
    keys: list[str]
    names: list[str]  # per key: the first line's name
    categories: list[str | None]  # per key: the first non-empty category
    key_categories: list[set]  # per key: every non-empty category its lines carry


def _entries(items: ItemColumns) -> tuple[np.ndarray, ...]:
    """(owner, key, purchase, day, quantity) per product per purchase, quantities of a purchase summed."""
    if not len(items.key):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, np.zeros(0)
    new = np.ones(len(items.key), dtype=bool)
    # rows of one purchase are contiguous; group (purchase, key) by sorting keys within each purchase
    order = np.lexsort((items.key, items.purchase))
    p, k = items.purchase[order], items.key[order]
    new[1:] = (p[1:] != p[:-1]) | (k[1:] != k[:-1])
    group = np.cumsum(new) - 1
    # sums in each purchase's listed order (a stable sort keeps it): left to right from 0.0, as dict.get adds
    qty = np.bincount(group, weights=items.quantity[order])
    first = order[new]
    return items.owner[first], items.key[first], items.purchase[first], items.day[first], qty


def learn_columns(items: ItemColumns, shop: ShopFacts, catalogue: Mapping[str, Product] | None) -> None:
    """facts.learn_shop from the columns (the rules have said what they want in `shop` first)."""
    cycle = shop.cycle_learning
    shop.catalogue = dict(catalogue or {})
    shop.catalogue_has_cycles = any(p.cycle_days for p in shop.catalogue.values())
    for i, key in enumerate(items.keys):
        shop.names.setdefault(key, items.names[i])
        if items.categories[i]:
            shop.categories.setdefault(key, items.categories[i])
    owner, key, purchase, day, qty = _entries(items)
    if cycle is not None:
        _learn_cycles(items, shop, owner, key, purchase, day, qty)
    if shop.pairs_wanted:
        _learn_pairs(items, shop, owner, key)


def _learn_cycles(items, shop, owner, key, purchase, day, qty) -> None:
    cycle = shop.cycle_learning
    order = np.lexsort((purchase, key, owner))  # each (customer, product) in purchase order
    o, k, d, q = owner[order], key[order], day[order], qty[order]
    same = (o[1:] == o[:-1]) & (k[1:] == k[:-1])
    gap = d[1:] - d[:-1]
    take = same & (gap > 0)
    interval = gap[take] / np.maximum(q[:-1][take], 1e-9)
    g_owner, g_key = o[1:][take], k[1:][take]
    if not len(interval):
        shop.cycles, shop.cycle_customers = {}, {}
        return
    pair_new = np.ones(len(interval), dtype=bool)
    pair_new[1:] = (g_owner[1:] != g_owner[:-1]) | (g_key[1:] != g_key[:-1])
    pid = np.cumsum(pair_new) - 1
    count = np.bincount(pid)
    srt = np.lexsort((interval, pid))  # each pair's intervals sorted
    vals = interval[srt]
    begin = np.concatenate(([0], np.cumsum(count)[:-1]))
    mid = begin + count // 2
    median = np.where(count % 2 == 1, vals[mid], (vals[np.maximum(mid - 1, 0)] + vals[mid]) / 2)
    lo, hi = vals[begin], vals[begin + count - 1]
    steady = (count >= 2) & ((hi - lo) / median <= cycle.max_spread)
    pair_key = g_key[pair_new]
    learned_keys = np.unique(pair_key[steady])
    cycles, customers = {}, {}
    for kk in learned_keys.tolist():
        mine = steady & (pair_key == kk)
        values = np.sort(median[mine])
        obs = int(count[mine].sum())
        if len(values) >= cycle.min_customers and obs >= cycle.min_observations:
            n = len(values)
            middle = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
            cycles[items.keys[kk]] = float(middle)
            customers[items.keys[kk]] = n
    shop.cycles, shop.cycle_customers = cycles, customers


def _learn_pairs(items: ItemColumns, shop: ShopFacts, owner: np.ndarray, key: np.ndarray) -> None:
    from scipy import sparse

    if not len(key):
        shop.co_purchases = {}
        return
    rank = np.empty(len(items.keys), dtype=np.int64)
    rank[np.array(sorted(range(len(items.keys)), key=items.keys.__getitem__), dtype=np.int64)] = \
        np.arange(len(items.keys))
    by_rank = np.array(sorted(range(len(items.keys)), key=items.keys.__getitem__), dtype=np.int64)
    pairs = np.unique(owner * len(items.keys) + rank[key])  # each customer's distinct products, by name order
    p_owner, p_rank = pairs // len(items.keys), pairs % len(items.keys)
    new = np.ones(len(pairs), dtype=bool)
    new[1:] = p_owner[1:] != p_owner[:-1]
    place = np.arange(len(pairs)) - np.maximum.accumulate(np.where(new, np.arange(len(pairs)), 0))
    n_keys = np.bincount(p_owner)[p_owner]
    take = (place < MAX_PRODUCTS_FOR_PAIRS) & (n_keys > 1)
    m = sparse.csr_matrix((np.ones(int(take.sum()), dtype=np.int64), (p_owner[take], p_rank[take])),
                          shape=(int(owner.max()) + 1, len(items.keys)))
    co = (m.T @ m).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    out = {}
    for r in np.flatnonzero(np.diff(co.indptr)).tolist():
        a, b = co.indptr[r], co.indptr[r + 1]
        partners = sorted(((items.keys[by_rank[c]], int(v)) for c, v in
                           zip(co.indices[a:b].tolist(), co.data[a:b].tolist(), strict=True)),
                          key=lambda kv: (-kv[1], kv[0]))[:MAX_PARTNERS]
        out[items.keys[by_rank[r]]] = partners
    shop.co_purchases = out


def runout_candidates(items: ItemColumns, cycles: list[list[float]], days_before: int, fire_within_days: int,
                      today: date, customers: int) -> np.ndarray:
    """Who could get a replenishment reminder today: some product bought with a cycle whose run-out
    reminder (purchase day + cycle x quantity - days_before) falls in the firing window. `cycles`:
    per product (ItemColumns.keys) every cycle its lines could get. A superset of
    ReplenishmentRule.plan (it looks at every purchase of a product, not only the last)."""
    owner, key, _purchase, day, qty = _entries(items)
    out = np.zeros(customers, dtype=bool)
    if not len(key):
        return out
    for j in range(max((len(o) for o in cycles), default=0)):
        c = np.array([o[j] if j < len(o) else np.nan for o in cycles])[key]
        has = ~np.isnan(c)
        lasts = np.rint(c[has] * np.maximum(qty[has], 0.0)).astype(np.int64)
        late = today.toordinal() - (day[has] + lasts - days_before)
        fire = (late >= 0) & (late <= fire_within_days)
        out[owner[has][fire]] = True
    return out
