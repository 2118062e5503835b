"""What the webhook app was asked to do, kept in the state file before it answers 200 (QUEUE_URL set).

Bitrix24 never redelivers an event or a robot call we answered, so a job lives here first and in
the queue second: a worker that dies mid-job, or a Redis that restarts, loses nothing - the sweep
queues again every job not done after QUEUE_REDELIVER_SECONDS. A job runs at least once; the
ledger and the markers make a second run write nothing twice. Payloads may carry tokens (an
install's grant): they are sealed like the installs. Same short-connection style as installs.py.
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
from connector.state import connect_private, state_failure

LOCK_TIMEOUT_SECONDS = 30
DONE_KEEP_SECONDS = 7 * 86400  # done jobs are kept a week (what happened, for /status), then dropped

SCHEMA = """
CREATE TABLE IF NOT EXISTS app_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, kind TEXT NOT NULL, lane TEXT NOT NULL,
  payload TEXT NOT NULL, created_at REAL NOT NULL, enqueued_at REAL, started_at REAL, done_at REAL,
  attempts INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE INDEX IF NOT EXISTS app_inbox_open ON app_inbox (done_at, tenant, kind);
"""


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
    def __init__(self, path: str | Path, sealer: Sealer | None = None) -> None:
        self.path = Path(path)
        self.sealer = sealer or Sealer()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = connect_private(self.path, timeout=LOCK_TIMEOUT_SECONDS)
        try:
            with db:  # one transaction per call, committed on leaving
                yield db
        except sqlite3.Error as exc:
            raise state_failure(self.path, exc) from None
        finally:
            db.close()

    def put(self, tenant: str, kind: str, lane: str, payload: dict, *, now: float | None = None) -> int:
        """Keep one job; its id is what the queue carries. Committed when this returns."""
        text = self.sealer.seal(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
        with self._connect() as db:
            cur = db.execute("INSERT INTO app_inbox (tenant, kind, lane, payload, created_at) VALUES (?, ?, ?, ?, ?)",
                             (tenant, kind, lane, text, time.time() if now is None else now))
            return int(cur.lastrowid)

    def get(self, entry_id: int) -> Entry | None:
        with self._connect() as db:
            row = db.execute("SELECT id, tenant, kind, lane, payload, attempts, done_at FROM app_inbox WHERE id=?",
                             (entry_id,)).fetchone()
        if row is None:
            return None
        return Entry(row[0], row[1], row[2], row[3], json.loads(self.sealer.open(row[4])), row[5], row[6] is not None)

    def enqueued(self, entry_id: int, *, now: float | None = None) -> None:
        with self._connect() as db:
            db.execute("UPDATE app_inbox SET enqueued_at=? WHERE id=?", (time.time() if now is None else now, entry_id))

    def started(self, entry_id: int, *, now: float | None = None) -> None:
        with self._connect() as db:
            db.execute("UPDATE app_inbox SET started_at=?, attempts=attempts+1 WHERE id=?",
                       (time.time() if now is None else now, entry_id))

    def open_syncs(self, tenant: str) -> list[int]:
        """The tenant's sync requests not done yet: one sync answers all of them."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM app_inbox WHERE done_at IS NULL AND tenant=? AND kind='sync'",
                              (tenant,)).fetchall()
        return [r[0] for r in rows]

    def done(self, ids: list[int], *, error: str | None = None, now: float | None = None) -> None:
        if not ids:
            return
        now = time.time() if now is None else now
        with self._connect() as db:
            db.executemany("UPDATE app_inbox SET done_at=?, error=? WHERE id=? AND done_at IS NULL",
                           [(now, error, i) for i in ids])

    def overdue(self, after_seconds: float, *, now: float | None = None) -> list[tuple[int, str, str, str]]:
        """(id, tenant, kind, lane) of each job not done, queued (or last started) longer ago than
        `after_seconds`, or never queued at all: what the sweep queues again."""
        cutoff = (time.time() if now is None else now) - after_seconds
        with self._connect() as db:
            db.execute("DELETE FROM app_inbox WHERE done_at < ?", (cutoff - DONE_KEEP_SECONDS,))
            rows = db.execute(
                "SELECT id, tenant, kind, lane FROM app_inbox WHERE done_at IS NULL AND created_at < ? "
                "AND COALESCE(enqueued_at, 0) < ? AND COALESCE(started_at, 0) < ? ORDER BY id",
                (cutoff, cutoff, cutoff)).fetchall()
        return [tuple(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Open and done jobs (for /status and tests)."""
        with self._connect() as db:
            open_, done = db.execute("SELECT COUNT(*) - COUNT(done_at), COUNT(done_at) FROM app_inbox").fetchone()
        return {"open": int(open_ or 0), "done": int(done or 0)}
