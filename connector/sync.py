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
from datetime import date, timedelta
from functools import partial

from connector import delivery
from connector.crm import CrmAdapter, CrmRef
from connector.errors import CrmError, RepeatSalesError
from connector.model import Action, ActionKind
from connector.notices import crm_notices, rules_cannot_run
from connector.quiet import settled_mark
from connector.state import State
from connector.writeback import WritebackPlanner
from playbooks import Evaluation, PlanHistory

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class SyncReport:
    evaluation: Evaluation
    plan: list[Action]
    stats: dict
    failed: dict[str, str] = field(default_factory=dict)
    error: CrmError | None = None
    written: dict[str, CrmRef] = field(default_factory=dict)  # this run's writes, where each landed
    delivered: dict[str, Action] = field(default_factory=dict)  # touches as they went out (their channel)

    def to_json(self, crm_id: Callable[[str], str]) -> dict:
        out = {
            "as_of": self.evaluation.as_of.isoformat(),
            "customers": [{**c.to_json(), "crm_id": crm_id(c.customer_id)} for c in self.evaluation.customers],
            "segments": dict(self.evaluation.segments),
            "metrics": dict(self.evaluation.metrics),
            "plan": [plan_entry(self.delivered.get(a.key, a)) for a in self.plan],
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


@dataclass
class Run:
    """What every step of one sync shares: the CRM, the state, whose data, which day, its stats."""

    adapter: CrmAdapter
    state: State
    today: date
    dry_run: bool
    progress: Progress
    account: str = ""
    id: int = 0
    stats: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    requests_before: int = 0
    referral_secret: str = field(default="", repr=False)
    processes: int = 1  # settings SYNC_PROCESSES: 2 makes a big plan with a forked child (connector.forked)

    def __post_init__(self) -> None:
        self.account = self.adapter.account
        self.requests_before = self.adapter.request_count()

    def finish(self, error: str | None, *, complete: bool = True) -> None:
        """Record the run; a run that raised keeps the stats it had gathered."""
        self.stats["requests"] = self.adapter.request_count() - self.requests_before
        if complete:
            written = self.adapter.write_stats()
            self.stats["seconds"] = round(time.monotonic() - self.started, 2)
            self.stats["duplicates_removed"] = written.duplicates_removed
            self.stats["automation_as_tasks"] = written.automation_as_tasks
        self.state.finish_run(self.id, self.stats, error=error)


@dataclass
class Due:
    """The plan against the ledger: what each key's status was before this run, and what goes out today."""

    status: dict[str, str]
    to_write: list[Action]


def run_sync(adapter: CrmAdapter, state: State, playbook, *, today: date, dry_run: bool = False,
             full: bool = False, progress: Progress | None = None, allow_blank_cards: bool = False,
             referral_secret: str = "", playbook_as: str = "", processes: int = 1) -> SyncReport:
    """pull -> rebuild a lost ledger -> evaluate -> plan -> write what is due, once -> record the run.

    `referral_secret` (settings REFERRAL_SECRET) keys the referral codes; without it none is given.
    `playbook_as` names the playbook in force (its saved version), kept with the run's settled mark;
    `processes` (settings SYNC_PROCESSES) how many make a big plan."""
    run = Run(adapter, state, today, dry_run, progress or (lambda _msg: None), referral_secret=referral_secret,
              processes=processes)
    with state.lock("sync"):
        state.settle(run.account, None)  # until this run ends clean, an event's sync never skips (connector.quiet)
        run.id = state.start_run(run.account, "sync", dry_run)
        try:
            pulled = pull_into_state(run, full=full)
            rebuilt = rebuild_ledger(run, pulled, full=full)
            evaluation = evaluate_snapshot(run, playbook)
            writeback = WritebackPlanner(state, run.account, playbook, adapter.capabilities)
            report = SyncReport(evaluation, plan_actions(run, evaluation, writeback, allow_blank_cards), run.stats)
            due = due_today(run, report.plan, pulled, playbook)
            to_write = due.to_write if dry_run else write_due(run, report, writeback, due, rebuilt=rebuilt)
            run.stats["would_write"] = len(to_write) if dry_run else 0
            run.stats["card_fields_due"] = sum(a.kind == ActionKind.TAG for a in to_write)
        except RepeatSalesError as exc:
            run.finish(str(exc), complete=False)
            raise
        run.stats["crm_notices"] = crm_notices(playbook, adapter)  # e.g. amoCRM's Customers mode, said not silent
        run.finish(str(report.error) if report.error else None)
        if not dry_run and report.error is None:
            state.settle(run.account, settled_mark(state, run.account, today, playbook_as))
        return report


def pull_into_state(run: Run, *, full: bool) -> dict:
    """Stream the CRM's changes into the local snapshot; the cursor moves only after the last page.

    A pull the CRM stopped at a clean point (its error carries `resume_at`) keeps that position; the
    next pull of the same kind goes on from it instead of starting over, under the first run's id.
    """
    adapter, state, account = run.adapter, run.state, run.account
    cursor = None if full else state.cursor(account)
    mode, since = ("full", "") if cursor is None else ("incremental", cursor.modified_since)
    saved = None if run.dry_run else state.pull_position(account)
    resume = saved if saved and saved.get("mode") == mode and saved.get("since") == since else None
    pull_run = int(resume["run_id"]) if resume else run.id
    counts: Counter[str] = Counter()
    requests_before = adapter.request_count()
    last_cursor = page_resume = None
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
            page_resume = page.resume or page_resume
            run.progress(f"pulled {counts['customers']} customers, {counts['purchases']} purchases "
                         f"({adapter.request_count()} requests)")
    except CrmError as exc:  # a limit, a block, a bad answer: what was read stays, the next run goes on from there
        if exc.resume_at is not None and not run.dry_run:  # the CRM's own position (Bitrix24 keyset)
            state.save_pull_position(account, {"mode": mode, "since": since, "run_id": pull_run,
                                               "position": exc.resume_at})
            exc.hint = "; ".join(x for x in (exc.hint, "the pull stopped at a saved position and nothing was "
                                             "written: the next run goes on from there") if x)
        elif page_resume is not None and not run.dry_run:  # a cursor the pages carried (amoCRM)
            state.save_cursor(account, page_resume)
            exc.hint = "; ".join(x for x in (exc.hint, "what was read is kept: the next run resumes there") if x)
        raise
    if cursor is None:  # a full read: what the CRM no longer holds leaves the snapshot
        counts["removed"] += state.drop_unseen_purchases(account, pull_run)
    if last_cursor is not None and not run.dry_run:
        state.save_cursor(account, last_cursor)
    if saved is not None and not run.dry_run:
        state.save_pull_position(account, None)
    counts["requests"] = adapter.request_count() - requests_before
    counts["mode"] = mode  # type: ignore[assignment]
    if resume:
        counts["resumed"] = 1
    return dict(counts)


def rebuild_ledger(run: Run, pulled: dict, *, full: bool) -> bool:
    """A lost ledger is rebuilt from the CRM's markers before anything is planned; `--full` sweeps them.

    Returns whether the ledger was rebuilt (its keys found only on cards are looked up before writing).
    """
    if run.dry_run:
        return False
    rebuilt = not run.state.ledger_counts(run.account)
    if rebuilt or full:
        pulled["ledger_rebuilt" if rebuilt else "markers_found"] = read_markers(run, sweep=not rebuilt)
    return rebuilt


def read_markers(run: Run, *, sweep: bool) -> int:
    """Every marker the CRM holds, recorded as done (the adapter removes duplicates as it reads).

    `sweep` (a `--full` run over a kept ledger): automation starts, whose markers sit on each
    customer's card, are read back for the customers the ledger says were started.
    """
    found = run.adapter.all_written()
    if sweep:
        found.update(run.adapter.settle_written(run.state.done_refs(run.account, run.adapter.automation_refs)))
    run.state.record_found(run.account, found, run.today)
    return len(found)


def evaluate_snapshot(run: Run, playbook) -> Evaluation:
    """The playbook over the local snapshot, with what earlier runs applied and when, in columns
    (connector.evaluate_columns: the same Evaluation as playbooks.evaluate over state.customers())."""
    from connector.evaluate_columns import evaluate_snapshot as in_columns

    state, account = run.state, run.account
    history, catalogue = PlanHistory(state.applied_dates(account)), state.products(account).values()
    return in_columns(state, account, run.today, playbook, history=history, catalogue=catalogue,
                      prospects=state.prospect_count(account), secret=run.referral_secret,
                      newcomers=newcomers(run, playbook), processes=run.processes)


def newcomers(run: Run, playbook) -> list:
    """Prospects young enough for a welcome step (none when the playbook has no welcome series)."""
    from playbooks.rules.welcome import horizon_days

    welcome = playbook.rule("welcome")
    if welcome is None:
        return []
    return list(run.state.prospects(run.account, run.today - timedelta(days=horizon_days(welcome))))


def plan_actions(run: Run, evaluation: Evaluation, writeback: WritebackPlanner, allow_blank_cards: bool) -> list[Action]:
    """The playbook's plan in kinds this CRM carries out, plus the card fields of changed customers."""
    capable = run.adapter.capabilities
    plan = delivery.prepare(evaluation.plan, capable, lang=writeback.lang, sender=writeback.config.email_from,
                            why_not=run.adapter.channel_gaps())
    plan = [a if a.kind in capable else as_task(a) for a in plan]
    plan = writeback.extend(evaluation, plan, run.today)
    if not run.dry_run and not allow_blank_cards:
        writeback.refuse_blanking(plan)
    return plan


def due_today(run: Run, plan: list[Action], pulled: dict, playbook) -> Due:
    """What the ledger has not seen done and is due today; counted in the run's stats."""
    status = run.state.ledger_status(run.account, (a.key for a in plan))
    not_done = [a for a in plan if status.get(a.key) != "done"]
    # a step a guard moved past today (quiet day) waits for its day; its key stays the same
    to_write = [a for a in not_done if a.due <= run.today]
    run.stats.update(pulled=pulled, planned=len(plan), skipped=len(plan) - len(not_done), written=0, failed=0,
                     deferred=len(not_done) - len(to_write), duplicates_removed=0)
    run.stats["rules_cannot_run"] = rules_cannot_run(run.state, run.account, playbook, run.adapter)  # said, not silent
    run.stats["rights_missing"] = run.adapter.rights_missing()  # what the CRM user may not do, and what instead
    return Due(status, to_write)


def write_due(run: Run, report: SyncReport, writeback: WritebackPlanner, due: Due, *, rebuilt: bool) -> list[Action]:
    """Write today's actions, then earlier runs' unfinished ones; read this run's writes back.

    Returns the actions of today's plan that were sent (a rebuilt ledger's cards may hold some already).
    """
    known = found_on_cards(run, report.evaluation.plan, due.to_write) if rebuilt else []
    known_keys = {a.key for a in known}
    to_write = [a for a in due.to_write if a.key not in known_keys]
    retries = retries_due(run, {a.key for a in to_write}, report)
    apply_plan(run, to_write + retries, report, prepare=partial(with_context, writeback, {a.key for a in to_write}))
    settle_race(run, report)
    run.stats["fields_written"] = writeback.record(to_write)
    writeback.record(known)  # cards that already held their values
    sent = [report.delivered.get(a.key, a) for a in to_write + retries]
    run.stats["written_by_kind"] = written_by_kind(run, sent, due.status)
    run.stats["channel_fallbacks"] = delivery.fallbacks(a for a in sent if a.key in report.written)
    return to_write


def found_on_cards(run: Run, evaluation_plan: list[Action], to_write: list[Action]) -> list[Action]:
    """Before a new ledger writes: actions whose markers no bulk read shows (automation starts, card values).

    A step planned as automation may have been started before `install --uninstall` turned it
    into a task, so its planned kind, not today's, decides where to look.
    """
    started = {a.key for a in evaluation_plan if a.kind == ActionKind.WORKFLOW}
    # messages and SMS leave their marker in a card comment, which no bulk read finds either
    unsure = [a.key for a in to_write if a.kind in (ActionKind.TAG, ActionKind.MESSAGE, ActionKind.SMS)
              or a.key in started]
    found = run.adapter.find_on_cards(unsure) if unsure else {}
    run.state.record_found(run.account, found, run.today)
    return [a for a in to_write if a.key in found]


def retries_due(run: Run, planned: set[str], report: SyncReport) -> list[Action]:
    """Earlier runs' pending or failed actions this CRM can carry out, minus greetings past their date.

    Card fields are re-planned from what was last written, so an older one is never resent.
    """
    capable = run.adapter.capabilities
    retries = [a for a, _s in run.state.unfinished(run.account) if a.key not in planned
               and a.kind in capable and a.kind != ActionKind.TAG]
    return drop_late_greetings(run, retries, report)


def with_context(writeback: WritebackPlanner, planned: set[str], chunk: list[Action]) -> list[Action]:
    """A batch just before it is sent: today's actions get the manager's context; retries carry theirs."""
    fresh = writeback.enrich([a for a in chunk if a.key in planned])
    return fresh + [a for a in chunk if a.key not in planned]


def settle_race(run: Run, report: SyncReport) -> None:
    """This run's writes read back once: another run from another state file may have written the
    same keys at the same time. Where the CRM holds two objects for a key, the oldest stays (both
    runs pick the same one) and the other goes. Costs about one read per 50 customers written to.
    """
    if not report.written:
        return
    try:
        kept = run.adapter.settle_written(report.written)
    except CrmError as exc:  # the writes stand; a later run (or `sync --full`) removes any duplicate
        log.warning("reading back this run's writes failed: %s", exc)
        report.error = report.error or exc
        return
    # the ledger already holds what this run wrote: only a key where the other run's object stayed changes
    run.state.mark_done(run.account, {k: ref for k, ref in kept.items() if report.written.get(k) != ref}, run.today)


def drop_late_greetings(run: Run, retries: list[Action], report: SyncReport) -> list[Action]:
    """A dated step (a birthday, a holiday) that failed or was cut off goes out on its date or never.

    One whose fate is unknown may have gone out: its marker settles that; the rest are given up.
    """
    late = {a.key for a in retries if a.payload.get("send_by", "9999-12-31") < run.today.isoformat()}
    if not late:
        return retries
    found = run.adapter.find_written(late)
    run.state.mark_done(run.account, found, run.today)
    run.state.give_up(run.account, dict.fromkeys(late - set(found),
                                                 "its date has passed; a greeting is never sent late"))
    report.stats["late_dropped"] = len(late - set(found))
    return [a for a in retries if a.key not in late]


def written_by_kind(run: Run, actions: list[Action], before: dict[str, str]) -> dict[str, int]:
    """How many actions of each kind this run applied (tasks, deals, card fields, automation starts)."""
    now = run.state.ledger_status(run.account, (a.key for a in actions))
    counts = Counter(a.kind.value for a in actions if now.get(a.key) == "done" and before.get(a.key) != "done")
    return dict(sorted(counts.items()))


def on_writing_day(actions: list[Action], today: date) -> list[Action]:
    """A step whose day has passed (a first run, a late retry) is due the day it is written, never overdue.

    Only what the CRM receives changes: the plan and the ledger keep the step's own due date.
    """
    return [a if a.due >= today else replace(a, due=today) for a in actions]


def apply_plan(run: Run, actions: list[Action], report: SyncReport,
               prepare: Callable[[list[Action]], list[Action]] | None = None) -> None:
    """Write in the adapter's batch size; settle unknown fates by markers before any resend.

    `prepare` finishes each batch just before it is sent (the manager's context), so long bodies
    exist for one batch at a time. A failed batch is settled by its markers; the adapter's batch
    policy says whether the rest goes on in smaller batches or waits for the next run.
    """
    actions = recover_unsure(run, actions, report)
    if not actions:
        return
    size = run.adapter.batch.size
    queue = deque((a, False) for a in actions)  # (action, prepared already?) in sending order
    while queue:
        taken = [queue.popleft() for _ in range(min(size, len(queue)))]
        fresh = [a for a, ready in taken if not ready]
        chunk = [a for a, ready in taken if ready] + (prepare(fresh) if prepare is not None and fresh else fresh)
        run.state.mark_pending(run.account, chunk)
        try:
            outcomes = run.adapter.write(on_writing_day(chunk, run.today))
        except CrmError as exc:  # the batch's fate is unknown: its markers tell
            log.warning("write batch failed: %s", exc)
            unwritten = settle_failed_batch(run, chunk, report)
            smaller = run.adapter.batch.after_failure(size, exc.status) if unwritten is not None else None
            if smaller is None:
                report.error = exc  # what is still pending is settled by the next run before resending
                return
            size = report.stats["batch_size"] = smaller
            queue.extendleft((a, True) for a in reversed(unwritten))
            continue
        record_outcomes(run, outcomes, report)
        run.progress(f"written {report.stats['written']} of {len(actions)} actions")


def recover_unsure(run: Run, actions: list[Action], report: SyncReport) -> list[Action]:
    """A run died mid-write: what its markers prove written is done, the rest is resent."""
    if not actions:
        return actions
    status = run.state.ledger_status(run.account, (a.key for a in actions))
    unsure = [a.key for a in actions if status.get(a.key) == "pending"]
    if not unsure:
        return actions
    found = run.adapter.find_written(unsure)
    run.state.mark_done(run.account, found, run.today)
    report.stats["recovered"] = len(found)
    return [a for a in actions if a.key not in found]


def settle_failed_batch(run: Run, chunk: list[Action], report: SyncReport) -> list[Action] | None:
    """The batch's markers read back: what they show is done; returns the rest, or None when even
    the read failed (the whole batch stays pending)."""
    try:
        found = run.adapter.find_written([a.key for a in chunk])
    except CrmError:
        return None
    run.state.mark_done(run.account, found, run.today)
    report.stats["written"] += len(found)
    return [a for a in chunk if a.key not in found]


def record_outcomes(run: Run, outcomes, report: SyncReport) -> None:
    done = {o.key: o.ref for o in outcomes if o.ok and o.ref}
    # the touch as it went out, without the manager's context in its body: the report and the run's
    # counts read its kind, channel, title and tried channels; the bodies were ~8 MB a 20,000-customer sync
    report.delivered.update({o.key: replace(o.delivered, body="") for o in outcomes if o.ok and o.delivered is not None})
    failed = {o.key: o.reason or "refused" for o in outcomes if not o.ok}
    report.written.update(done)
    run.state.mark_done(run.account, done, run.today)
    run.state.mark_failed(run.account, failed)
    report.failed.update(failed)
    report.stats["written"] += len(done)
    report.stats["failed"] += len(failed)
