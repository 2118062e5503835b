"""Run one REST call or a `batch` of them against the portal, and bill each its operating time.

Doc: settings/how-to-call-rest-api/batch.md - up to 50 commands (`cmd` object or array of
`method?query` strings), `halt`, `$result[cmd][field]` chaining, HTTP 200 with
result / result_error / result_total / result_next / result_time (empty parts as `[]`),
and a nested `batch` failing as that command's error.
Doc: settings/performance/limits.md - each method's time is summed; inner commands are billed to
their own methods, the outer `batch` is not (`batch_billing="inner"`). A self-hosted portal was
measured billing the whole request to `batch`, every inner `operating` the request-wide sum
(b24jssdk PR #539): `batch_billing="whole"` plays that. A request over 60 s is cut (`RequestCut`).
"""

from __future__ import annotations

import re
import threading
import time

from emulators.kit import Faults, RequestStats

from .limits import LIST_WORK, REQUEST_CUT_SECONDS, CostModel, ListWork, OperatingMeter
from .methods import lookup
from .protocol import (
    ApiError,
    as_int,
    as_yn,
    ci_get,
    fault_error,
    method_not_found,
    operation_time_limit,
    parse_php_query,
    time_block,
)
from .registry import Listing
from .rights import check_scope
from .store import Portal

BATCH_BILLING = ("inner", "whole")
# Listings that take no `order` and no `start` at all (Doc: crm/universal/category/crm-category-list.md)
NOT_PAGED = {"crm.category.list"}

MAX_BATCH = 50
_REF = re.compile(r"\$(result|result_total|result_next)((?:\[[^\]]*\])+)")
_PARTS = re.compile(r"\[([^\]]*)\]")


class Outcome:
    __slots__ = ("result", "total", "next", "time")

    def __init__(self, result, total, nxt, time_: dict) -> None:
        self.result, self.total, self.next, self.time = result, total, nxt, time_


class RequestCut(Exception):
    """The request's calls ran past 60 s: the portal stops it and answers its gateway's timeout page."""


class RequestClock:
    """Seconds one HTTP request has kept the portal busy so far (modelled, never slept)."""

    __slots__ = ("spent",)

    def __init__(self) -> None:
        self.spent = 0.0

    def add(self, seconds: float) -> float:
        """Book `seconds`; raise RequestCut once past the cut, having booked only up to it. Returns the booked part."""
        room = REQUEST_CUT_SECONDS - self.spent
        if seconds > room:
            self.spent = REQUEST_CUT_SECONDS
            raise RequestCut(max(room, 0.0))
        self.spent += seconds
        return seconds


class ListLog:
    """How list methods were called: keyset (`start=-1`), counted (`start=0` or none), offset
    (`start>0`), without an explicit order, with a `$result` reference the batch could not resolve
    (`unresolved`: a chain's pages past its list's end), answered with no row (`empty`); and the rows
    served to calls whose references resolved. What traffic tests assert on."""

    KINDS = ("keyset", "counted", "offset", "unordered", "unresolved", "empty", "rows")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, dict[str, int]] = {}

    def record(self, method: str, params: dict, served: int, unresolved: bool = False) -> None:
        start = as_int(ci_get(params, "start"), 0) or 0
        kind = "keyset" if start < 0 else "offset" if start > 0 else "counted"
        ordered = ci_get(params, "order") not in (None, "", [], {}) or ci_get(params, "sort") not in (None, "")
        with self.lock:
            entry = self.calls.setdefault(method, dict.fromkeys(self.KINDS, 0))
            entry[kind] += 1
            entry["unordered"] += 0 if ordered else 1
            if unresolved:
                entry["unresolved"] += 1
                return
            entry["empty"] += 0 if served else 1
            entry["rows"] += served

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {m: dict(v) for m, v in sorted(self.calls.items())}

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()


class Dispatcher:
    def __init__(self, portal: Portal, meter: OperatingMeter, faults: Faults, stats: RequestStats,
                 cost: CostModel | None = None, batch_billing: str = "inner") -> None:
        if batch_billing not in BATCH_BILLING:
            raise ValueError(f"batch billing {batch_billing!r}: use one of {', '.join(BATCH_BILLING)}")
        self.portal = portal
        self.meter = meter
        self.faults = faults
        self.stats = stats
        self.cost = cost or CostModel("off", meter.per_call)
        self.batch_billing = batch_billing
        self.lists = ListLog()
        self.refused: dict[str, int] = {}  # OPERATION_TIME_LIMIT answers and cut requests, by cause

    def refuse(self, cause: str) -> None:
        self.refused[cause] = self.refused.get(cause, 0) + 1

    def execute(self, method: str, params: dict, clock: RequestClock | None = None,
                bill_to: str | None = None, unresolved: bool = False) -> Outcome:
        """One method call: 404 for unknown methods, 403 outside the caller's scopes, 429 when its
        method is blocked; its time is booked to `bill_to` (its own method unless a whole batch is
        billed as one)."""
        if method == "batch":
            return self.batch(params)
        handler = lookup(method)
        if handler is None:
            raise method_not_found()
        check_scope(method)
        if self.meter.blocked(method):
            self.refuse("OPERATION_TIME_LIMIT")
            raise operation_time_limit()
        clock = clock or RequestClock()
        start = time.time()
        work = ListWork()
        token = LIST_WORK.set(work)
        try:
            with self.portal.lock:
                out = handler(self.portal, params)
        finally:
            LIST_WORK.reset(token)
        seconds = self.cost.seconds(work.touched, method)
        try:
            clock.add(seconds)
        except RequestCut as cut:  # the part that ran is billed all the same
            self.meter.charge(bill_to or method, cut.args[0])
            raise
        operating, reset_at = self.meter.charge(bill_to or method, seconds)
        finish = max(time.time(), start + seconds)
        block = time_block(start, finish, operating, reset_at, processing=seconds)
        if isinstance(out, Listing):
            if method not in NOT_PAGED:
                self.lists.record(method, params, work.served, unresolved)
            return Outcome(out.result, out.total, out.next, block)
        return Outcome(out, None, None, block)

    def batch(self, params: dict) -> Outcome:
        start = time.time()
        whole = self.batch_billing == "whole"
        if whole and self.meter.blocked("batch"):
            self.refuse("OPERATION_TIME_LIMIT")
            raise operation_time_limit()
        clock = RequestClock()
        cmd = ci_get(params, "cmd")
        halt = as_yn(ci_get(params, "halt", False))
        if isinstance(cmd, dict):
            items = [(str(k), v) for k, v in cmd.items()]
        elif isinstance(cmd, list):
            items = [(str(i), v) for i, v in enumerate(cmd)]
        else:
            items = []
        if len(items) > MAX_BATCH:
            # Doc: _includes/system-errors.md - 400 ERROR_BATCH_LENGTH_EXCEEDED
            raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        parsed = []
        for key, line in items:
            name, _, query = str(line).partition("?")
            name = name.strip().lower()
            if name.endswith(".json"):
                name = name[:-5]
            self.stats.count_command(name)
            parsed.append((key, name, query))
        done: dict[str, dict] = {"result": {}, "result_error": {}, "result_total": {},
                                 "result_next": {}, "result_time": {}}
        tails: set[str] = set()
        for key, name, query in parsed:
            try:
                if name == "batch":
                    raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
                status = self.faults.take([name], drop=False, whole_request=False)
                if status is not None:
                    raise fault_error(int(status))
                raw = parse_php_query(query)
                sub = _substitute(raw, done)
                # a chain's page past its list's end: its reference is missing, or leads to such a page
                unresolved = "$result" in query and (_has_ref(sub) or not _ref_labels(raw).isdisjoint(tails))
                if unresolved:
                    tails.add(key)
                out = self.execute(name, sub, clock, bill_to="batch" if whole else None, unresolved=unresolved)
            except ApiError as err:
                done["result_error"][key] = err.body()
                if halt:
                    break
                continue
            done["result"][key] = out.result
            if out.total is not None:
                done["result_total"][key] = out.total
            if out.next is not None:
                done["result_next"][key] = out.next
            done["result_time"][key] = out.time
        finish = max(time.time(), start + clock.spent)
        if whole:  # every command reports the request-wide sum booked to `batch`
            operating, reset_at = self.meter.current("batch")
            for block in done["result_time"].values():
                block["operating"], block["operating_reset_at"] = round(operating, 6), reset_at
        else:  # the outer batch is not charged; its commands are. Doc: settings/performance/limits.md
            operating, reset_at = 0.0, int(finish + self.meter.window)
        return Outcome({part: _php_array(values) for part, values in done.items()}, None, None,
                       time_block(start, finish, operating, reset_at, processing=clock.spent))

    def inner_methods(self, params: dict) -> list[str]:
        """Method names a batch carries (for per-method drops and latency)."""
        cmd = ci_get(params, "cmd")
        lines = cmd.values() if isinstance(cmd, dict) else cmd if isinstance(cmd, list) else []
        return [str(line).partition("?")[0].strip().lower() for line in lines]


def _php_array(values: dict):
    """PHP's json_encode: an empty array is `[]`, keys 0..n-1 in order make a JSON list."""
    if not values:
        return []
    if list(values) == [str(i) for i in range(len(values))]:
        return list(values.values())
    return values


def _resolve(done: dict, part: str, path: str):
    node = done.get(part, {})
    for step in _PARTS.findall(path):
        if isinstance(node, dict):
            if step not in node:
                return None, False
            node = node[step]
        elif isinstance(node, list):
            idx = int(step) if step.isdigit() else -1
            if not 0 <= idx < len(node):
                return None, False
            node = node[idx]
        else:
            return None, False
    return node, True


def _ref_labels(value) -> set[str]:
    """The commands a command's parameters refer to (`$result[<label>]...`)."""
    if isinstance(value, dict):
        return set().union(*(_ref_labels(v) for v in value.values())) if value else set()
    if isinstance(value, str) and "$result" in value:
        return {_PARTS.findall(m.group(2))[0] for m in _REF.finditer(value)}
    return set()


def _has_ref(value) -> bool:
    """A `$result[...]` reference left in the parameters after substitution."""
    if isinstance(value, dict):
        return any(_has_ref(v) for v in value.values())
    return isinstance(value, str) and _REF.search(value) is not None


def _substitute(value, done: dict):
    """Replace `$result[cmd][field]...` references (after URL decoding) with earlier results.
    A value that is exactly one reference takes the referenced value as is."""
    if isinstance(value, dict):
        return {k: _substitute(v, done) for k, v in value.items()}
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        found, ok = _resolve(done, whole.group(1), whole.group(2))
        return found if ok else value

    def repl(m: re.Match) -> str:
        found, ok = _resolve(done, m.group(1), m.group(2))
        return str(found) if ok and not isinstance(found, dict | list) else m.group(0)

    return _REF.sub(repl, value)
