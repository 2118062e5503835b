"""Run one REST call or a `batch` of them against the portal.

Doc: settings/how-to-call-rest-api/batch.md - up to 50 commands (`cmd` object or array of
`method?query` strings), `halt`, `$result[cmd][field]` chaining, HTTP 200 with
result / result_error / result_total / result_next / result_time (empty parts as `[]`),
and a nested `batch` failing as that command's error.
"""

from __future__ import annotations

import re
import time

from emulators.kit import Faults, RequestStats

from .limits import OperatingMeter
from .methods import lookup
from .protocol import ApiError, as_yn, ci_get, fault_error, method_not_found, parse_php_query, time_block
from .registry import Listing
from .rights import check_scope
from .store import Portal

MAX_BATCH = 50
_REF = re.compile(r"\$(result|result_total|result_next)((?:\[[^\]]*\])+)")
_PARTS = re.compile(r"\[([^\]]*)\]")


class Outcome:
    __slots__ = ("result", "total", "next", "time")

    def __init__(self, result, total, nxt, time_: dict) -> None:
        self.result, self.total, self.next, self.time = result, total, nxt, time_


class Dispatcher:
    def __init__(self, portal: Portal, meter: OperatingMeter, faults: Faults, stats: RequestStats) -> None:
        self.portal = portal
        self.meter = meter
        self.faults = faults
        self.stats = stats

    def execute(self, method: str, params: dict) -> Outcome:
        """One method call: 404 for unknown methods, 403 outside the caller's scopes, 429 when its
        operating time is spent."""
        if method == "batch":
            return self.batch(params)
        handler = lookup(method)
        if handler is None:
            raise method_not_found()
        check_scope(method)
        if self.meter.blocked(method):
            raise ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")
        start = time.time()
        with self.portal.lock:
            out = handler(self.portal, params)
        finish = time.time()
        operating, reset_at = self.meter.charge(method)
        block = time_block(start, finish, operating, reset_at)
        if isinstance(out, Listing):
            return Outcome(out.result, out.total, out.next, block)
        return Outcome(out, None, None, block)

    def batch(self, params: dict) -> Outcome:
        start = time.time()
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
        for key, name, query in parsed:
            try:
                if name == "batch":
                    raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
                status = self.faults.take([name], drop=False, whole_request=False)
                if status is not None:
                    raise fault_error(int(status))
                sub = _substitute(parse_php_query(query), done)
                out = self.execute(name, sub)
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
        finish = time.time()
        # The outer batch is not charged operating time; its commands are. Doc: settings/performance/limits.md
        return Outcome({part: _php_array(values) for part, values in done.items()}, None, None,
                       time_block(start, finish, 0.0, int(finish + 600)))

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
