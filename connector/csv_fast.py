"""The plain transactions CSV read in bulk: the reader's arrays without a Python loop per line.

A file of plain cells (ASCII, no quotes, spaces, tabs or carriage returns, no blank line, every line
as many cells as the header) with only customer_id, date, amount and quantity among the known
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


def plain_rows(path: Path, header: list[str], cols: dict[str, int], sep: str, encoding: str,
               default_currency: str, summary, rows):
    """`rows` (an empty transactions_csv._Rows) filled as _Rows.load fills it, or None to read line by line."""
    if encoding not in ("utf-8", "utf-8-sig") or sep not in ",;|" or not set(cols) <= PLAIN:
        return None
    data = path.read_bytes()
    if not data.isascii() or any(b in data for b in (b'"', b" ", b"\t", b"\r", b"\n\n")):
        return None
    body = data[data.index(b"\n") + 1:] if b"\n" in data else b""
    if not body:
        return None
    if not body.endswith(b"\n"):
        body += b"\n"
    width = len(header)
    raw = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    seps = np.flatnonzero(raw == ord(sep))
    if len(seps) != len(ends) * (width - 1):  # a line with more or fewer cells: the reader says which
        return None
    if width > 1:  # each line's separators between its own start and end
        seps = seps.reshape(len(ends), width - 1)
        if not ((seps[:, 0] > np.concatenate(([-1], ends[:-1]))) & (seps[:, -1] < ends)).all():
            return None
    cells = body.replace(b"\n", sep.encode()).split(sep.encode())[:-1]
    lines = len(ends)
    ids, days, amounts = cells[cols["customer_id"]::width], cells[cols["date"]::width], cells[cols["amount"]::width]
    known = dict.fromkeys(ids)
    dated = dict.fromkeys(days)
    if b"" in known or b"" in dated:
        return None
    from connector.transactions_csv import parse_date

    try:
        ordinals = {raw_day: parse_date(raw_day.decode(), 0).toordinal() for raw_day in dated}
        amount = np.fromiter(map(float, amounts), dtype=np.float64, count=lines)
        qty = (np.fromiter(map(float, cells[cols["quantity"]::width]), dtype=np.float64, count=lines)
               if "quantity" in cols else np.ones(lines))
    except (ValueError, CsvInputError):
        return None
    for column in (amount, qty):
        if not (np.abs(column) < MAX_AMOUNT).all():  # nan and inf too
            return None
    if (qty == 0).any():
        return None
    for i, cid in enumerate(known):
        known[cid] = i
    rows.customers_ids.values[:] = [cid.decode() for cid in known]
    rows.customers_ids.index.update(zip(rows.customers_ids.values, range(len(known)), strict=True))
    cur = rows.strings(default_currency)
    rows.cust = array("i", np.fromiter(map(known.__getitem__, ids), dtype=np.int32, count=lines).tobytes())
    rows.day = array("i", np.fromiter(map(ordinals.__getitem__, days), dtype=np.int32, count=lines).tobytes())
    rows.amount = array("d", amount.tobytes())
    rows.qty = array("d", qty.tobytes())
    zeros = np.zeros(lines, dtype=np.int32).tobytes()
    rows.product, rows.category, rows.order = array("i", zeros), array("i", zeros), array("i", zeros)
    rows.currency = array("i", np.full(lines, cur, dtype=np.int32).tobytes())
    rows.line = array("i", np.arange(2, lines + 2, dtype=np.int32).tobytes())
    summary.zero_amount_rows = int((amount == 0).sum())
    summary.rows = lines
    return rows
