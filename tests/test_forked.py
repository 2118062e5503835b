"""A big CSV's second half read, a big sync's second half of due customers planned, by a forked child
(connector.forked): the child's answer comes back whole and in order, and a child that dies or fails
costs time, never the answer - the parent does that half itself. (tests/test_sync_columnar.py runs
real syncs with the plan split, on SQLite and PostgreSQL.)"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

from connector import csv_fast, forked
from connector.transactions_columns import read_transaction_table
from tests.test_csv_fast import _both, _plain


def test_a_childs_answer_comes_back_and_a_dead_or_failing_child_gives_none_and_says_so(caplog):
    assert forked.started(lambda: {"ids": [b"a", b"b"], "n": 2}).result() == {"ids": [b"a", b"b"], "n": 2}
    assert not caplog.records
    assert forked.started(lambda: os.kill(os.getpid(), signal.SIGKILL)).result() is None
    assert forked.started(lambda: 1 / 0).result() is None
    assert [r.getMessage() for r in caplog.records] == [
        "second_process=failed signal=9: its part is done in this process",
        "second_process=failed exit=1: its part is done in this process"]


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


class _People(list):
    """Customers a plan reads; `reopened()` as a child gets them over its own connection."""

    def __init__(self, items, where: str, reopen_fails: bool = False) -> None:
        super().__init__(items)
        self.where, self.reopen_fails = where, reopen_fails

    @contextmanager
    def reopened(self):
        if self.reopen_fails:
            raise ConnectionError("the state cannot be reopened")
        yield _People(self, "child")


def _plan(indices, people):
    return ((people[i], people.where) for i in indices)


def test_the_plan_split_across_two_processes_comes_back_whole_and_in_order(monkeypatch):
    monkeypatch.setattr(forked, "PLAN_SPLIT_FROM", 10)
    people = _People([f"c{i}" for i in range(100)], "parent")
    due = list(range(0, 100, 3))
    got = list(forked.plan_on_two_cores(people)(due, _plan))
    assert [c for c, _where in got] == [f"c{i}" for i in due]
    assert {where for _c, where in got} == {"parent", "child"}  # the child planned its half
    few = list(forked.plan_on_two_cores(people)(due[:9], _plan))  # under PLAN_SPLIT_FROM: all here
    assert few == [(f"c{i}", "parent") for i in due[:9]]


def test_a_child_that_cannot_reopen_the_state_leaves_its_half_to_the_parent(monkeypatch):
    monkeypatch.setattr(forked, "PLAN_SPLIT_FROM", 10)
    people = _People([f"c{i}" for i in range(100)], "parent", reopen_fails=True)
    assert list(forked.plan_on_two_cores(people)(list(range(100)), _plan)) == [(f"c{i}", "parent") for i in range(100)]


def test_alongside_computes_one_answer_in_a_child_while_the_other_is_made_here(monkeypatch, caplog):
    there, here = forked.alongside(os.getpid, os.getpid)
    assert here == os.getpid() and there != os.getpid()  # two processes: the second core used
    assert forked.alongside(lambda: None, lambda: 2) == (None, 2)  # a None is an answer, not a failure
    monkeypatch.setattr(forked, "started", lambda compute: None)  # a system without fork
    assert forked.alongside(os.getpid, lambda: 3) == (os.getpid(), 3)  # no fork here: both in turn


def test_analyze_with_the_model_fitted_by_a_child_gives_the_same_report_even_when_the_child_dies(tmp_path,
                                                                                                monkeypatch):
    """`analyze` of a big file fits the lifetime model in a child while it counts the plan: the customers'
    predictions, the model and the metrics are the ones fitted in turn, and a killed child costs time only."""
    from datetime import date

    from playbooks import load_playbook
    from playbooks.columnar_json import report_texts
    from playbooks.columnar_plan import evaluate_purchases

    plain, _crlf, _quoted = _both(tmp_path, _plain(3000, 5))
    table, _summary = read_transaction_table(plain)
    book, today = load_playbook(), date(2025, 3, 1)

    def analyzed(alongside):
        cols = table.columns(today, book.currency, book.rates)
        s, segments, metrics = evaluate_purchases(cols, table.customers, today, book, with_items=table.with_items,
                                                  birthdays=False, scored=False, bare=True, alongside=alongside)
        return list(report_texts(s)), segments, metrics, s.model

    in_turn = analyzed(None)
    assert in_turn[3] is not None and '"p_alive"' in in_turn[0][0] and in_turn[2]["planned"] > 0
    assert analyzed(forked.alongside) == in_turn
    started, killed = forked.started, []

    def dying(compute):  # the child killed before it answers: the model is fitted here
        killed.append(1)
        return started(lambda: os.kill(os.getpid(), signal.SIGKILL))

    monkeypatch.setattr(forked, "started", dying)
    assert analyzed(forked.alongside) == in_turn and killed


def test_a_big_files_hold_out_draws_made_by_a_child_are_the_customers_own_even_when_the_child_dies(tmp_path,
                                                                                                  monkeypatch):
    """`analyze` has a child draw the hold-out (a sha256 per customer) while it puts the rows in order: the
    draws come back in the customers' id order, the same as drawn from the columns; a killed child has them
    drawn here afterwards (the same), and the evaluation is the same either way."""
    from datetime import date

    from connector.transactions_parts import read_purchases
    from playbooks import load_playbook
    from playbooks.columnar_json import report_texts
    from playbooks.columnar_plan import evaluate_purchases
    from playbooks.guards import holdout_column

    monkeypatch.setattr(forked, "APART_FROM", 1)
    lines = _plain(3000, 5)
    lines[1:] = lines[:0:-1]  # the reader meets the customers out of id order: the draws must be put in order
    plain, _crlf, _quoted = _both(tmp_path, lines)
    book, today = load_playbook(), date(2025, 3, 1)

    def analyzed():
        got = read_purchases(plain, as_of=today, currency=book.currency, rates=book.rates, paid_field=None,
                             part_rows=0, today=today, holdout=book.guards.holdout)
        s, segments, metrics = evaluate_purchases(got.cols, got.customers, today, book, with_items=got.with_items,
                                                  birthdays=False, scored=False, bare=True, holdout=got.holdout)
        return got, (list(report_texts(s)), segments, metrics)

    got, answer = analyzed()
    assert got.holdout is not None and got.holdout.tolist() == holdout_column(got.cols.ids, book.guards.holdout).tolist()
    assert 0 < got.holdout.sum() < len(got.holdout)  # draws that differ: an order mixed up would show
    started, killed = forked.started, []

    def dying(compute):
        killed.append(1)
        return started(lambda: os.kill(os.getpid(), signal.SIGKILL))

    monkeypatch.setattr(forked, "started", dying)
    dead, again = analyzed()
    assert killed and dead.holdout.tolist() == got.holdout.tolist() and again == answer  # drawn here instead
