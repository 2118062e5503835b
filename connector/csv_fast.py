"""The plain transactions CSV read in bulk: the reader's arrays without a Python loop per line.

A file of plain cells (ASCII, no quotes, spaces, tabs or NULs, no blank line, LF or CRLF line ends,
every line as many cells as the header) with only customer_id, date, amount and quantity among the known
columns - what CDNOW-like exports are - is split once, its distinct dates parsed once each and its
amounts by float() (parse_amount's own first try). Anything else, or anything the checks doubt
(an empty cell, a bad date or amount, a zero quantity), returns None: the line-by-line reader then
reads the file and names the bad line and its fix as always.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from connector.csv_text import Interner as _Interner
from connector.errors import CsvInputError
from connector.forked import started

PLAIN = frozenset(("customer_id", "date", "amount", "quantity"))
MAX_AMOUNT = 1e15
CHUNK = 4 << 20  # bytes of lines split at a time
SPLIT_FROM = 4  # chunks (16 MB, ~400,000 CDNOW rows) from which a forked child splits the second half of
# them: below it the fork and the hand-back of its columns cost about what the second core saves


def plain_rows(path: Path, header: list[str], cols: dict[str, int], sep: str, encoding: str,
               default_currency: str, summary, rows):
    """`rows` (an empty transactions_csv._Rows) filled as _Rows.load fills it, or None to read line by line."""
    if encoding not in ("utf-8", "utf-8-sig") or sep not in ",;|" or not set(cols) <= PLAIN:
        return None
    data = path.read_bytes()  # the file once: its lines are cut from it a chunk at a time, never copied whole
    if not data.isascii() or any(b in data for b in (b'"', b" ", b"\t", b"\0")):
        return None
    at = data.find(b"\n") + 1  # the body's first byte
    if not at or at == len(data) or b"\r" in data[:at].replace(b"\r\n", b"\n"):
        return None
    width, sepb = len(header), sep.encode()
    pieces = []
    while at < len(data):  # a few MB of lines at a time: the cells' bytes objects never all at once
        end = data.rfind(b"\n", at, at + CHUNK) + 1 or data.find(b"\n", at) + 1 or len(data)
        pieces.append((at, end))
        at = end
    mid = (len(pieces) + 1) // 2 if len(pieces) >= SPLIT_FROM else len(pieces)  # the child the smaller half: it hands its back

    def split(few: list[tuple[int, int]]):  # (customer ids in order of first appearance, columns) or None
        known: dict[bytes, int] = {}  # customer id -> interned index
        ordinals: dict[bytes, int] = {}
        parts: list[tuple[np.ndarray, ...]] = []
        for lo, hi in few:
            lines = _lines(data[lo:hi])
            got = None if lines is None else _chunk(lines, width, sepb, cols, known, ordinals)
            if got is None:
                return None
            parts.append(got)
        return list(map(bytes.decode, known)), tuple(np.concatenate([part[k] for part in parts]) for k in range(4))

    child = started(lambda: (split(pieces[mid:]),)) if mid < len(pieces) else None  # the second half: the other core
    try:
        first = split(pieces[:mid])
        answer = child.result() if child is not None and first is not None else None
    finally:
        if child is not None:
            child.close()
    if answer is None and first is not None and mid < len(pieces):  # no fork, or the child failed: here then
        answer = (split(pieces[mid:]),)
    data = b""  # the file let go before its columns are joined
    second = answer[0] if answer else None
    if first is None or (mid < len(pieces) and second is None):
        return None
    ids, (cust, day, amount, qty) = first
    if second is not None:  # the child's customers numbered on from the first half's, in order of appearance
        index = dict(zip(ids, range(len(ids)), strict=True))
        more = second[0]
        new = [cid for cid, at in zip(more, map(index.get, more), strict=True) if at is None]
        index.update(zip(new, range(len(ids), len(ids) + len(new)), strict=True))
        ids += new
        renumber = np.fromiter(map(index.__getitem__, more), dtype=np.int32, count=len(more))
        del index, more, new
        cust, day, amount, qty = (np.concatenate((a, b)) for a, b in zip(
            (cust, day, amount, qty), (renumber[second[1][0]], *second[1][1:]), strict=True))
    del first, second
    lines = len(cust)
    rows.customers_ids = _ReadIds(ids)
    del ids
    cur = rows.strings(default_currency)
    rows.cust, rows.day, rows.amount, rows.qty = (_array(code, column) for code, column in (
        ("i", cust), ("i", day), ("d", amount), ("d", qty)))
    del cust, day, qty
    zeros = bytes(4 * lines)
    rows.product, rows.category, rows.order = array("i", zeros), array("i", zeros), array("i", zeros)
    rows.currency = array("i", np.full(lines, cur, dtype=np.int32).tobytes())
    rows.line = array("i", np.arange(2, lines + 2, dtype=np.int32).tobytes())
    summary.zero_amount_rows = int((amount == 0).sum())
    summary.rows = lines
    return rows


class _ReadIds(_Interner):
    """The customer ids as read in bulk. Their index (id -> number) serves only the line reader's
    interning: made if ever asked for, not held beside the table (at 5M rows a dict of 1.7M ids)."""

    def __init__(self, values: list[str]) -> None:  # not the base's: its index is the property below
        self.values = values
        self._index: dict[str, int] | None = None

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.values)}
        return self._index


def _lines(piece: bytes) -> bytes | None:
    """Whole lines ending in LF: CRLF line ends (Windows, Python's csv.writer) read as LF, as the line
    reader reads them; None at a CR left alone or a blank line (the line reader names it)."""
    if b"\r" in piece:
        piece = piece.replace(b"\r\n", b"\n")
        if b"\r" in piece:
            return None
    if b"\n\n" in piece or piece.startswith(b"\n"):
        return None
    return piece if piece.endswith(b"\n") else piece + b"\n"


def _array(code: str, column: np.ndarray) -> array:
    """The reader's array of a numpy column, copied once."""
    out = array(code)
    out.frombytes(memoryview(np.ascontiguousarray(column)).cast("B"))
    return out


def _chunk(body: bytes, width: int, sepb: bytes, cols: dict[str, int], known: dict[bytes, int],
           ordinals: dict[bytes, int]) -> tuple[np.ndarray, ...] | None:
    """Whole lines: (customer index, day ordinal, amount, quantity) arrays, or None at any doubt. The
    cells are cut from the bytes by their separators' places, never made one object each: the ids and
    dates as fixed-width keys (each distinct one decoded once), the numbers by their digits."""
    from connector.csv_text import parse_date

    raw = np.frombuffer(body + bytes(64), dtype=np.uint8)  # padded for _fixed
    ends = np.flatnonzero(raw == 10)
    seps = np.flatnonzero(raw == sepb[0])
    lines = len(ends)
    if len(seps) != lines * (width - 1):  # a line with more or fewer cells: the reader says which
        return None
    begins = np.concatenate(([0], ends[:-1] + 1))
    if width > 1:  # each line's separators between its own start and end
        seps = seps.reshape(lines, width - 1)
        if not ((seps[:, 0] >= begins) & (seps[:, -1] < ends)).all():
            return None

    def cell(name: str) -> tuple[np.ndarray, np.ndarray]:  # (first byte, length) of a column's cells
        j = cols[name]
        lo = begins if j == 0 else seps[:, j - 1] + 1
        return lo, (ends if j == width - 1 else seps[:, j]) - lo

    found = [cell(name) for name in ("customer_id", "date", "amount")]
    if any(not len(length) or length.min() == 0 for _lo, length in found):  # an empty cell
        return None
    try:
        cust = _interned(raw, *found[0], known, bytes)
        day = _interned(raw, *found[1], ordinals, lambda b: parse_date(b.decode(), 0).toordinal())
        amount = _numbers(body, raw, *found[2])
        qty = _numbers(body, raw, *cell("quantity")) if "quantity" in cols else np.ones(lines)
    except (ValueError, CsvInputError):  # a bad date, amount or quantity
        return None
    for column in (amount, qty):
        if not (np.abs(column) < MAX_AMOUNT).all():  # nan and inf too
            return None
    if (qty == 0).any():
        return None
    return cust, day, amount, qty


def _fixed(raw: np.ndarray, lo: np.ndarray, length: np.ndarray, width: int) -> np.ndarray:
    """The cells as rows of `width` bytes, zero-padded (the file holds no NUL): rows taken from a view of
    every `width` bytes from each place (`raw` ends in 64 zero bytes of padding, so each has as many)."""
    out = np.lib.stride_tricks.sliding_window_view(raw, width)[lo]
    out[np.arange(width) >= length[:, None]] = 0
    return out


def _interned(raw: np.ndarray, lo: np.ndarray, length: np.ndarray, index: dict, value) -> np.ndarray:
    """Each cell's entry in `index` (a new cell text gets value(text), ids their place of first appearance),
    the texts found as distinct fixed-width keys (a cell over 64 bytes: the texts one by one)."""
    width = -(-int(length.max()) // 8) * 8
    if width > 64:
        body = raw.tobytes()
        cells = [body[a:b] for a, b in zip(lo.tolist(), (lo + length).tolist(), strict=True)]
        for text in dict.fromkeys(cells):
            if text not in index:
                index[text] = len(index) if value is bytes else value(text)
        return np.fromiter(map(index.__getitem__, cells), dtype=np.int32, count=len(cells))
    if length.min() == length.max() == 10 and value is not bytes:  # ISO dates: distinct by their digits
        m = _fixed(raw, lo, length, 10)
        digits = np.delete(m, (4, 7), axis=1)
        if (m[:, 4] == 45).all() and (m[:, 7] == 45).all() and ((digits >= 48) & (digits <= 57)).all():
            keys = (digits.astype(np.int64) - 48) @ (10 ** np.arange(7, -1, -1))
            distinct, first, back = np.unique(keys, return_index=True, return_inverse=True)
            texts = [raw[a:a + 10].tobytes() for a in lo[first].tolist()]
            return _codes(texts, first, back, index, value)
    keys = _fixed(raw, lo, length, width)
    keys = keys.view(">u8").ravel() if width == 8 else keys.view(f"S{width}").ravel()
    distinct, first, back = np.unique(keys, return_index=True, return_inverse=True)
    return _codes(distinct.view(f"S{width}").tolist(), first, back, index, value)


def _codes(texts: list[bytes], first: np.ndarray, back: np.ndarray, index: dict, value) -> np.ndarray:
    """The distinct texts' entries in `index`, new ones added in the order they first appear."""
    order = np.argsort(first, kind="stable")
    ordered = np.array(texts + [b""], dtype=object)[:-1][order].tolist()
    new = [t for t, got in zip(ordered, map(index.get, ordered), strict=True) if got is None]
    if value is bytes:
        index.update(zip(new, range(len(index), len(index) + len(new)), strict=True))
    else:
        for text in new:
            index[text] = value(text)
    code = np.empty(len(texts), dtype=np.int32)
    code[order] = list(map(index.__getitem__, ordered))
    return code[back.ravel()]


POWERS = np.array([float(10 ** k) for k in range(16)])


def _numbers(body: bytes, raw: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """float() of each cell: a plain decimal (-?digits[.digits], at most 15 digits) is its digits as an
    integer divided by a power of ten - one correctly rounded division of two exact doubles, which is
    float()'s own correctly rounded answer; anything else goes through float() (ValueError as float's)."""
    most = int(length.max())
    if most <= 17:
        m = _fixed(raw, lo, length, most)
        inside = np.arange(most) < length[:, None]
        digit = (m >= 48) & (m <= 57)
        dot = m == 46
        neg = m[:, 0] == 45
        allowed = digit | dot | ~inside
        allowed[:, 0] |= neg
        places = digit.sum(axis=1)
        if allowed.all() and (dot.sum(axis=1) <= 1).all() and places.min() > 0 and places.max() <= 15:
            frac = (digit & (np.cumsum(dot, axis=1) > 0)).sum(axis=1)
            whole = np.zeros(len(lo), dtype=np.int64)
            for j in range(most):
                whole = np.where(digit[:, j], whole * 10 + (m[:, j].astype(np.int64) - 48), whole)
            out = whole / POWERS[frac]
            return np.where(neg, -out, out)
    return np.fromiter((float(body[a:b]) for a, b in zip(lo.tolist(), (lo + length).tolist(), strict=True)),
                       dtype=np.float64, count=len(lo))
