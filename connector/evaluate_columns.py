"""The sync's evaluation of the snapshot in columns: the same Evaluation as playbooks.evaluate over
State.customers() (the reference; tests/test_sync_columnar.py compares them), in seconds for
hundreds of thousands of customers.

Purchases and line items come out of the state as columns (connector.snapshot_columns); segments,
metrics, the lifetime model and the shop's learning are computed in bulk; each rule says from the
columns whom it could act on today, and only those customers are read as objects and planned.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

import numpy as np

from connector.forked import APART_FROM, plan_on_two_cores, started
from connector.heap import release_free_heap
from connector.model import Action, Customer, Product
from connector.snapshot_columns import (
    SnapshotColumns,
    SnapshotCustomers,
    read_birthdays,
    read_items,
    read_purchases,
)
from playbooks.api import CustomerReport, Evaluation, PlanHistory, Suppressed
from playbooks.columnar import (
    REPORT_HEAD,
    Segmented,
    metrics,
    predict_into,
    prediction_of,
    report_parts,
    segment,
    segment_counts,
)
from playbooks.columnar_plan import extras
from playbooks.columnar_sync import plan_due
from playbooks.engine import sort_key
from playbooks.money import month_of, nps_of

assert tuple(CustomerReport.__dataclass_fields__)[:14] == REPORT_HEAD  # the order customer_reports relies on


def evaluate_snapshot(state, account: str, today: date, playbook, *, history: PlanHistory | None = None,
                      catalogue: Iterable[Product] | None = None, prospects: int = 0, secret: str = "",
                      newcomers: Sequence[Customer] = (), predict: bool = True, processes: int = 1) -> Evaluation:
    """playbooks.evaluate(state.customers(account) with the posted answers, ...), from columns; with
    `processes` 2 a big shop's lifetime model is fitted by a forked child while the line items are read
    and the shop learned, and a big plan's due customers are split with another (connector.forked).

    The collector's young generation is made larger meanwhile: the plan and the reports are
    hundreds of thousands of objects that live on, and each full collection walks them all again."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        return _evaluate(state, account, today, playbook, history=history, catalogue=catalogue,
                         prospects=prospects, secret=secret, newcomers=newcomers, predict=predict,
                         processes=processes)
    finally:
        gc.set_threshold(*threshold)
        release_free_heap()


def _line_items(state, account: str, snap: SnapshotColumns):
    """The line items' columns, with the heap their read used released (see release_free_heap)."""
    items = read_items(state.db, account, snap)
    release_free_heap()
    return items


def _evaluate(state, account: str, today: date, playbook, *, history, catalogue, prospects, secret, newcomers,
              predict, processes) -> Evaluation:
    from connector.feedback import FeedbackAnswers

    pb = playbook
    answers = FeedbackAnswers(state).scores(account)
    snap = read_purchases(state.db, account, today, pb.currency, pb.rates,
                          paid_field=pb.bonuses.paid_field if pb.bonuses_on else None, answers=answers)
    people = SnapshotCustomers(state, account, snap.cols.ids, answers)
    s = segment(snap.cols, today, pb)
    # with two processes a big shop's model is fitted by a child while this one reads the line items and
    # plans: only the customers' reports read it (connector.forked; its failure: fitted here then)
    fitting = started(lambda: prediction_of(s)) if predict and processes > 1 and len(s.fig.n) >= APART_FROM \
        else None
    try:
        return _plan_and_report(state, account, pb, snap, people, s, fitting, predict=predict, prospects=prospects,
                                secret=secret, history=history, catalogue=catalogue, newcomers=newcomers,
                                processes=processes)
    finally:
        if fitting is not None:
            fitting.close()


def _plan_and_report(state, account: str, pb, snap: SnapshotColumns, people: SnapshotCustomers, s: Segmented,
                     fitting, *, predict, prospects, secret, history, catalogue, newcomers, processes) -> Evaluation:
    today = s.today
    if predict and fitting is None:
        predict_into(s)
    out = metrics(s, people if _needs_rows(pb, secret) else (), prospects=prospects, secret=secret)
    if not _needs_rows(pb, secret):
        out.update(director_from_columns(s, snap))
    s.extras = extras(s, people, secret)
    products = {p.id: p for p in catalogue} if catalogue is not None else None
    plan: list[Action] = []
    suppressed: list[Suppressed] = []
    reports: list[CustomerReport] = []  # made while a child plans (connector.forked): they need no plan

    def made_reports() -> None:
        if fitting is not None:
            predict_into(s, fitting.result())  # None (the child failed): fitted here
        reports.extend(customer_reports(s))

    # the line items are not named here: plan_due lets them go before the plan's actions are made
    for kept, dropped in plan_due(s, people, _line_items(state, account, snap), history=history,
                                  catalogue=products, secret=secret, newcomers=newcomers, nps=snap.nps,
                                  born=read_birthdays(state.db, account, snap.cols.ids),
                                  spread=plan_on_two_cores(people, meanwhile=made_reports, split=processes > 1)):
        plan.extend(kept)
        suppressed.extend(dropped)
    plan.sort(key=sort_key)
    suppressed.sort(key=lambda x: (x.customer_id, x.rule, x.key))
    out["planned"], out["suppressed"] = len(plan), len(suppressed)
    if s.model_note:
        out["model_note"] = s.model_note
    return Evaluation(as_of=today, customers=reports, plan=plan, segments=segment_counts(s),
                      metrics=out, suppressed=suppressed, model=s.model)


def _needs_rows(pb, secret: str) -> bool:
    """The director's figures that need each purchase's line items (margins) or every customer's
    referral codes, or the new customers of each spend month: read from customer objects
    (playbooks.money), the rest from columns."""
    return pb.metrics.margin is not None or bool(pb.metrics.spend) or bool(secret)


def customer_reports(s: Segmented) -> list[CustomerReport]:
    """engine.report of every customer, from columnar.report_parts (the report's fields, then `extra`)."""
    days: dict[int, date] = {}

    def day(ordinal: int | None) -> date | None:
        if ordinal is None:
            return None
        found = days.get(ordinal)
        if found is None:
            found = days[ordinal] = date.fromordinal(ordinal)
        return found

    return [CustomerReport(head[0], head[1], day(head[2]), day(head[3]), *head[4:], extra=more)
            for head, more in report_parts(s)]


def director_from_columns(s: Segmented, snap: SnapshotColumns) -> dict[str, object]:
    """The NPS figures of playbooks.money.director_metrics (overall, by month of the purchase rated,
    by segment); columnar.metrics gave the rest (CAC, LTV:CAC) from no rows, which they do not read."""
    cols = s.cols
    owner = cols.owner
    rated = np.flatnonzero(snap.nps >= 0)
    scores = snap.nps[rated].tolist()
    by_month: dict[str, list[int]] = defaultdict(list)
    by_segment: dict[str, list[int]] = defaultdict(list)
    for score, day, who in zip(scores, cols.day[rated].tolist(), owner[rated].tolist(), strict=True):
        by_month[month_of(date.fromordinal(day))].append(score)
        by_segment[s.names[s.segment[who]]].append(score)
    out: dict[str, object] = {
        "nps": nps_of(scores), "nps_answers": len(scores),
        "nps_by_month": {m: nps_of(v) for m, v in sorted(by_month.items())},
        "nps_by_segment": {k: nps_of(v) for k, v in sorted(by_segment.items())},
    }
    return out
