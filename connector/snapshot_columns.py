"""The local snapshot (SQLite or PostgreSQL, queries in connector.store.columns) read as columns for
the columnar evaluation: purchases (day, amount, currency are columns of their own) and their line
items fetched in chunks, never a Customer object per customer. A customer's object is made only
when the plan asks for it (`SnapshotCustomers`).

The figures equal playbooks.columns.purchase_columns over State.customers() to the bit: the same
purchases counted (dated on or before today, amount above 0), in the same (date, id) order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

import numpy as np

from connector.model import Customer, LineItem, Purchase
from connector.store import columns as queries
from playbooks.columns import PurchaseColumns

CHUNK = 10_000  # rows fetched at a time: a chunk's tuples are let go once they are arrays (50,000: +14 MB peak, no faster)
EPOCH = date(1970, 1, 1).toordinal()
_scan = json.JSONDecoder().scan_once  # json.loads without its checks: the snapshot's JSON is our own compact text


def parse(text: str):
    """A stored JSON text (written by the state itself, without leading spaces) as Python values."""
    return _scan(text, 0)[0]

def ordinals(days: Sequence[str]) -> np.ndarray:
    """ISO days ("2026-06-15") as date ordinals, in bulk."""
    return np.array(days, dtype="datetime64[D]").astype(np.int64) + EPOCH


@dataclass
class SnapshotColumns:
    """PurchaseColumns of the snapshot plus what the columns of a purchase carry for the metrics."""

    cols: PurchaseColumns
    nps: np.ndarray  # each counted purchase's answer (the deal's, else the posted one), -1 without
    ref: np.ndarray  # each counted purchase's number in the snapshot (its line items are read by it)


def read_purchases(db, account: str, today: date, currency: str, rates: Mapping[str, float],
                   *, paid_field: str | None = None, answers: Mapping[str, int] | None = None) -> SnapshotColumns:
    """Every customer with a purchase in the snapshot, in id order, and its counted purchases."""
    from playbooks.bonus import parse_paid

    answers = answers or {}
    ids: list[str] = []
    owners, days, amounts, paid, nps, refs = [], [], [], [], [], []
    t = today.toordinal()
    factor_of: dict[str | None, float] = {}
    paid_of = dict(queries.paid_values(db, account, paid_field)) if paid_field else {}
    for chunk in queries.purchase_rows(db, account, CHUNK):
        cid, day, amount, cur, score, pid, ref = zip(*chunk, strict=True)
        del chunk
        who = np.array(cid, dtype=object)  # rows come grouped by customer: a new one where the id changes
        new = np.empty(len(who), dtype=bool)
        new[0] = not ids or who[0] != ids[-1]
        np.not_equal(who[1:], who[:-1], out=new[1:])
        owner = len(ids) - 1 + np.cumsum(new)
        ids.extend(who[new].tolist())
        d = ordinals(day)
        a = np.array(amount, dtype=np.float64)
        keep = (d <= t) & (a > 0)
        for c in set(cur) - factor_of.keys():
            factor_of[c] = 1.0 if c == currency or not c else rates.get(c, np.nan)
        factor = np.array([factor_of[c] for c in cur], dtype=np.float64)
        owners.append(owner[keep])
        refs.append(np.array(ref, dtype=np.int64)[keep])
        days.append(d[keep])
        amounts.append((a * factor)[keep])
        kept = np.flatnonzero(keep).tolist()
        if paid_field:
            p = np.zeros(len(kept))
            for j, k in enumerate(kept) if paid_of else ():
                if (text := paid_of.get(pid[k])) is not None:
                    value = parse_paid(text)
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
    return SnapshotColumns(cols=cols, nps=join(nps, np.int64), ref=join(refs, np.int64))


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

    @contextmanager
    def reopened(self) -> Iterator[SnapshotCustomers]:
        """The same customers read over a new connection to the state (a forked child's own), closed after."""
        from types import SimpleNamespace

        from connector.store.engine import connect

        db = connect(self.state.path, timeout=30)
        try:
            yield SnapshotCustomers(SimpleNamespace(db=db), self.account, self.ids, self.answers)
        finally:
            db.close()

    def prefetch(self, indices: Sequence[int]) -> None:
        self._ready.update(self._read(indices))

    def _read(self, indices: Sequence[int]) -> dict[int, Customer]:
        from connector.feedback import with_answers

        at = {self.ids[i]: i for i in indices}
        found = read_customers(self.state.db, self.account, list(at))
        return {at[c.id]: c for c in with_answers((found[cid] for cid in at), self.answers)}


def read_customers(db, account: str, ids: Sequence[str]) -> dict[str, Customer]:
    """Customers by id with their purchases in (date, id) order, as State.customers(lean=True) makes
    them, without its shared-value caches: a batch is planned and let go, never held."""
    days: dict[str, date] = {}

    def day(text: str | None) -> date | None:
        if not text:
            return None
        found = days.get(text)
        if found is None:
            found = days[text] = date.fromisoformat(text)
        return found

    lines: dict[tuple, LineItem] = {}  # most lines repeat (one product, quantity and price): made once

    def line(i: dict) -> LineItem:
        key = (i["product_id"], i["name"], i["quantity"], i["price"], i.get("category"), i.get("discount", 0.0))
        found = lines.get(key)
        if found is None or type(found.quantity) is not type(key[2]) or type(found.price) is not type(key[3]):
            found = lines[key] = LineItem(*key)
        return found

    bought: dict[str, list[Purchase]] = {}
    cards: dict[str, str] = {}
    for found, found_cards in queries.purchases_and_cards(db, account, ids):
        for cid, text in found:
            d = parse(text)
            items = tuple(map(line, d["items"]))
            fields = d.get("fields")
            bought.setdefault(cid, []).append(Purchase(
                d["id"], cid if cid == d["customer_id"] else d["customer_id"], day(d["date"]), d["amount"],
                d["currency"], items, d["manager_id"], "" if items else d["title"],
                MappingProxyType(fields) if fields else None, d.get("nps"), d.get("referral_code") or "",
                d.get("promo", "")))
        cards.update(found_cards)
    out: dict[str, Customer] = {}
    for cid in ids:
        purchases = bought.get(cid, [])
        purchases.sort(key=lambda p: (p.date, p.id))
        text = cards.get(cid)
        if text is None:  # a deal whose contact was not pulled: the history is kept (State._customer)
            out[cid] = Customer(id=cid, purchases=tuple(purchases))
            continue
        d = parse(text)
        out[cid] = Customer(
            id=d["id"], name=d["name"], kind=d["kind"], emails=tuple(d["emails"]), phones=tuple(d["phones"]),
            birthday=day(d["birthday"]), manager_id=d["manager_id"], tags=frozenset(d["tags"]),
            fields=MappingProxyType(d["fields"]), purchases=tuple(purchases),
            last_contact_activity=day(d["last_contact_activity"]), created=day(d.get("created")))
    return out

def read_items(db, account: str, snap: SnapshotColumns):
    """The line items of the counted purchases (playbooks.columnar_learn.ItemColumns), put in the
    order facts.learn_shop walks them (the purchases' order, then each purchase's listed order).

    Each line item row names its text in line_texts (migration 9), parsed once however often it
    repeats (one product, quantity and price)."""
    from playbooks.columnar_learn import ItemColumns

    by_row = np.argsort(snap.ref)
    rows_sorted = snap.ref[by_row]
    keys: dict[str, int] = {}
    names: dict[str, int] = {}
    categories: dict[str | None, int] = {None: 0, "": 0}
    texts = dict(queries.line_texts(db, account))
    parsed: dict[int, tuple] = {}  # a line's number -> (product key or -1, name, quantity, category)

    def parse(number: int) -> tuple:
        i = json.loads(texts[number])
        pid, name = i.get("product_id"), i.get("name")
        k = pid or name
        found = parsed[number] = (keys.setdefault(k, len(keys)) if k else -1, names.setdefault(name, len(names)),
                                  float(i.get("quantity", 1.0)), categories.setdefault(i.get("category"), len(categories) - 1))
        return found

    places, positions, keyed, named, sorts, quantities = [], [], [], [], [], []
    for chunk in queries.item_rows(db, account, CHUNK):
        ref, place, number = zip(*chunk, strict=True)
        del chunk
        distinct, line_of = np.unique(np.array(number, dtype=np.int64), return_inverse=True)
        lines = [parsed.get(n) or parse(n) for n in distinct.tolist()]  # a few hundred texts for 10,000 rows
        k, name_of, qty, category_of = (np.array(x)[line_of] for x in zip(*lines, strict=True))
        ask = np.array(ref, dtype=np.int64)
        at = np.minimum(np.searchsorted(rows_sorted, ask), max(len(rows_sorted) - 1, 0))
        counted = rows_sorted[at] == ask if len(rows_sorted) else np.zeros(len(ask), dtype=bool)
        keep = counted & (k >= 0)
        positions.append(by_row[at[keep]] if len(rows_sorted) else np.zeros(0, dtype=np.int64))
        places.append(np.array(place, dtype=np.int64)[keep])
        keyed.append(k[keep].astype(np.int64))
        named.append(name_of[keep].astype(np.int64))
        sorts.append(category_of[keep].astype(np.int64))
        quantities.append(qty[keep].astype(np.float64))
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
    position, place, key, name_of, category_of = (join(x) for x in (positions, places, keyed, named, sorts))
    quantity = np.concatenate(quantities) if quantities else np.zeros(0)
    order = np.lexsort((place, position))
    position, key, name_of, category_of, quantity = (a[order] for a in (position, key, name_of, category_of, quantity))
    # each product's first line in walking order names it; its first line with a category gives that
    key_names, key_cats = list(names), [None, *(c for c in categories if c)]
    all_keys = list(keys)
    present, first = np.unique(key, return_index=True)
    used = {int(k): n for k, n in zip(present.tolist(), first.tolist(), strict=True)}
    with_cat = np.flatnonzero(category_of > 0)
    cat_keys, cat_first = np.unique(key[with_cat], return_index=True)
    first_cat = dict(zip(cat_keys.tolist(), category_of[with_cat][cat_first].tolist(), strict=True))
    pairs = np.unique(key[with_cat] * (len(key_cats) + 1) + category_of[with_cat])
    seen_cats: dict[int, set] = {}
    for code in pairs.tolist():
        seen_cats.setdefault(code // (len(key_cats) + 1), set()).add(key_cats[code % (len(key_cats) + 1)])
    # products renumbered in the order they are first met (dense, only those of counted purchases)
    met = sorted(used, key=used.__getitem__)
    renumber = np.full(len(all_keys), -1, dtype=np.int64)
    renumber[np.array(met, dtype=np.int64)] = np.arange(len(met))
    cols = snap.cols
    owner = cols.owner
    return ItemColumns(owner=owner[position] if len(position) else position, purchase=position,
                       day=cols.day[position] if len(position) else position, key=renumber[key], quantity=quantity,
                       keys=[all_keys[k] for k in met], names=[key_names[int(name_of[used[k]])] for k in met],
                       categories=[key_cats[first_cat[k]] if k in first_cat else None for k in met],
                       key_categories=[seen_cats.get(k, set()) for k in met])


def read_birthdays(db, account: str, ids: list[str]) -> np.ndarray:
    """Each customer's birthday as month * 100 + day (0: none known), in the order of `ids`."""
    at = {c: i for i, c in enumerate(ids)}
    out = np.zeros(len(ids), dtype=np.int64)
    for cid, day in queries.birthdays(db, account):
        i = at.get(cid)
        if i is not None and day:
            out[i] = int(day[5:7]) * 100 + int(day[8:10])
    return out
