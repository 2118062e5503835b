"""A plain transactions CSV (CDNOW-like, with LF or CRLF line ends) read in bulk (connector.csv_fast):
the same customers, summary and columns as the line-by-line reader, and every bad cell still named
with its line and fix - the same file with its header's first cell quoted, which the bulk read
leaves to the line reader, is the reference."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from connector import csv_fast
from connector.errors import CsvInputError
from connector.transactions_columns import read_transaction_table
from connector.transactions_csv import CsvSummary, _columns, _Rows, read_transactions_with_summary


def _plain(rows: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = ["date,quantity,customer_id,amount,note"]  # columns in any order; an ignored one
    for _ in range(rows):
        cid = f"{rng.randrange(rows // 4):05d}"
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(400))
        amount = rng.choice(("0", "12", "7.5", "-3.25", f"{rng.uniform(1, 500):.2f}"))
        for _ in range(1 + (rng.random() < 0.2)):  # same-day repeats without an order
            lines.append(f"{day.isoformat()},{rng.randrange(1, 4)},{cid},{amount},x{rng.randrange(9)}")
    return lines


def _both(tmp_path, lines: list[str]):
    """(LF file, CRLF file, the reference: LF with a quoted header cell - read line by line)."""
    plain, crlf, quoted = tmp_path / "plain.csv", tmp_path / "crlf.csv", tmp_path / "quoted.csv"
    plain.write_bytes(("\n".join(lines) + "\n").encode())
    crlf.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    first, rest = lines[0].split(",", 1)
    quoted.write_bytes(("\n".join([f'"{first}",{rest}', *lines[1:]]) + "\n").encode())
    return plain, crlf, quoted


def _read_in_bulk(path) -> bool:
    header = path.read_bytes().split(b"\n", 1)[0].decode().rstrip("\r").split(",")
    return csv_fast.plain_rows(path, header, _columns(header)[0], ",", "utf-8", "RUB", CsvSummary(), _Rows()) is not None


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("chunk", [csv_fast.CHUNK, 997])  # one piece, or many cut at line ends
def test_a_plain_file_read_in_bulk_gives_the_line_readers_customers(tmp_path, seed, chunk, monkeypatch):
    monkeypatch.setattr(csv_fast, "CHUNK", chunk)
    plain, crlf, quoted = _both(tmp_path, _plain(3000, seed))
    assert _read_in_bulk(plain) and _read_in_bulk(crlf) and not _read_in_bulk(quoted)
    slow = read_transactions_with_summary(quoted)
    assert slow[1].zero_amount_rows > 0
    t2, s2 = read_transaction_table(quoted)
    c2 = t2.columns(date(2025, 1, 1), "RUB", {})
    for path in (plain, crlf):
        assert read_transactions_with_summary(path) == slow
        t1, s1 = read_transaction_table(path)
        assert s1 == s2
        assert list(t1.customers) == list(t2.customers) == slow[0]
        c1 = t1.columns(date(2025, 1, 1), "RUB", {})
        assert c1.ids == c2.ids
        for name in ("start", "day", "amount"):
            assert getattr(c1, name).tobytes() == getattr(c2, name).tobytes(), name
    lines = _plain(3000, seed)  # LF and CRLF in one file, a lone CR (left to the line reader): read the same
    mixed, lone = tmp_path / "mixed.csv", tmp_path / "lone.csv"
    mixed.write_bytes("".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines)).encode())
    lone.write_bytes(("\n".join(lines[:40]) + "\r" + "\n".join(lines[40:]) + "\n").encode())
    assert _read_in_bulk(mixed) and not _read_in_bulk(lone)
    assert read_transactions_with_summary(mixed) == slow


@pytest.mark.parametrize("bad", [
    "2024-02-30,1,00007,5",  # no such date
    "2024-03-01,1,00007,abc",  # not a number
    "2024-03-01,1,00007,nan",
    "2024-03-01,1,00007,1e999",
    "2024-03-01,0,00007,5",  # quantity is 0
    "2024-03-01,1,,5",  # empty customer id
    ",1,00007,5",  # empty date
    "2024-03-01,1,00007,",  # empty amount
    "2024-03-01,1,00007,5,6",  # more cells than the header
    "yesterday,1,00007,5",
])
@pytest.mark.parametrize("chunk", [csv_fast.CHUNK, 500])
def test_a_bad_cell_in_a_plain_file_is_named_as_the_line_reader_names_it(tmp_path, bad, chunk, monkeypatch):
    monkeypatch.setattr(csv_fast, "CHUNK", chunk)
    lines = [line.rsplit(",", 1)[0] for line in _plain(200, 3)]  # without the ignored column
    lines.insert(120, bad)
    errors = []
    for path in _both(tmp_path, lines):
        with pytest.raises(CsvInputError) as info:
            read_transaction_table(path)
        errors.append(info.value)
    assert errors[0].row == errors[1].row == errors[2].row == 121 and errors[0].exit_code == 2
    assert str(errors[0]) == str(errors[1]) == str(errors[2])


def test_numbers_and_ids_of_any_shape_read_in_bulk_as_the_line_reader_reads_them(tmp_path):
    """Amounts and quantities as float() reads them (signs, a bare point, leading zeros, 15 digits and
    more, exponents, underscores) and ids of 1 to 80 characters: the same customers and figures."""
    amounts = ["-.5", "5.", "007", "+3", "1_000", "1e2", "-0", "0.1", "123456789012.345", "123456789012345.67",
               "0.30000000000000004", "99999999999999.9", "2.675", "-12.50", "3.14159265358979"]
    lines = ["customer_id,date,amount,quantity"]
    for k in range(300):
        cid = ("c" * (1 + k % 80)) + str(k % 37)
        lines.append(f"{cid},2024-0{1 + k % 9}-1{k % 10},{amounts[k % len(amounts)]},{['1', '2.5', '03'][k % 3]}")
    plain, crlf, quoted = _both(tmp_path, lines)
    assert _read_in_bulk(plain)
    want = read_transaction_table(quoted)
    for path in (plain, crlf):
        got = read_transaction_table(path)
        assert got[1] == want[1] and list(got[0].customers) == list(want[0].customers)
        for name in ("cust", "day", "amount"):
            assert getattr(got[0], name).tobytes() == getattr(want[0], name).tobytes(), name


def test_purchases_are_ordered_as_a_full_sort_orders_them_with_the_amounts_sorted_only_among_ties():
    """The reader's order of purchases (customer, day, then amount, quantity, place in the file) with the
    amounts compared only between purchases of one customer and day: the same order as sorting all."""
    import numpy as np

    from connector.transactions_columns import _lexsort_ties

    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 500, 20000):
        cust, day = rng.integers(0, max(n // 3, 1), n), rng.integers(0, 30, n)
        amount, qty, seen = rng.choice([5.0, 7.5, -0.0, 0.0, 12.25], n), rng.integers(1, 3, n) * 1.0, rng.permutation(n)
        want = np.lexsort((seen, qty, amount, day, cust))
        assert _lexsort_ties((seen, qty, amount), (day, cust)).tolist() == want.tolist()


@pytest.mark.parametrize("chunk", [csv_fast.CHUNK, 61, 97, 130])  # pieces cut at many places
def test_blank_lines_and_stray_carriage_returns_are_left_to_the_line_reader_wherever_the_pieces_are_cut(
        tmp_path, chunk, monkeypatch):
    """The file's lines are taken a piece at a time, CRLF turned into LF in each: a blank line or a CR
    left alone is still found when it falls where two pieces meet, and a file whose last line has no
    line end is read whole."""
    monkeypatch.setattr(csv_fast, "CHUNK", chunk)
    lines = [line.rsplit(",", 1)[0] for line in _plain(40, 4)]
    path = tmp_path / "t.csv"
    for end in ("\n", "\r\n"):
        body = [line + end for line in lines]
        path.write_bytes("".join(body)[:-len(end)].encode())  # no line end after the last line
        assert _read_in_bulk(path)
        t, _ = read_transaction_table(path)
        assert list(t.customers) == read_transactions_with_summary(path)[0]
        for at in range(1, len(body) + 1):  # a blank line after each line (and after the header)
            path.write_bytes("".join(body[:at] + [end] + body[at:]).encode())
            assert not _read_in_bulk(path), at
    crlf = "".join(line + "\r\n" for line in lines)
    for text in (crlf[:-1], crlf.replace("quantity", "quan\rtity"), crlf.replace("\r\n", "\r\r\n", 7)):
        path.write_bytes(text.encode())
        assert not _read_in_bulk(path)


def test_the_ids_read_in_bulk_still_intern_as_the_line_reader_interns(tmp_path):
    """The bulk read keeps no id -> number index beside the table; asked for one, it answers as the
    line reader's own would."""
    path = tmp_path / "t.csv"
    lines = [line.rsplit(",", 1)[0] for line in _plain(60, 5)]
    path.write_bytes(("\n".join(lines) + "\n").encode())
    header = lines[0].split(",")
    rows = _Rows()
    assert csv_fast.plain_rows(path, header, _columns(header)[0], ",", "utf-8", "RUB", CsvSummary(), rows) is rows
    ids = rows.customers_ids
    assert [ids(v) for v in ids.values] == list(range(len(ids.values)))
    assert ids("no such customer") == len(ids.values) - 1 and ids.values[-1] == "no such customer"
