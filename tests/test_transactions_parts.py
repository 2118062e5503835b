"""A transactions CSV too big to hold as rows is read a range of customers at a time
(connector.transactions_parts): `analyze` prints the same JSON, to the byte, as from the whole file,
and a bad line is still named by its line in the user's file, not in a part."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import date, timedelta

import pytest

from connector import csv_fast
from connector.errors import CsvInputError
from connector.transactions_parts import read_purchases
from tests.test_cli_misc import ROOT, analyze


def _shop(rows: int, seed: int) -> list[str]:
    """A CDNOW-like file: ids of many lengths (so their text order is not their number's), same-day
    repeats, refunds, zero amounts, rows after the report's date."""
    rng = random.Random(seed)
    lines = ["customer_id,date,quantity,amount"]
    for _ in range(rows):
        cid = str(rng.randrange(1, rows // 3)) + rng.choice(("", "~1", "~12"))
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(500))
        amount = rng.choice(("0", "12", "7.5", "-3.25", f"{rng.uniform(1, 900):.2f}"))
        for _ in range(1 + (rng.random() < 0.2)):
            lines.append(f"{cid},{day.isoformat()},{rng.randrange(1, 4)},{amount}")
    return lines


def _write(path, lines, end="\n"):
    path.write_bytes((end.join(lines) + end).encode())
    return path


def _read(path, part_rows, as_of=None):
    return read_purchases(path, as_of=as_of, currency="RUB", rates={}, paid_field=None, part_rows=part_rows,
                          today=date(2027, 1, 3))


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_a_file_read_in_parts_gives_the_whole_files_columns_customers_and_counts(tmp_path, end):
    path = _write(tmp_path / "shop.csv", _shop(4000, 1), end)
    for as_of in (None, date(2025, 1, 31)):
        whole, parted = _read(path, 0, as_of), _read(path, 700, as_of)
        assert whole.parts == 1 and parted.parts >= 5
        assert parted.summary == whole.summary and parted.summary.rows > 4000
        assert parted.today == whole.today and parted.after_as_of == whole.after_as_of
        assert parted.cols.ids == whole.cols.ids == sorted(whole.cols.ids)
        for name in ("start", "day", "amount"):
            assert getattr(parted.cols, name).tolist() == getattr(whole.cols, name).tolist(), name
        assert parted.with_items.tolist() == whole.with_items.tolist()
        assert list(parted.customers) == list(whole.customers)  # the refunds matched as the reader matches them
        assert parted.customers[len(whole.cols.ids) // 2] == whole.customers[len(whole.cols.ids) // 2]


def test_analyze_prints_the_same_json_from_parts_as_from_the_whole_file(tmp_path):
    path = _write(tmp_path / "shop.csv", _shop(3000, 2))
    outs = [analyze([str(path), "--format", "json", "--as-of", "2025-03-01", "--part-rows", rows])
            for rows in ("0", "500")]
    assert [o.returncode for o in outs] == [0, 0], outs[1].stderr[-500:]
    assert outs[0].stdout == outs[1].stdout
    assert len(json.loads(outs[1].stdout)["customers"]) == len({line.split(",")[0] for line in
                                                                path.read_text().splitlines()[1:]})
    tables = [analyze([str(path), "--as-of", "2025-03-01", "--part-rows", rows]).stdout for rows in ("0", "500")]
    assert tables[0] == tables[1] and "строк прочитано" in tables[0]


@pytest.mark.parametrize("chunk", [csv_fast.CHUNK, 700])
def test_a_bad_line_is_named_in_the_users_file_when_the_file_would_be_read_in_parts(tmp_path, chunk, monkeypatch):
    monkeypatch.setattr(csv_fast, "CHUNK", chunk)
    lines = _shop(1500, 3)
    lines.insert(1200, "77,2024-13-01,1,5")  # line 1201: no 13th month
    path = _write(tmp_path / "bad.csv", lines)
    errors = []
    for rows in (0, 200):
        with pytest.raises(CsvInputError) as info:
            _read(path, rows)
        errors.append(info.value)
    assert errors[0].row == errors[1].row == 1201 and str(errors[0]) == str(errors[1])


def test_a_file_the_bulk_read_leaves_to_the_line_reader_is_read_whole(tmp_path):
    lines = _shop(1000, 4)
    lines[0] = '"customer_id",date,quantity,amount'  # quoted: read line by line, never cut into parts
    got = _read(_write(tmp_path / "quoted.csv", lines), 100)
    assert got.parts == 1 and got.summary.rows == len(lines) - 1


def test_part_rows_must_be_a_number_of_rows(tmp_path):
    path = _write(tmp_path / "shop.csv", _shop(50, 5))
    result = subprocess.run([sys.executable, "-m", "connector", "analyze", str(path), "--part-rows", "many"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--part-rows" in result.stderr and "number of rows" in result.stderr


def test_analyze_of_a_file_in_parts_makes_no_customer_object_so_reads_no_part_again(tmp_path):
    """The plan's counts of a CSV come from the columns: customers with no counted purchase (only
    zero or refund rows) get no welcome (a CSV carries no card date), so no part is read twice."""
    from playbooks import load_playbook
    from playbooks.columnar_plan import evaluate_purchases

    path = _write(tmp_path / "shop.csv", _shop(3000, 6))
    pb = load_playbook(None)  # as cmd_analyze reads with it: its currency, and the bonuses paid (none in a CSV)
    parted = read_purchases(path, as_of=date(2025, 3, 1), currency=pb.currency, rates=pb.rates,
                            paid_field=pb.bonuses.paid_field if pb.bonuses_on else None, part_rows=400,
                            today=date(2027, 1, 3))
    assert parted.parts >= 5 and (parted.cols.start[1:] == parted.cols.start[:-1]).any()  # some never counted
    _s, _segments, metrics = evaluate_purchases(parted.cols, parted.customers, parted.today, pb,
                                                with_items=parted.with_items, birthdays=False, scored=False, bare=True)
    assert metrics["planned"] > 0 and parted.customers._part == -1


def test_a_kill_while_reading_in_parts_leaves_no_part_file_behind(tmp_path):
    """The part files hold the customers' rows: SIGTERM (a scheduler's stop) ends analyze as Ctrl-C does,
    and they go with it."""
    import signal

    temp = tmp_path / "temp"
    proc = _analyzing_in_parts(tmp_path, temp)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in err and "Traceback" not in err
    assert list(temp.iterdir()) == []


def test_an_id_wider_than_the_parts_keys_is_never_cut_to_fit():
    """The second pass keys ids by the longest the first pass saw; a longer one (the file grew in between)
    cut to that width could land in another part than its customer's other rows: the cut stops instead."""
    from connector.transactions_parts import _ids

    piece = b"customer-0123456789,2024-01-01,1,5\nc1,2024-01-02,1,7\n"
    assert _ids(piece, 4, b",", 0, 8) is None
    begins, lengths, keys, longest = _ids(piece, 4, b",", 0, 24)
    assert keys.tolist() == [b"customer-0123456789", b"c1"] and longest == 19 and lengths.tolist() == [35, 18]


def test_the_next_analyze_removes_the_parts_a_killed_one_left_and_no_live_ones(tmp_path):
    """SIGKILL (the kernel's OOM killer on a file too big for the machine) runs no handler: its part
    files - the customers' rows, as big as the file - stay. The next analyze on this host removes
    them before it cuts its own file, and leaves a running analyze's parts alone."""
    import os
    import signal

    from connector.transactions_parts import PARTS, _host

    temp = tmp_path / "temp"
    proc = _analyzing_in_parts(tmp_path, temp)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    left = [p.name for p in temp.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"{PARTS}{_host()}-{proc.pid}-")
    running = temp / f"{PARTS}{_host()}-{os.getpid()}-x"  # this test's own process: alive
    running.mkdir()
    (running / "part0000.csv").write_text("customer_id,date,amount\n")
    small = _write(tmp_path / "small.csv", _shop(3_000, 8))
    done = analyze([str(small), "--format", "json", "--part-rows", "1000"], TMPDIR=str(temp))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"]["customers"] > 0
    assert [p.name for p in temp.iterdir()] == [running.name]


def _analyzing_in_parts(tmp_path, temp):
    """An `analyze` of a 150,000-row file in parts of 500 rows (TMPDIR=temp), once its part files are there."""
    import os
    import time

    path = _write(tmp_path / "big.csv", _shop(150_000, 7))
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "analyze", str(path), "--format", "json",
                             "--part-rows", "500"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(temp.glob("repeat-sales-parts-*/part*.csv")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "analyze ended before its parts were seen"
    return proc
