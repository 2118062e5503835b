"""pull -> evaluate -> plan -> apply, exactly once.

The ledger marks a key `pending` before its write is sent and `done` when the CRM answers (or
when its `rs:<key>` marker is found in the CRM). A key whose fate is unknown (a crash, a lost
answer) is settled by reading markers back before anything is resent, so a rerun, a retry after
a 503 storm or a run killed mid-write never creates a second object for one key. The CRM's markers
outrank any one state file: a new ledger reads them before writing, and each run reads its own
writes back, so two runs from two state files at once keep the oldest object of a key and drop the
other.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date

from connector.crm import CrmAdapter, CrmRef
from connector.errors import CrmError, RepeatSalesError
from connector.model import Action, ActionKind
from connector.notices import rules_cannot_run
from connector.state import State
from connector.writeback import WritebackPlanner
from playbooks import Evaluation, PlanHistory, evaluate

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
AUTOMATION_REFS = ("workflow", "comment", "salesbot", "note")  # where automation starts leave their markers


@dataclass
class SyncReport:
    evaluation: Evaluation
    plan: list[Action]
    stats: dict
    failed: dict[str, str] = field(default_factory=dict)
    error: CrmError | None = None
    written: dict[str, CrmRef] = field(default_factory=dict)  # this run's writes, where each landed

    def to_json(self, crm_id: Callable[[str], str]) -> dict:
        out = {
            "as_of": self.evaluation.as_of.isoformat(),
            "customers": [{**c.to_json(), "crm_id": crm_id(c.customer_id)} for c in self.evaluation.customers],
            "segments": dict(self.evaluation.segments),
            "metrics": dict(self.evaluation.metrics),
            "plan": [plan_entry(a) for a in self.plan],
            "stats": dict(self.stats),
            "failed": [{"key": k, "reason": r} for k, r in sorted(self.failed.items())],
        }
        if self.evaluation.model is not None:  # the fitted BG/NBD and Gamma-Gamma parameters
            out["model"] = self.evaluation.model
        return out


def plan_entry(action: Action) -> dict:
    return {"key": action.key, "kind": action.kind.value, "customer_id": action.customer_id,
            "rule": action.rule, "step": action.step, "due": action.due.isoformat(), "title": action.title,
            "channel": action.channel.value}


def as_task(action: Action) -> Action:
    """A kind this CRM cannot carry out yet becomes a manager task that says what to do by hand."""
    note = f"[{action.kind.value}] " if action.kind != ActionKind.TASK else ""
    return replace(action, kind=ActionKind.TASK, title=f"{note}{action.title}")


def pull_into_state(adapter: CrmAdapter, state: State, account: str, run_id: int, *, full: bool,
                    dry_run: bool, progress: Progress) -> dict:
    """Stream the CRM's changes into the local snapshot; the cursor moves only after the last page.

    A pull the CRM stopped at a clean point (its error carries `resume_at`) keeps that position; the
    next pull of the same kind goes on from it instead of starting over, under the first run's id.
    """
    cursor = None if full else state.cursor(account)
    mode, since = ("full", "") if cursor is None else ("incremental", cursor.modified_since)
    saved = None if dry_run else state.pull_position(account)
    resume = saved if saved and saved.get("mode") == mode and saved.get("since") == since else None
    pull_run = int(resume["run_id"]) if resume else run_id
    counts: Counter[str] = Counter()
    requests_before = adapter.request_count()
    last_cursor = None
    try:
        for page in adapter.pull(cursor, **({"resume_at": resume["position"]} if resume else {})):
            state.absorb(account, page, pull_run)
            counts["customers"] += len(page.customers)
            counts["purchases"] += len(page.purchases)
            counts["line_items"] += sum(len(p.items) for p in page.purchases)
            counts["products"] += len(page.products)
            counts["removed"] += len(page.removed_purchase_ids)
            counts["skipped_records"] += page.skipped
            last_cursor = page.cursor or last_cursor
            progress(f"pulled {counts['customers']} customers, {counts['purchases']} purchases "
                     f"({adapter.request_count()} requests)")
    except CrmError as exc:
        if exc.resume_at is not None and not dry_run:
            state.save_pull_position(account, {"mode": mode, "since": since, "run_id": pull_run,
                                               "position": exc.resume_at})
            exc.hint = "; ".join(x for x in (exc.hint, "the pull stopped at a saved position and nothing was "
                                             "written: the next run goes on from there") if x)
        raise
    if cursor is None:  # a full read: what the CRM no longer holds leaves the snapshot
        counts["removed"] += state.drop_unseen_purchases(account, pull_run)
    if last_cursor is not None and not dry_run:
        state.save_cursor(account, last_cursor)
    if saved is not None and not dry_run:
        state.save_pull_position(account, None)
    counts["requests"] = adapter.request_count() - requests_before
    counts["mode"] = mode  # type: ignore[assignment]
    if resume:
        counts["resumed"] = 1
    return dict(counts)


def run_sync(adapter: CrmAdapter, state: State, playbook, *, today: date, dry_run: bool = False,
             full: bool = False, progress: Progress | None = None, allow_blank_cards: bool = False) -> SyncReport:
    progress = progress or (lambda _msg: None)
    account = getattr(adapter, "account", adapter.name)
    started, requests_before = time.monotonic(), adapter.request_count()
    with state.lock("sync"):
        run_id = state.start_run(account, "sync", dry_run)
        stats: dict = {}
        try:
            pulled = pull_into_state(adapter, state, account, run_id, full=full, dry_run=dry_run,
                                     progress=progress)
            rebuilt = not dry_run and not state.ledger_counts(account)
            if rebuilt or (full and not dry_run):  # a lost ledger is rebuilt from the CRM; --full sweeps
                pulled["ledger_rebuilt" if rebuilt else "markers_found"] = read_markers(
                    adapter, state, account, today, sweep=not rebuilt)
            history = PlanHistory(state.applied_dates(account))
            evaluation = evaluate(state.customers(account, lean=True), today, playbook, history=history,
                                  catalogue=state.products(account).values(),
                                  prospects=state.prospect_count(account))
            capable = adapter.capabilities
            writeback = WritebackPlanner(state, account, playbook, capable)
            plan = [a if a.kind in capable else as_task(a) for a in evaluation.plan]
            plan = writeback.extend(evaluation, plan, today)  # + card fields of changed customers
            if not dry_run and not allow_blank_cards:
                writeback.refuse_blanking(plan)
            status = state.ledger_status(account, (a.key for a in plan))
            report = SyncReport(evaluation, plan, stats)
            not_done = [a for a in plan if status.get(a.key) != "done"]
            # a step a guard moved past today (quiet day) waits for its day; its key stays the same
            to_write = [a for a in not_done if a.due <= today]
            stats.update(pulled=pulled, planned=len(plan), skipped=len(plan) - len(not_done), written=0,
                         failed=0, deferred=len(not_done) - len(to_write), duplicates_removed=0)
            stats["rules_cannot_run"] = rules_cannot_run(state, account, playbook, adapter)  # said, not silent
            if not dry_run:
                known: list[Action] = []
                if rebuilt:  # automation starts and card values are found only on the customers' cards
                    found = find_on_cards(adapter, evaluation.plan, to_write)
                    state.record_found(account, found, today)
                    known = [a for a in to_write if a.key in found]
                    to_write = [a for a in to_write if a.key not in found]
                planned_keys = {a.key for a in to_write}
                # card fields are re-planned from what was last written, so an older one is never resent
                retries = [a for a, _s in state.unfinished(account) if a.key not in planned_keys
                           and a.kind in capable and a.kind != ActionKind.TAG]
                retries = drop_late_greetings(adapter, state, account, retries, today, report)

                def with_context(chunk: list[Action]) -> list[Action]:  # retries carry theirs already
                    fresh = writeback.enrich([a for a in chunk if a.key in planned_keys])
                    return fresh + [a for a in chunk if a.key not in planned_keys]

                apply_plan(adapter, state, account, to_write + retries, today, report, progress,
                           prepare=with_context)
                settle_race(adapter, state, account, today, report)
                stats["fields_written"] = writeback.record(to_write)
                writeback.record(known)  # cards that already held their values
                stats["written_by_kind"] = written_by_kind(state, account, to_write + retries, status)
            stats["would_write"] = len(to_write) if dry_run else 0
            stats["card_fields_due"] = sum(a.kind == ActionKind.TAG for a in to_write)
        except RepeatSalesError as exc:
            stats["requests"] = adapter.request_count() - requests_before
            state.finish_run(run_id, stats, error=str(exc))
            raise
        stats["requests"] = adapter.request_count() - requests_before
        stats["seconds"] = round(time.monotonic() - started, 2)
        stats["duplicates_removed"] = getattr(getattr(adapter, "writer", None), "duplicates_removed", 0)
        stats["automation_as_tasks"] = getattr(getattr(adapter, "writer", None), "degraded", 0)
        state.finish_run(run_id, stats, error=str(report.error) if report.error else None)
        return report


def read_markers(adapter: CrmAdapter, state: State, account: str, today: date, *, sweep: bool) -> int:
    """Every marker the CRM holds, recorded as done (the adapter removes duplicates as it reads).

    `sweep` (a `--full` run over a kept ledger): automation starts, whose markers sit on each
    customer's card, are read back for the customers the ledger says were started.
    """
    if not hasattr(adapter, "all_written"):
        return 0
    found = adapter.all_written()
    if sweep and hasattr(adapter, "settle_written"):
        found.update(adapter.settle_written(state.done_refs(account, AUTOMATION_REFS)))
    state.record_found(account, found, today)
    return len(found)


def find_on_cards(adapter: CrmAdapter, evaluation_plan: list[Action], to_write: list[Action]) -> dict:
    """Before a new ledger writes: keys whose markers no bulk read shows (automation starts, card values).

    A step planned as automation may have been started before `install --uninstall` turned it
    into a task, so its planned kind, not today's, decides where to look.
    """
    started = {a.key for a in evaluation_plan if a.kind == ActionKind.WORKFLOW}
    unsure = [a.key for a in to_write if a.kind == ActionKind.TAG or a.key in started]
    if not unsure:
        return {}
    return getattr(adapter, "find_on_cards", adapter.find_written)(unsure)


def settle_race(adapter: CrmAdapter, state: State, account: str, today: date, report: SyncReport) -> None:
    """This run's writes read back once: another run from another state file may have written the
    same keys at the same time. Where the CRM holds two objects for a key, the oldest stays (both
    runs pick the same one) and the other goes. Costs about one read per 50 customers written to.
    """
    if not report.written or not hasattr(adapter, "settle_written"):
        return
    try:
        state.mark_done(account, adapter.settle_written(report.written), today)
    except CrmError as exc:  # the writes stand; a later run (or `sync --full`) removes any duplicate
        log.warning("reading back this run's writes failed: %s", exc)
        report.error = report.error or exc


def drop_late_greetings(adapter: CrmAdapter, state: State, account: str, retries: list[Action], today: date,
                        report: SyncReport) -> list[Action]:
    """A dated step (a birthday, a holiday) that failed or was cut off goes out on its date or never.

    One whose fate is unknown may have gone out: its marker settles that; the rest are given up.
    """
    late = {a.key for a in retries if a.payload.get("send_by", "9999-12-31") < today.isoformat()}
    if not late:
        return retries
    found = adapter.find_written(late)
    state.mark_done(account, found, today)
    state.give_up(account, dict.fromkeys(late - set(found), "its date has passed; a greeting is never sent late"))
    report.stats["late_dropped"] = len(late - set(found))
    return [a for a in retries if a.key not in late]


def written_by_kind(state: State, account: str, actions: list[Action], before: dict[str, str]) -> dict[str, int]:
    """How many actions of each kind this run applied (tasks, deals, card fields, automation starts)."""
    now = state.ledger_status(account, (a.key for a in actions))
    counts = Counter(a.kind.value for a in actions if now.get(a.key) == "done" and before.get(a.key) != "done")
    return dict(sorted(counts.items()))


def on_writing_day(actions: list[Action], today: date) -> list[Action]:
    """A step whose day has passed (a first run, a late retry) is due the day it is written, never overdue.

    Only what the CRM receives changes: the plan and the ledger keep the step's own due date.
    """
    return [a if a.due >= today else replace(a, due=today) for a in actions]


def apply_plan(adapter: CrmAdapter, state: State, account: str, actions: list[Action], today: date,
               report: SyncReport, progress: Progress,
               prepare: Callable[[list[Action]], list[Action]] | None = None) -> None:
    """Write in the adapter's batch size; settle unknown fates by markers before any resend.

    `prepare` finishes each batch just before it is sent (the manager's context), so long bodies
    exist for one batch at a time.
    """
    if not actions:
        return
    status = state.ledger_status(account, (a.key for a in actions))
    unsure = [a.key for a in actions if status.get(a.key) == "pending"]
    if unsure:  # a run died mid-write: what its markers prove written is done, the rest is resent
        found = adapter.find_written(unsure)
        state.mark_done(account, found, today)
        report.stats["recovered"] = len(found)
        actions = [a for a in actions if a.key not in found]
    size = getattr(adapter, "write_batch", 50)
    queue = deque((a, False) for a in actions)  # (action, prepared already?) in sending order
    while queue:
        taken = [queue.popleft() for _ in range(min(size, len(queue)))]
        fresh = [a for a, ready in taken if not ready]
        chunk = [a for a, ready in taken if ready] + (prepare(fresh) if prepare is not None and fresh else fresh)
        state.mark_pending(account, chunk)
        try:
            outcomes = adapter.write(on_writing_day(chunk, today))
        except CrmError as exc:  # the batch's fate is unknown: its markers tell
            log.warning("write batch failed: %s", exc)
            try:
                found = adapter.find_written([a.key for a in chunk])
            except CrmError:
                report.error = exc  # still pending: the next run settles it before resending
                return
            state.mark_done(account, found, today)
            report.stats["written"] += len(found)
            # the gateway gave up on a batch too big or too slow (doc: shrink and retry, see
            # shared/reference/amocrm.md "Writes"): the rest of this run goes in halves
            if getattr(exc, "status", None) == 504 and size > 1:
                size = max(1, size // 2)
                queue.extendleft((a, True) for a in reversed([a for a in chunk if a.key not in found]))
                report.stats["batch_size"] = size
                continue
            report.error = exc
            return
        done = {o.key: o.ref for o in outcomes if o.ok and o.ref}
        report.written.update(done)
        failed = {o.key: o.reason or "refused" for o in outcomes if not o.ok}
        state.mark_done(account, done, today)
        state.mark_failed(account, failed)
        report.failed.update(failed)
        report.stats["written"] += len(done)
        report.stats["failed"] += len(failed)
        progress(f"written {report.stats['written']} of {len(actions)} actions")
