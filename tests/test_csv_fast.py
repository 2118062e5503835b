"""A plain transactions CSV (CDNOW-like) read in bulk (connector.csv_fast): the same customers, summary
and columns as the line-by-line reader, and every bad cell still named with its line and fix - the
same file with CRLF line ends, which the bulk read leaves to the line reader, is the reference."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from connector import csv_fast
from connector.errors import CsvInputError
from connector.transactions_columns import read_transaction_table
from connector.transactions_csv import read_transactions_with_summary


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
    plain, crlf = tmp_path / "plain.csv", tmp_path / "crlf.csv"
    plain.write_bytes(("\n".join(lines) + "\n").encode())
    crlf.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return plain, crlf


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("chunk", [csv_fast.CHUNK, 997])  # one piece, or many cut at line ends
def test_a_plain_file_read_in_bulk_gives_the_line_readers_customers(tmp_path, seed, chunk, monkeypatch):
    monkeypatch.setattr(csv_fast, "CHUNK", chunk)
    plain, crlf = _both(tmp_path, _plain(3000, seed))
    fast, slow = read_transactions_with_summary(plain), read_transactions_with_summary(crlf)
    assert fast == slow
    assert fast[1].zero_amount_rows > 0
    (t1, s1), (t2, s2) = read_transaction_table(plain), read_transaction_table(crlf)
    assert s1 == s2
    assert list(t1.customers) == list(t2.customers) == fast[0]
    c1, c2 = t1.columns(date(2025, 1, 1), "RUB", {}), t2.columns(date(2025, 1, 1), "RUB", {})
    assert c1.ids == c2.ids
    for name in ("start", "day", "amount"):
        assert getattr(c1, name).tobytes() == getattr(c2, name).tobytes(), name


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
    plain, crlf = _both(tmp_path, lines)
    errors = []
    for path in (plain, crlf):
        with pytest.raises(CsvInputError) as info:
            read_transaction_table(path)
        errors.append(info.value)
    assert errors[0].row == errors[1].row == 121 and errors[0].exit_code == 2
    assert str(errors[0]) == str(errors[1])
