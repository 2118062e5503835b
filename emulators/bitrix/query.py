"""Tables, filters, ordering and paging of list methods, sized for a million rows.

Rows stay sorted by ID; `>ID` keyset pages and `=ownerId`-style lookups use bisect and
per-field indexes, and a counted result is cached until the table changes, so the
`start=0,50,100...` pages of one query (fast-bitrix24's get_all) scan the table once.
Doc: settings/how-to-call-rest-api/list-methods-pecularities.md, settings/performance/huge-data.md,
api-reference/crm/deals/crm-deal-list.md (filter prefixes).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .limits import book_list_work as _book
from .protocol import PAGE_SIZE, as_dict, as_float, as_int, as_list, as_yn, parse_datetime

# Field kinds: how a filter value is read and how a value is written out. RAWINT / RAWNUM are
# numbers that legacy methods write as JSON numbers, not strings (product rows).
INT, LINK, STR, MONEY, NUM, DATETIME, DATE, YN, MULTI, RAWINT, RAWNUM = (
    "int", "link", "str", "money", "num", "datetime", "date", "yn", "multi", "rawint", "rawnum")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str
    get: Callable  # row -> raw value (int, float, str, unix time, bool, tuple, None)
    standard: bool = True  # part of `select: ["*"]`
    readonly: bool = False
    index: str | None = None  # name of the table index that serves `=` on this field


class Table:
    """Rows by id plus a sorted id list and optional per-field indexes (value -> sorted ids)."""

    def __init__(self, name: str, indexed: Iterable[str] = ()) -> None:
        self.name = name
        self.rows: dict[int, object] = {}
        self.ids: list[int] = []
        self.version = 0
        self.last_id = 0
        self.indexes: dict[str, dict] = {f: {} for f in indexed}

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        """Rows in id order."""
        rows = self.rows
        return (rows[i] for i in list(self.ids))

    def __contains__(self, row_id: object) -> bool:
        return row_id in self.rows

    def __getitem__(self, row_id: int):
        return self.rows[row_id]

    def get(self, row_id: int, default=None):
        return self.rows.get(row_id, default)

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def insert(self, row_id: int, row, keys: dict | None = None) -> None:
        """Add a row; `keys` holds its indexed values ({"CONTACT_ID": 5})."""
        self.rows[row_id] = row
        if not self.ids or row_id > self.ids[-1]:
            self.ids.append(row_id)
        else:
            insort(self.ids, row_id)
        self.last_id = max(self.last_id, row_id)
        for field, value in (keys or {}).items():
            self._index_add(field, value, row_id)
        self.version += 1

    def delete(self, row_id: int, keys: dict | None = None) -> None:
        self.rows.pop(row_id, None)
        i = bisect_left(self.ids, row_id)
        if i < len(self.ids) and self.ids[i] == row_id:
            del self.ids[i]
        for field, value in (keys or {}).items():
            self._index_remove(field, value, row_id)
        self.version += 1

    def reindex(self, row_id: int, field: str, old, new) -> None:
        if old != new:
            self._index_remove(field, old, row_id)
            self._index_add(field, new, row_id)

    def touch(self) -> None:
        self.version += 1

    def _index_add(self, field: str, value, row_id: int) -> None:
        for v in value if isinstance(value, tuple | list) else (value,):
            bucket = self.indexes[field].setdefault(v, [])
            if not bucket or row_id > bucket[-1]:
                bucket.append(row_id)
            else:
                insort(bucket, row_id)

    def _index_remove(self, field: str, value, row_id: int) -> None:
        for v in value if isinstance(value, tuple | list) else (value,):
            bucket = self.indexes[field].get(v)
            if bucket:
                i = bisect_left(bucket, row_id)
                if i < len(bucket) and bucket[i] == row_id:
                    del bucket[i]


# ---- filters ------------------------------------------------------------------------------

# Longest prefixes first. Doc: api-reference/crm/deals/crm-deal-list.md, user/user-get.md
_PREFIXES = (("!%=", "nlikep"), ("!=%", "nlikep"), (">=", "ge"), ("<=", "le"), ("!@", "ne"),
             ("!=", "ne"), ("=%", "likep"), ("%=", "likep"), ("!%", "nlike"), (">", "gt"),
             ("<", "lt"), ("@", "eq"), ("=", "eq"), ("!", "ne"), ("%", "like"))


def split_key(key: str) -> tuple[str, str]:
    for prefix, op in _PREFIXES:
        if key.startswith(prefix):
            return op, key[len(prefix):]
    return "eq", key


def _coerce(kind: str, value):
    if kind == RAWINT:
        return as_int(value)
    if kind == RAWNUM:
        return as_float(value)
    if kind in (INT, LINK):
        if value in (None, "", False):
            return 0 if kind == LINK else None
        return as_int(value)
    if kind in (MONEY, NUM):
        return as_float(value)
    if kind in (DATETIME, DATE):
        return parse_datetime(value)
    if kind == YN:
        return as_yn(value)
    return "" if value is None else str(value)


def _like_regex(pattern: str) -> re.Pattern:
    parts = (re.escape(p).replace("_", ".") for p in pattern.split("%"))
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _predicate(field: Field, op: str, raw) -> Callable:
    get, kind = field.get, field.kind
    if kind == LINK:
        base = get
        get = lambda r: base(r) or 0  # noqa: E731 - unset links compare as 0
    values = [_coerce(kind, v) for v in (as_list(raw) if isinstance(raw, list | dict) else [raw])]
    if op in ("like", "nlike", "likep", "nlikep"):
        texts = [str(v).lower() for v in values]
        if op in ("like", "nlike"):
            test = lambda x: any(t in x for t in texts)  # noqa: E731
        else:
            regexes = [_like_regex(t) for t in texts]
            test = lambda x: any(rx.match(x) for rx in regexes)  # noqa: E731
        if kind == MULTI:
            hit = lambda r: any(test(str(x).lower()) for x in get(r) or ())  # noqa: E731
        else:
            hit = lambda r: test("" if get(r) is None else str(get(r)).lower())  # noqa: E731
        return hit if op in ("like", "likep") else (lambda r: not hit(r))
    if kind == MULTI:
        wanted = set(values)
        hit = lambda r: not wanted.isdisjoint(get(r) or ())  # noqa: E731
        return hit if op == "eq" else (lambda r: not hit(r))
    if op in ("eq", "ne") and kind == STR:
        # The portal's database compares strings case-insensitively (utf8 *_ci collations).
        base_get = get
        get = lambda r: (base_get(r) or "").lower()  # noqa: E731
        values = [v.lower() for v in values]
    if op in ("eq", "ne"):
        if len(values) == 1:
            v = values[0]
            return (lambda r: get(r) == v) if op == "eq" else (lambda r: get(r) != v)
        s = set(values)
        return (lambda r: get(r) in s) if op == "eq" else (lambda r: get(r) not in s)
    v = values[0] if values else None
    if v is None:
        return lambda r: False
    if op == "gt":
        return lambda r: (x := get(r)) is not None and x > v
    if op == "ge":
        return lambda r: (x := get(r)) is not None and x >= v
    if op == "lt":
        return lambda r: (x := get(r)) is not None and x < v
    return lambda r: (x := get(r)) is not None and x <= v


@dataclass(slots=True)
class Query:
    """A parsed list request: conditions on known fields, order, paging offset."""

    conds: list[tuple[Field, str, object]]
    order: list[tuple[Field, bool]]  # (field, descending)
    start: int
    key: tuple  # hashable identity of filter + order, for the count cache


def field_lookup(fields: dict[str, Field], name: str, fold_case: bool) -> Field | None:
    f = fields.get(name)
    if f is None and fold_case:
        f = fields.get(name.upper()) or fields.get(_ci_key(fields, name))
    return f


def _ci_key(fields: dict[str, Field], name: str) -> str:
    low = name.lower()
    for key in fields:
        if key.lower() == low:
            return key
    return ""


def _freeze(value):
    if isinstance(value, dict):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def parse_query(fields: dict[str, Field], filter_=None, order=None, start=None, *,
                fold_case: bool = True, default_order: str = "ID", default_desc: bool = False) -> Query:
    """Unknown filter and order fields are ignored, as the portal does."""
    conds = []
    for key, value in as_dict(filter_).items():
        op, name = split_key(str(key))
        field = field_lookup(fields, name, fold_case)
        if field is not None:
            conds.append((field, op, value))
    order_list = []
    for name, direction in as_dict(order).items():
        field = field_lookup(fields, str(name), fold_case)
        if field is not None:
            order_list.append((field, str(direction).strip().upper() == "DESC"))
    if not order_list and default_order in fields:
        order_list = [(fields[default_order], default_desc)]
    st = as_int(start, 0) if start not in (None, "") else 0
    st = -1 if st is not None and st < 0 else (st or 0)
    key = (tuple((f.name, op, _freeze(v)) for f, op, v in conds),
           tuple((f.name, d) for f, d in order_list))
    return Query(conds, order_list, st, key)


def _sort_key(get: Callable) -> Callable:
    def key(row):
        v = get(row)
        if v is None:
            return (0, 0)
        if isinstance(v, tuple | list):
            v = tuple(v)
        return (1, v)
    return key


CACHE_MIN_SCAN = 5_000  # rows a query must scan before its result is cached


class QueryEngine:
    """Runs parsed queries over tables; keeps a few counted results until their table changes."""

    def __init__(self, cache_size: int = 8) -> None:
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def run(self, table: Table, q: Query, id_field: str = "ID",
            extra: Callable | None = None) -> tuple[list, int | None, int | None]:
        """Return (rows of the page, total or None, next or None).

        `extra` is one more row predicate that is not a field filter (permissions, owner type).
        """
        candidates, residual = self._candidates(table, q, id_field)
        preds = [_predicate(f, op, v) for f, op, v in residual]
        if extra is not None:
            preds.append(extra)
        rows = table.rows
        by_id = (not q.order) or (len(q.order) == 1 and q.order[0][0].name == id_field)
        desc = bool(q.order) and q.order[0][1]
        if q.start == -1 and by_id:
            # Doc: settings/performance/huge-data.md - no COUNT: `total` 0, no `next`.
            page = []
            seq = reversed(candidates) if desc else candidates
            for rid in seq:
                row = rows.get(rid)
                if row is not None and all(p(row) for p in preds):
                    page.append(row)
                    if len(page) == PAGE_SIZE:
                        break
            _book(PAGE_SIZE, len(page))  # no COUNT: the cost of one page, whatever the list's size
            return page, 0, None
        if not preds and by_id and isinstance(candidates, range_ids):
            total = len(candidates)
            lo = q.start if q.start >= 0 else 0
            if desc:
                chunk = candidates.slice_desc(lo, lo + PAGE_SIZE)
            else:
                chunk = candidates.slice(lo, lo + PAGE_SIZE)
            page = [rows[i] for i in chunk]
        else:
            # Only whole-table scans are worth keeping: caching the many small indexed reads (product
            # rows by owner) would push a million-deal list out of the cache on every batch.
            cacheable = extra is None and isinstance(candidates, range_ids) and len(candidates) > CACHE_MIN_SCAN
            matched = self._matched(table, q, candidates, preds, cacheable, id_field)
            total = len(matched)
            lo = q.start if q.start >= 0 else 0
            page = [rows[i] for i in matched[lo:lo + PAGE_SIZE] if i in rows]
        # Doc: settings/performance/huge-data.md - start >= 0 counts every row the filter matches for
        # `total`, then skips the offset; a keyset call on another order sorts them all
        _book((total if q.start >= 0 else len(candidates)) + max(q.start, 0) + len(page), len(page))
        if q.start == -1:
            return page, 0, None
        nxt = q.start + PAGE_SIZE if q.start + PAGE_SIZE < total else None
        return page, total, nxt

    def _matched(self, table: Table, q: Query, candidates, preds, cacheable: bool, id_field: str) -> list:
        key = (table.name, id(table), table.version, q.key)
        if cacheable:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        rows = table.rows
        if len(q.order) == 1 and q.order[0][0].name == id_field:
            # candidates come in ascending id order already: no sort, no row objects kept
            matched = [i for i in candidates if (r := rows.get(i)) is not None and all(p(r) for p in preds)]
            if q.order[0][1]:
                matched.reverse()
        else:
            matched_rows = [r for i in candidates if (r := rows.get(i)) is not None and all(p(r) for p in preds)]
            for field, desc in reversed(q.order or []):
                matched_rows.sort(key=_sort_key(field.get), reverse=desc)
            matched = [r.id for r in matched_rows]
        if cacheable:
            self._cache[key] = matched
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return matched

    def _candidates(self, table: Table, q: Query, id_field: str):
        """Narrow the scan by the id range and indexed equality filters; return the rest."""
        ids = table.ids
        lo, hi = 0, len(ids)
        residual = []
        best = best_cond = None
        for cond in q.conds:
            field, op, value = cond
            if field.name == id_field and op in ("gt", "ge", "lt", "le") and not isinstance(value, list | dict):
                # a `$result[...]` reference a batch could not resolve reaches the database as text,
                # which it compares as 0 (not documented; the cheap reading: the list's first page)
                v = as_int(value)
                if v is None and isinstance(value, str) and value.startswith("$result"):
                    v = 0
                if v is None:
                    residual.append(cond)
                elif op == "gt":
                    lo = max(lo, bisect_right(ids, v))
                elif op == "ge":
                    lo = max(lo, bisect_left(ids, v))
                elif op == "lt":
                    hi = min(hi, bisect_left(ids, v))
                else:
                    hi = min(hi, bisect_right(ids, v))
                continue
            index_name = field.index or field.name
            if op == "eq" and (field.name == id_field or index_name in table.indexes):
                keys = [_coerce(field.kind, v) for v in as_list(value)] if isinstance(value, list | dict) \
                    else [_coerce(field.kind, value)]
                if field.name == id_field:
                    found = sorted({k for k in keys if k in table.rows})
                else:
                    index = table.indexes[index_name]
                    found = sorted({i for k in keys for i in index.get(k, ())})
                if best is None or len(found) < len(best):
                    if best_cond is not None:
                        residual.append(best_cond)
                    best, best_cond = found, cond
                else:
                    residual.append(cond)  # still checked: cheap on a small candidate set
                continue
            residual.append(cond)
        if best_cond is not None and best_cond[0].kind not in (INT, LINK, RAWINT):
            residual.append(best_cond)  # an id-valued index answers exactly; other kinds are re-checked
        if best is not None:
            lo_id = ids[lo] if lo < len(ids) else None
            hi_id = ids[hi - 1] if 0 < hi <= len(ids) else None
            if lo_id is None or hi_id is None or lo >= hi:
                return [], residual
            return [i for i in best if lo_id <= i <= hi_id], residual
        return range_ids(ids, lo, hi), residual


class range_ids:  # noqa: N801 - behaves like a sequence of ids
    """A view of `ids[lo:hi]` without copying a million-element list."""

    __slots__ = ("ids", "lo", "hi")

    def __init__(self, ids: list[int], lo: int, hi: int) -> None:
        self.ids, self.lo, self.hi = ids, lo, max(lo, hi)

    def __len__(self) -> int:
        return self.hi - self.lo

    def __iter__(self):
        ids = self.ids
        for i in range(self.lo, self.hi):
            yield ids[i]

    def __reversed__(self):
        ids = self.ids
        for i in range(self.hi - 1, self.lo - 1, -1):
            yield ids[i]

    def slice(self, a: int, b: int) -> list[int]:
        return self.ids[self.lo + a:min(self.lo + b, self.hi)]

    def slice_desc(self, a: int, b: int) -> list[int]:
        top = self.hi - a
        return self.ids[max(self.lo, self.hi - b):max(self.lo, top)][::-1]
