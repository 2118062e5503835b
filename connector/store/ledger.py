"""Queries on the applied-action ledger, the runs table and the run locks.

A ledger row is `pending` from just before its write until the CRM's answer proves it `done`;
`failed` rows are retried until `attempts` reaches the caller's limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from connector.store.engine import Db
from connector.store.snapshot import chunks, marks

# --- the ledger -------------------------------------------------------------------------------


def status(db: Db, account: str, keys: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in chunks(list(keys)):
        out.update(dict(db.execute(f"SELECT key, status FROM ledger WHERE account=? AND key IN ({marks(chunk)})",
                                   (account, *chunk))))
    return out


def unfinished(db: Db, account: str, max_attempts: int) -> list[tuple[str, str]]:
    """(action json, status) of rows left pending or failed that may still be retried."""
    rows = db.execute("SELECT action, status FROM ledger WHERE account=? AND status IN ('pending', 'failed') "
                      f"AND attempts < ? AND action <> '{{}}' ORDER BY {db.by('key')}", (account, max_attempts))
    return [(a, s) for a, s in rows]


def mark_pending(db: Db, account: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    """rows: (key, kind, customer id, rule, action json)."""
    now = time.time()
    with db.tx():
        db.executemany(
            "INSERT INTO ledger (account, key, status, kind, customer_id, rule, action, attempts, updated_at) "
            "VALUES (?, ?, 'pending', ?, ?, ?, ?, 1, ?) ON CONFLICT(account, key) DO UPDATE SET "
            "status='pending', attempts=ledger.attempts+1, updated_at=excluded.updated_at",
            [(account, k, kind, c, rule, a, now) for k, kind, c, rule, a in rows])


def mark_done(db: Db, account: str, done: dict[str, tuple[str, str]], today: str) -> None:
    """PostgreSQL: one statement over arrays. A row per round trip cost 0.3 s per 3,444 actions on a quiet
    machine and 5 s under the 100-portal benchmark's load - half of a worker's time there."""
    if not done:
        return
    now = time.time()
    with db.tx():
        if db.pg:
            db.execute("UPDATE ledger AS l SET status='done', crm_kind=v.kind, crm_id=v.id, reason=NULL, "
                       "updated_at=?, applied_on=COALESCE(l.applied_on, ?) FROM unnest(?::text[], ?::text[], "
                       "?::text[]) AS v(key, kind, id) WHERE l.account=? AND l.key=v.key",
                       (now, today, list(done), [v[0] for v in done.values()], [v[1] for v in done.values()],
                        account))
            return
        db.executemany("UPDATE ledger SET status='done', crm_kind=?, crm_id=?, reason=NULL, updated_at=?, "
                       "applied_on=COALESCE(applied_on, ?) WHERE account=? AND key=?",
                       [(kind, crm_id, now, today, account, k) for k, (kind, crm_id) in done.items()])


def mark_failed(db: Db, account: str, failed: dict[str, str], attempts: int | None = None) -> None:
    """`attempts`: set it (a key never to be retried again), else leave it."""
    now = time.time()
    with db.tx():
        if attempts is None:
            db.executemany("UPDATE ledger SET status='failed', reason=?, updated_at=? WHERE account=? AND key=?",
                           [(reason[:500], now, account, k) for k, reason in failed.items()])
        else:
            db.executemany("UPDATE ledger SET status='failed', reason=?, attempts=?, updated_at=? "
                           "WHERE account=? AND key=?",
                           [(reason[:500], attempts, now, account, k) for k, reason in failed.items()])


def record_found(db: Db, account: str, found: dict[str, tuple[str, str]], today: str) -> None:
    now = time.time()
    with db.tx():
        db.executemany(
            "INSERT INTO ledger (account, key, status, kind, customer_id, rule, action, crm_kind, crm_id, "
            "updated_at, applied_on) VALUES (?, ?, 'done', ?, '', '', '{}', ?, ?, ?, ?) "
            "ON CONFLICT(account, key) DO UPDATE SET status='done', crm_kind=excluded.crm_kind, "
            "crm_id=excluded.crm_id, updated_at=excluded.updated_at, "
            "applied_on=COALESCE(ledger.applied_on, excluded.applied_on)",
            [(account, k, kind, kind, crm_id, now, today) for k, (kind, crm_id) in found.items()])


def done_refs(db: Db, account: str, crm_kinds: list[str]) -> list[tuple[str, str, str | None]]:
    return list(db.execute(f"SELECT key, crm_kind, crm_id FROM ledger WHERE account=? AND status='done' AND "
                           f"crm_kind IN ({marks(crm_kinds)})", (account, *crm_kinds)))


def applied_dates(db: Db, account: str) -> list[tuple[str, str]]:
    return list(db.execute("SELECT key, applied_on FROM ledger WHERE account=? AND status='done' "
                           "AND applied_on IS NOT NULL", (account,)))


def counts(db: Db, account: str) -> dict[str, int]:
    return {s: int(n) for s, n in db.execute("SELECT status, COUNT(*) FROM ledger WHERE account=? GROUP BY status",
                                             (account,))}


def given_up(db: Db, account: str, rule: str, max_attempts: int) -> set[str]:
    rows = db.execute("SELECT key FROM ledger WHERE account=? AND status='failed' AND attempts>=? AND rule=?",
                      (account, max_attempts, rule))
    return {k for (k,) in rows}


def touches_of(db: Db, account: str, customers: list[str]) -> list[tuple[str, str, str, str]]:
    """(customer, rule, action json, applied on) of every action applied to these customers."""
    out = []
    for chunk in chunks(sorted(customers)):  # by the ledger's customer index
        out += db.execute("SELECT customer_id, rule, action, applied_on FROM ledger WHERE account=? AND "
                          f"customer_id IN ({marks(chunk)}) AND status='done' AND "
                          "applied_on IS NOT NULL AND action <> '{}'", (account, *chunk)).fetchall()
    return out


def customer_rows(db: Db, account: str, customer_id: str, limit: int) -> list[tuple]:
    """(rule, kind, action json, status, applied on, reason) of one customer, newest first."""
    return db.execute("SELECT rule, kind, action, status, applied_on, reason FROM ledger WHERE account=? "
                      "AND customer_id=? ORDER BY COALESCE(applied_on, '') DESC LIMIT ?",
                      (account, customer_id, limit)).fetchall()


def done_crm_ids(db: Db, account: str, crm_kind: str, since: str | None = None) -> list[str]:
    """CRM ids of done rows of one kind (applied on or after `since`, if given)."""
    q = "SELECT crm_id FROM ledger WHERE account=? AND status='done' AND crm_kind=? AND crm_id IS NOT NULL"
    params: tuple = (account, crm_kind)
    if since is not None:
        q, params = q + " AND applied_on >= ?", (*params, since)
    return [r[0] for r in db.execute(q, params)]


def applied_on_day(db: Db, account: str, day: str) -> list[str]:
    rows = db.execute("SELECT action FROM ledger WHERE account=? AND status='done' AND applied_on=? AND "
                      "action <> '{}'", (account, day))
    return [r[0] for r in rows]


def applied_between(db: Db, account: str, since: str, until: str) -> list[tuple[str, str, str]]:
    """(rule, action json, kind) of done rows applied within [since, until]."""
    return db.execute("SELECT rule, action, kind FROM ledger WHERE account=? AND status='done' AND "
                      "applied_on >= ? AND applied_on <= ?", (account, since, until)).fetchall()


# --- runs -------------------------------------------------------------------------------------

def start_run(db: Db, account: str, kind: str, dry_run: bool) -> int:
    row = db.execute("INSERT INTO runs (account, kind, started, dry_run) VALUES (?, ?, ?, ?) RETURNING id",
                     (account, kind, time.time(), int(dry_run))).fetchone()
    return int(row[0])


def finish_run(db: Db, run_id: int, stats: dict, error: str | None) -> None:
    db.execute("UPDATE runs SET finished=?, stats=?, error=? WHERE id=?",
               (time.time(), json.dumps(stats, default=str), error, run_id))


def last_runs(db: Db, limit: int) -> list[dict]:
    rows = db.execute("SELECT id, account, kind, started, finished, dry_run, stats, error FROM runs "
                      "ORDER BY id DESC LIMIT ?", (limit,))
    return [{"id": r[0], "account": r[1], "kind": r[2], "started": r[3], "finished": r[4],
             "dry_run": bool(r[5]), "stats": json.loads(r[6]) if r[6] else None, "error": r[7]}
            for r in rows]


# --- run locks --------------------------------------------------------------------------------

def lock_holder(db: Db, name: str) -> tuple[str, float] | None:
    row = db.execute("SELECT holder, acquired FROM locks WHERE name=?", (name,)).fetchone()
    return (row[0], row[1]) if row else None


def hold(db: Db, name: str, holder: str, now: float) -> None:
    db.execute("INSERT INTO locks VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET holder=excluded.holder, "
               "acquired=excluded.acquired", (name, holder, now))


def release(db: Db, name: str, holder: str) -> None:
    db.execute("DELETE FROM locks WHERE name=? AND holder=?", (name, holder))
