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

from connector.errors import CsvInputError

PLAIN = frozenset(("customer_id", "date", "amount", "quantity"))
MAX_AMOUNT = 1e15
CHUNK = 4 << 20  # bytes of lines split at a time


def plain_rows(path: Path, header: list[str], cols: dict[str, int], sep: str, encoding: str,
               default_currency: str, summary, rows):
    """`rows` (an empty transactions_csv._Rows) filled as _Rows.load fills it, or None to read line by line."""
    if encoding not in ("utf-8", "utf-8-sig") or sep not in ",;|" or not set(cols) <= PLAIN:
        return None
    data = path.read_bytes()
    if b"\r" in data:  # CRLF line ends (Windows, Python's csv.writer) read as LF; any other CR: line by line
        crlf = data.count(b"\r\n")
        if crlf != data.count(b"\r") or crlf != data.count(b"\n"):
            return None
        data = data.replace(b"\r\n", b"\n")
    if not data.isascii() or any(b in data for b in (b'"', b" ", b"\t", b"\r", b"\n\n", b"\0")):
        return None
    body = data[data.index(b"\n") + 1:] if b"\n" in data else b""
    if not body:
        return None
    if not body.endswith(b"\n"):
        body += b"\n"
    width, sepb = len(header), sep.encode()
    known: dict[bytes, int] = {}  # customer id -> interned index, in order of first appearance
    ordinals: dict[bytes, int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    at = 0
    while at < len(body):  # a few MB of lines at a time: the cells' bytes objects never all at once
        end = body.rfind(b"\n", at, at + CHUNK) + 1 or body.index(b"\n", at) + 1
        got = _chunk(body[at:end], width, sepb, cols, known, ordinals)
        if got is None:
            return None
        parts.append(got)
        at = end
    cust, day, amount, qty = (np.concatenate([part[k] for part in parts]) for k in range(4))
    del parts
    lines = len(cust)
    rows.customers_ids.values[:] = [cid.decode() for cid in known]
    rows.customers_ids.index.update(zip(rows.customers_ids.values, range(len(known)), strict=True))
    cur = rows.strings(default_currency)
    rows.cust, rows.day = array("i", cust.tobytes()), array("i", day.tobytes())
    rows.amount = array("d", amount.tobytes())
    rows.qty = array("d", qty.tobytes())
    zeros = np.zeros(lines, dtype=np.int32).tobytes()
    rows.product, rows.category, rows.order = array("i", zeros), array("i", zeros), array("i", zeros)
    rows.currency = array("i", np.full(lines, cur, dtype=np.int32).tobytes())
    rows.line = array("i", np.arange(2, lines + 2, dtype=np.int32).tobytes())
    summary.zero_amount_rows = int((amount == 0).sum())
    summary.rows = lines
    return rows


def _chunk(body: bytes, width: int, sepb: bytes, cols: dict[str, int], known: dict[bytes, int],
           ordinals: dict[bytes, int]) -> tuple[np.ndarray, ...] | None:
    """Whole lines: (customer index, day ordinal, amount, quantity) arrays, or None at any doubt."""
    from connector.csv_text import parse_date

    raw = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    seps = np.flatnonzero(raw == sepb[0])
    if len(seps) != len(ends) * (width - 1):  # a line with more or fewer cells: the reader says which
        return None
    if width > 1:  # each line's separators between its own start and end
        seps = seps.reshape(len(ends), width - 1)
        if not ((seps[:, 0] > np.concatenate(([-1], ends[:-1]))) & (seps[:, -1] < ends)).all():
            return None
    del raw, seps
    cells = body.replace(b"\n", sepb).split(sepb)[:-1]
    lines = len(ends)
    ids, days = cells[cols["customer_id"]::width], cells[cols["date"]::width]
    amounts = cells[cols["amount"]::width]
    quantities = cells[cols["quantity"]::width] if "quantity" in cols else None
    del cells
    for cid in dict.fromkeys(ids):
        if cid not in known:
            known[cid] = len(known)
    try:
        for raw_day in dict.fromkeys(days):
            if raw_day not in ordinals:
                ordinals[raw_day] = parse_date(raw_day.decode(), 0).toordinal()
        amount = np.fromiter(map(float, amounts), dtype=np.float64, count=lines)
        qty = np.fromiter(map(float, quantities), dtype=np.float64, count=lines) if quantities else np.ones(lines)
    except (ValueError, CsvInputError):  # an empty or bad date, amount or quantity
        return None
    if b"" in known:
        return None
    for column in (amount, qty):
        if not (np.abs(column) < MAX_AMOUNT).all():  # nan and inf too
            return None
    if (qty == 0).any():
        return None
    cust = np.fromiter(map(known.__getitem__, ids), dtype=np.int32, count=lines)
    day = np.fromiter(map(ordinals.__getitem__, days), dtype=np.int32, count=lines)
    return cust, day, amount, qty
