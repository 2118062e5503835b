"""What the webhook app was asked to do, kept in the state before it answers 200 (QUEUE_URL set).

Bitrix24 never redelivers an event or a robot call we answered, so a job lives here first and in
the queue second: a worker that dies mid-job, or a Redis that restarts, loses nothing - the sweep
queues again every job not done after QUEUE_REDELIVER_SECONDS. A job runs at least once; the
ledger and the markers make a second run write nothing twice. Payloads may carry tokens (an
install's grant): they are sealed like the installs. Same short-connection style as installs.py; the
SQL is in connector/store/inbox.py, so the inbox lives in SQLite or PostgreSQL like the rest of the state.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connector.sealing import Sealer
from connector.state import state_failure
from connector.store import engine, migrations
from connector.store import inbox as rows

LOCK_TIMEOUT_SECONDS = 30
DONE_KEEP_SECONDS = 7 * 86400  # done jobs are kept a week (what happened, for /status), then dropped
CRM_EVENT = "crm_event"  # a sync request's reason: a record changed in the CRM (maybe by the app's own write)


@dataclass(frozen=True)
class Entry:
    id: int
    tenant: str
    kind: str  # "sync", or a job: "bitrix.install", "bitrix.robot.rs_classify", ...
    lane: str  # "robots" (answered first) or "jobs"
    payload: dict
    attempts: int
    done: bool


class Inbox:
    """`target`: the state's SQLite path or postgresql:// URL (settings.state_target)."""

    def __init__(self, target: str | Path, sealer: Sealer | None = None) -> None:
        self.target = target if engine.is_postgres(target) else engine.sqlite_path(target)
        self.sealer = sealer or Sealer()
        with self._connect() as db:
            migrations.prepare(db)  # migration 5 makes the inbox
            self.deployment = rows.deployment(db)  # whose jobs these are, on a Redis other deployments may share

    @contextmanager
    def _connect(self) -> Iterator[engine.Db]:
        """A short connection (autocommit: each statement is committed when it returns); PostgreSQL's from
        the process's pool - a new one per call forked a server process for every portal event serve took
        (a quarter of serve's time in the 100-portal benchmark)."""
        try:
            with engine.pooled(self.target, timeout=LOCK_TIMEOUT_SECONDS) as db:
                yield db
        except sqlite3.Error as exc:
            raise state_failure(self.target, exc) from None

    def put(self, tenant: str, kind: str, lane: str, payload: dict, *, now: float | None = None) -> int:
        """Keep one job; its id is what the queue carries. Committed when this returns."""
        text = self.sealer.seal(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
        with self._connect() as db:
            return rows.put(db, tenant, kind, lane, text, time.time() if now is None else now)

    def put_sync(self, tenant: str, payload: dict, *, now: float | None = None) -> tuple[int, bool]:
        """Keep a sync request: (its id, whether it is new). A request while another of the tenant waits
        for a worker joins that one - the sync a worker starts later reads the CRM after both - so a burst
        of events (a portal echoes every write the app makes: thousands after a first sync) is one row and
        one message, not one each for the queue to carry and the sweep to send again."""
        text = self.sealer.seal(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
        with self._connect() as db, db.tx(lock=f"inbox-sync:{tenant}"):
            waiting = rows.waiting_sync(db, tenant)
            # a CRM event's request may end early (connector.quiet); any other reason joining makes it a full sync
            if waiting is not None and (payload.get("reason") == CRM_EVENT or rows.replace_waiting(db, waiting, text)):
                return waiting, False
            return rows.put(db, tenant, "sync", "jobs", text, time.time() if now is None else now), True

    def get(self, entry_id: int) -> Entry | None:
        with self._connect() as db:
            row = rows.get(db, entry_id)
        if row is None:
            return None
        return Entry(row[0], row[1], row[2], row[3], json.loads(self.sealer.open(row[4])), row[5], row[6] is not None)

    def enqueued(self, entry_id: int, *, now: float | None = None) -> None:
        with self._connect() as db:
            rows.enqueued(db, entry_id, time.time() if now is None else now)

    def started(self, entry_id: int, *, now: float | None = None) -> None:
        with self._connect() as db:
            rows.started(db, entry_id, time.time() if now is None else now)

    def open_syncs(self, tenant: str) -> list[int]:
        """The tenant's sync requests not done yet: one sync answers all of them."""
        with self._connect() as db:
            return rows.open_syncs(db, tenant)

    def reasons(self, ids: list[int]) -> list[str]:
        """Why each of these sync requests was made ("crm_event", "event", "job", "schedule", a job's kind)."""
        return [str(e.payload.get("reason", "")) if e else "" for e in map(self.get, ids)]

    def has_open(self, tenant: str) -> bool:
        """Whether a job of the tenant (its install, an event...) still waits for a worker."""
        with self._connect() as db:
            return rows.has_open(db, tenant)

    def done(self, ids: list[int], *, error: str | None = None, now: float | None = None) -> None:
        if not ids:
            return
        with self._connect() as db, db.tx():
            rows.done(db, ids, error, time.time() if now is None else now)

    def overdue(self, after_seconds: float, *, now: float | None = None) -> list[tuple[int, str, str, str]]:
        """(id, tenant, kind, lane) of each job not done, queued (or last started) longer ago than
        `after_seconds`, or never queued at all: what the sweep queues again. They are claimed (marked
        queued now), so a sweep running at the same time on another worker never queues them twice."""
        now = time.time() if now is None else now
        cutoff = now - after_seconds
        with self._connect() as db, db.tx():
            rows.drop_done(db, cutoff - DONE_KEEP_SECONDS)
            return rows.claim_overdue(db, cutoff, now)

    def counts(self) -> dict[str, int]:
        """Open and done jobs (for /status and tests)."""
        with self._connect() as db:
            open_, done = rows.counts(db)
        return {"open": open_, "done": done}
