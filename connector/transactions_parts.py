"""A transactions CSV too big to hold as rows, read a range of customers at a time.

A plain file (what connector.csv_fast reads in bulk) of more than `part_rows` rows is cut by
customer id into parts of about that many rows: a first pass samples the ids of every 128th line
and takes the id ranges from them, a second writes each line to its range's part file (a customer's
rows all in one part, in file order). Part k's ids all sort before part k+1's, so the parts'
purchase columns joined in order are the whole file's (customers sorted by id): the same answer,
to the bit, with only one part's row arrays (~380 bytes a row) held at a time - the whole file's
rows were 7.9 GB at 20M rows. The columns of every customer (16 bytes a purchase) stay.

A customer object (the plan's few, playbooks.columnar_plan) is made by reading its part again; the
plan asks for them in id order, so each part is read at most once more per pass. Anything the bulk
read would doubt in any part (a bad cell, a blank line, quotes) and the whole file is read as
before, by the reader that names the line and its fix.
"""

from __future__ import annotations

import bisect
import csv
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from connector import csv_fast, forked
from connector.csv_text import open_text, separator_of
from connector.heap import release_free_heap
from connector.model import Customer
from connector.transactions_csv import CsvSummary, _columns, read_rows
from playbooks.columns import PurchaseColumns
from playbooks.guards import holdout_column
from playbooks.schema import HoldoutConfig

PART_ROWS = 2_000_000  # rows read at a time (`analyze --part-rows`); a file of more is cut into parts
SAMPLE_EVERY = 128  # the part ranges are taken from the ids of every 128th line
ID_WIDTH = 64  # longer ids: the file is read whole
PARTS = "repeat-sales-parts-"  # the part files' directory: PARTS<host>-<pid>-<random>, in the temporary directory
ADDED = ("rows", "customers", "purchases", "refunds_applied", "refunds_unmatched", "zero_amount_rows")


@dataclass
class FilePurchases:
    """What `analyze` evaluates: the counted purchases' columns and how to make a customer."""

    cols: PurchaseColumns
    customers: Sequence[Customer]
    with_items: np.ndarray
    today: date
    after_as_of: int  # purchases dated after `today` (left out)
    summary: CsvSummary
    parts: int = 1
    holdout: np.ndarray | None = None  # the customers' hold-out draws when a child made them (None: not made)
    _keep: list = field(default_factory=list, repr=False)  # the table or the parts' directory, while needed


def read_purchases(path: str | Path, *, as_of: date | None, currency: str, rates: Mapping[str, float],
                   paid_field: str | None, part_rows: int | None = None, today: date,
                   holdout: HoldoutConfig | None = None) -> FilePurchases:
    """The file's purchases for evaluation on `as_of` (None: the file's last day, else `today`), read a
    range of customers at a time when it has more than `part_rows` rows (None: PART_ROWS; 0: never).
    With `holdout`, a file read whole of many customers has their hold-out draws made by a child while
    its rows are put in order (FilePurchases.holdout; drawn here afterwards when the child fails)."""
    part_rows = PART_ROWS if part_rows is None else part_rows
    if part_rows > 0:
        parted = _read_in_parts(Path(path), as_of or None, currency, rates, paid_field, part_rows, today)
        if parted is not None:
            return parted
    from connector.transactions_columns import TransactionTable

    rows, summary = read_rows(path, default_currency=currency)
    ids = rows.customers_ids.values  # the reader's order; the table's is by id
    if holdout is not None and holdout.enabled and holdout.percent > 0 and len(ids) >= forked.APART_FROM:
        drawn, table = forked.alongside(lambda: holdout_column(ids, holdout), lambda: TransactionTable(rows, summary))
    else:
        drawn, table = None, TransactionTable(rows, summary)  # segment() draws them
    day = as_of or table.last_day() or today
    cols = table.columns(day, currency, rates, paid_field=paid_field)
    return FilePurchases(cols=cols, customers=table.customers, with_items=table.with_items, today=day,
                         after_as_of=int((table.day > day.toordinal()).sum()), summary=summary,
                         holdout=None if drawn is None else table.in_id_order(drawn), _keep=[table])


def _read_in_parts(path: Path, as_of: date | None, currency: str, rates: Mapping[str, float],
                   paid_field: str | None, part_rows: int, today: date) -> FilePurchases | None:
    plain = _plain_header(path)
    if plain is None:
        return None
    header_line, width, sepb, j, body_at = plain
    if _line_ends(path) <= part_rows:  # a plain count of LFs first: most files fit, and the sampling pass
        return None  # over a 1M-row file was 5 % of its analyze
    sample, lines, longest = _sample_ids(path, body_at, width, sepb, j)
    if sample is None or lines <= part_rows:
        return None
    n_parts = math.ceil(lines / part_rows)
    key_width = -(-longest // 8) * 8  # the ids as keys no wider than the longest (sorting as the texts sort)
    sample = np.sort(sample.astype(f"S{key_width}"))
    bounds = np.unique(sample[[len(sample) * k // n_parts for k in range(1, n_parts)]])
    sweep_dead_parts()
    folder = tempfile.TemporaryDirectory(prefix=f"{PARTS}{_host()}-{os.getpid()}-")
    paths = [Path(folder.name) / f"part{k:04d}.csv" for k in range(len(bounds) + 1)]
    filled = _split(path, body_at, (width, sepb, j, key_width), bounds, header_line, paths)
    if filled is None:
        folder.cleanup()
        return None
    got = _read_parts([p for p, n in zip(paths, filled, strict=True) if n], as_of, currency, rates, paid_field, today)
    if got is None:  # a part the bulk read doubts: the whole file, read line by line, names the line
        folder.cleanup()
        return None
    got._keep.append(folder)
    return got


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40]


def sweep_dead_parts() -> list[str]:
    """Remove the part files a killed analyze left (SIGKILL, the kernel's OOM killer: no handler runs),
    so a big file's rerun does not find the disk full of the last run's rows. Only directories of this
    host whose process is gone; returns their names."""
    mine = re.compile(re.escape(PARTS + _host()) + r"-(\d+)-")
    gone = []
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        return gone
    for entry in entries:
        found = mine.match(entry.name)
        if found is None or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            os.kill(int(found.group(1)), 0)
            continue  # alive (or another user's process, which we may not signal)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        gone.append(entry.name)
    return gone


def _plain_header(path: Path):
    """(header line, cells, separator, customer_id's cell, the body's first byte) of a file the bulk read
    may take, else None."""
    fh, encoding = open_text(path)
    with fh:
        first = fh.readline()
    if not first.strip() or encoding not in ("utf-8", "utf-8-sig"):
        return None
    sep = separator_of(first)
    header = next(csv.reader([first], delimiter=sep))
    cols = _columns(header)[0]
    if sep not in ",;|" or not set(cols) <= csv_fast.PLAIN or "customer_id" not in cols:
        return None
    with path.open("rb") as raw:
        head = raw.readline()
    body_at = len(head)
    line = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    if b"\r" in line.replace(b"\r\n", b"\n") or not line.isascii():
        return None
    return line.rstrip(b"\r\n") + b"\n", len(header), sep.encode(), cols["customer_id"], body_at


def _line_ends(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(csv_fast.CHUNK), b""))


def _pieces(path: Path, body_at: int):
    """The body as whole LF lines, a few MB at a time (None for a piece the bulk read would not take)."""
    with path.open("rb") as fh:
        fh.seek(body_at)
        rest = b""
        while True:
            block = fh.read(csv_fast.CHUNK)
            if not block:
                if rest:
                    yield csv_fast._lines(rest)
                return
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if not cut:
                rest = block
                continue
            rest = block[cut:]
            yield csv_fast._lines(block[:cut])


def _ids(piece: bytes | None, width: int, sepb: bytes, j: int, key_width: int = 0, every: int = 1, skip: int = 0):
    """(line starts, line lengths, the ids of every `every`-th line from `skip` as `key_width`-byte keys,
    the longest id) of a piece, or None."""
    if piece is None or not piece.isascii() or any(b in piece for b in (b'"', b" ", b"\t", b"\0")):
        return None
    raw = np.frombuffer(piece + bytes(ID_WIDTH), dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    seps = np.flatnonzero(raw == sepb[0])
    if len(seps) != len(ends) * (width - 1):
        return None
    begins = np.concatenate(([0], ends[:-1] + 1))
    if width > 1:
        seps = seps.reshape(len(ends), width - 1)
        if not ((seps[:, 0] >= begins) & (seps[:, -1] < ends)).all():
            return None
    lo = begins if j == 0 else seps[:, j - 1] + 1
    length = (ends if j == width - 1 else seps[:, j]) - lo
    longest = int(length.max()) if len(length) else 0
    if not len(length) or length.min() == 0 or longest > key_width:  # a longer id (the file grew meanwhile):
        return None  # cut to the keys' width it could land in another part than its own rows
    lo, length = lo[skip::every], length[skip::every]
    keys = csv_fast._fixed(raw, lo, length, key_width).view(f"S{key_width}").ravel()
    return begins, ends + 1 - begins, keys, longest


def _sample_ids(path: Path, body_at: int, width: int, sepb: bytes, j: int):
    """(the ids of every SAMPLE_EVERY-th line, the lines, the longest id), or (None, 0, 0)."""
    sample, lines, longest = [], 0, 0
    for piece in _pieces(path, body_at):
        got = _ids(piece, width, sepb, j, ID_WIDTH, SAMPLE_EVERY, (-lines) % SAMPLE_EVERY)
        if got is None:
            return None, 0, 0
        sample.append(got[2])
        lines += len(got[0])
        longest = max(longest, got[3])
    return (np.concatenate(sample) if sample else None), lines, longest


def _split(path: Path, body_at: int, cells: tuple, bounds: np.ndarray, header: bytes,
           paths: list[Path]) -> list[int] | None:
    """Each line to the part of its id's range, in file order: the parts' line counts, or None at a piece
    the bulk read doubts."""
    outs = [p.open("wb") for p in paths]
    filled = [0] * len(paths)
    try:
        for out in outs:
            out.write(header)
        for piece in _pieces(path, body_at):
            got = _ids(piece, *cells)
            if got is None:
                return None
            begins, lengths, keys, _ = got
            part = np.searchsorted(bounds, keys, side="right")
            order = np.argsort(part, kind="stable")
            size = lengths[order]
            at = np.repeat(begins[order] - np.concatenate(([0], np.cumsum(size)[:-1])), size)
            grouped = np.frombuffer(piece, dtype=np.uint8)[at + np.arange(len(at))].tobytes()
            counts = np.bincount(part, weights=lengths, minlength=len(paths)).astype(np.int64)
            edge = 0
            for k, n in enumerate(counts.tolist()):
                if n:
                    outs[k].write(grouped[edge:edge + n])
                    edge += n
            for k, n in enumerate(np.bincount(part, minlength=len(paths)).tolist()):
                filled[k] += n
        return filled
    finally:
        for out in outs:
            out.close()


def _read_parts(paths: list[Path], as_of: date | None, currency: str, rates: Mapping[str, float],
                paid_field: str | None, today: date) -> FilePurchases | None:
    """The parts' columns joined in order; None when the bulk read doubts any part."""
    from connector.transactions_columns import TransactionTable

    counted_by = as_of or date.max  # without a date: every purchase counts, dated up to the file's last day
    ids: list[str] = []
    starts, days, amounts, paid, items, offsets, used = [np.zeros(1, dtype=np.int64)], [], [], [], [], [0], []
    total = CsvSummary()
    last, after = None, 0
    for p in paths:
        rows, summary = read_rows(p, default_currency=currency, bulk_only=True)
        if rows is None:
            return None
        table = TransactionTable(rows, summary)
        del rows
        cols = table.columns(counted_by, currency, rates, paid_field=paid_field)
        starts.append(cols.start[1:] + starts[-1][-1])
        ids += cols.ids
        days.append(cols.day)
        amounts.append(cols.amount)
        paid.append(cols.paid)
        items.append(table.with_items)
        offsets.append(len(ids))
        used.append(p)
        day = table.last_day()
        last = day if last is None or (day is not None and day > last) else last
        after += int((table.day > counted_by.toordinal()).sum()) if as_of else 0
        for name in ADDED:
            setattr(total, name, getattr(total, name) + getattr(summary, name))
        total.separator, total.encoding, total.ignored_columns = summary.separator, summary.encoding, summary.ignored_columns
        del table, cols
        release_free_heap()  # the part's row arrays were freed into glibc's heap: the next part's are new
    amount = np.concatenate(amounts) if amounts else np.zeros(0)
    cols = PurchaseColumns(ids=ids, start=np.concatenate(starts), day=np.concatenate(days) if days else
                           np.zeros(0, dtype=np.int64), amount=amount,
                           paid=np.concatenate(paid) if paid_field and paid else None)
    return FilePurchases(cols=cols, customers=_PartCustomers(used, offsets, currency),
                         with_items=np.concatenate(items) if items else np.zeros(0, dtype=bool),
                         today=as_of or last or today, after_as_of=after, summary=total, parts=len(used))


class _PartCustomers(Sequence[Customer]):
    """The customers in id order, customer i made from its part (read again, the last one kept)."""

    def __init__(self, paths: list[Path], offsets: list[int], currency: str) -> None:
        self._paths, self._offsets, self._currency = paths, offsets, currency
        self._part, self._table = -1, None

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not 0 <= i < len(self):
            raise IndexError(i)
        from connector.transactions_columns import TransactionTable

        part = bisect.bisect_right(self._offsets, i) - 1
        if part != self._part:
            self._table = None
            self._table = TransactionTable(*read_rows(self._paths[part], default_currency=self._currency))
            self._part = part
        return self._table._customer(i - self._offsets[part], CsvSummary())
