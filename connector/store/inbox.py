"""Queries of the queue's inbox: each event, robot call and install kept before the webapp answers 200.

A row is a job until `done_at` is set. The sweep *claims* what it queues again (`claim_overdue`): the
rows are locked and marked queued in one transaction, so two sweeps at once (Redis away, no shared
key) never queue one job twice - PostgreSQL skips rows another sweep holds (FOR UPDATE SKIP LOCKED),
SQLite's write lock makes the second sweep wait and then find them queued.
"""

from __future__ import annotations

import uuid

from connector.store.engine import Db

COLUMNS = "id, tenant, kind, lane, payload, attempts, done_at"


def deployment(db: Db) -> str:
    """This state's deployment id, made once (the first process to ask writes it; every other reads it):
    the queue's messages and Redis keys carry it, so deployments sharing a Redis never take each other's."""
    row = db.execute("SELECT value FROM meta WHERE name='deployment'").fetchone()
    if row is None:  # a write only the first time (two processes at once: the first one's id stays)
        db.execute("INSERT INTO meta (name, value) VALUES ('deployment', ?) ON CONFLICT(name) DO NOTHING",
                   (uuid.uuid4().hex[:10],))
        row = db.execute("SELECT value FROM meta WHERE name='deployment'").fetchone()
    return str(row[0])


def put(db: Db, tenant: str, kind: str, lane: str, sealed: str, now: float) -> int:
    return int(db.execute("INSERT INTO app_inbox (tenant, kind, lane, payload, created_at) VALUES (?, ?, ?, ?, ?) "
                          "RETURNING id", (tenant, kind, lane, sealed, now)).fetchone()[0])


def waiting_sync(db: Db, tenant: str) -> int | None:
    """The tenant's sync request that no worker has started yet, if any: a new request joins it."""
    row = db.execute("SELECT id FROM app_inbox WHERE done_at IS NULL AND started_at IS NULL AND tenant=? "
                     "AND kind='sync' ORDER BY id LIMIT 1", (tenant,)).fetchone()
    return int(row[0]) if row else None


def replace_waiting(db: Db, entry_id: int, sealed: str) -> bool:
    """A waiting request takes a joining request's payload (a full sync's reason outranks a CRM event's);
    False when a worker started it meanwhile."""
    return db.execute("UPDATE app_inbox SET payload=? WHERE id=? AND started_at IS NULL",
                      (sealed, entry_id)).rowcount == 1


def get(db: Db, entry_id: int) -> tuple | None:
    """(id, tenant, kind, lane, sealed payload, attempts, done at)."""
    return db.execute(f"SELECT {COLUMNS} FROM app_inbox WHERE id=?", (entry_id,)).fetchone()


def enqueued(db: Db, entry_id: int, now: float) -> None:
    db.execute("UPDATE app_inbox SET enqueued_at=? WHERE id=?", (now, entry_id))


def started(db: Db, entry_id: int, now: float) -> None:
    db.execute("UPDATE app_inbox SET started_at=?, attempts=attempts+1 WHERE id=?", (now, entry_id))


def open_syncs(db: Db, tenant: str) -> list[int]:
    rows = db.execute("SELECT id FROM app_inbox WHERE done_at IS NULL AND tenant=? AND kind='sync' ORDER BY id",
                      (tenant,)).fetchall()
    return [int(r[0]) for r in rows]


def has_open(db: Db, tenant: str) -> bool:
    return db.execute("SELECT 1 FROM app_inbox WHERE done_at IS NULL AND tenant=? LIMIT 1", (tenant,)).fetchone() is not None


def done(db: Db, ids: list[int], error: str | None, now: float) -> None:
    db.executemany("UPDATE app_inbox SET done_at=?, error=? WHERE id=? AND done_at IS NULL",
                   [(now, error, i) for i in ids])


def drop_done(db: Db, before: float) -> None:
    db.execute("DELETE FROM app_inbox WHERE done_at < ?", (before,))


def claim_overdue(db: Db, cutoff: float, now: float) -> list[tuple[int, str, str, str]]:
    """(id, tenant, kind, lane) of each job not done, created, queued and started before `cutoff`, marked
    queued at `now` in the same transaction (the caller holds `db.tx()`), so no other sweep takes it."""
    rows = db.execute(
        "SELECT id, tenant, kind, lane FROM app_inbox WHERE done_at IS NULL AND created_at < ? "
        "AND COALESCE(enqueued_at, 0) < ? AND COALESCE(started_at, 0) < ? ORDER BY id" + db.skip_locked(),
        (cutoff, cutoff, cutoff)).fetchall()
    db.executemany("UPDATE app_inbox SET enqueued_at=? WHERE id=?", [(now, r[0]) for r in rows])
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


def counts(db: Db) -> tuple[int, int]:
    """(open, done)."""
    open_, done_ = db.execute("SELECT COUNT(*) - COUNT(done_at), COUNT(done_at) FROM app_inbox").fetchone()
    return int(open_ or 0), int(done_ or 0)
