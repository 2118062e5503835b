"""A big CSV's second half read by a forked child (connector.forked): the child's answer comes back whole,
and a child that dies or fails costs time, never the answer - the parent reads that half itself."""

from __future__ import annotations

import os
import signal

from connector import csv_fast, forked
from connector.transactions_columns import read_transaction_table
from tests.test_csv_fast import _both, _plain


def test_a_childs_answer_comes_back_and_a_dead_or_failing_child_gives_none():
    assert forked.started(lambda: {"ids": [b"a", b"b"], "n": 2}).result() == {"ids": [b"a", b"b"], "n": 2}
    assert forked.started(lambda: os.kill(os.getpid(), signal.SIGKILL)).result() is None
    assert forked.started(lambda: 1 / 0).result() is None


def test_a_file_read_in_two_halves_gives_the_same_customers_when_the_child_dies(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_fast, "CHUNK", 997)  # ~90 pieces: the second half goes to a child
    plain, _crlf, quoted = _both(tmp_path, _plain(3000, 5))
    table, want = read_transaction_table(quoted)  # read line by line
    reference = list(table.customers)
    assert list(read_transaction_table(plain)[0].customers) == reference
    children = []

    def dying(compute):  # a child killed as the OOM killer would, before it answers
        child = forked.started(lambda: os.kill(os.getpid(), signal.SIGKILL))
        children.append(child)
        return child

    monkeypatch.setattr(csv_fast, "started", dying)
    table, summary = read_transaction_table(plain)
    assert children and list(table.customers) == reference and summary == want
