"""Queries on what the product keeps besides the snapshot and ledger: values written on cards,
feedback answers posted to the app, and the playbooks saved on the settings page."""

from __future__ import annotations

import time

from connector.store.engine import Db

# --- card fields ------------------------------------------------------------------------------


def written_cards(db: Db, account: str) -> list[tuple[str, int, str]]:
    """(customer, generation, digest) of every card written."""
    return db.execute("SELECT customer_id, generation, digest FROM card_fields WHERE account=?",
                      (account,)).fetchall()


def card_values(db: Db, account: str) -> list[tuple[str, str]]:
    """(customer, values json) of every card written."""
    return db.execute("SELECT customer_id, card_values FROM card_fields WHERE account=?", (account,)).fetchall()


def record_cards(db: Db, rows: list[tuple[str, str, int, str, str, str, float]]) -> None:
    """rows: (account, customer, generation, digest, values json, key, written at)."""
    db.executemany("INSERT INTO card_fields VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account, customer_id) DO "
                   "UPDATE SET generation=excluded.generation, digest=excluded.digest, "
                   "card_values=excluded.card_values, key=excluded.key, written_at=excluded.written_at", rows)


# --- feedback answers -------------------------------------------------------------------------

def record_feedback(db: Db, account: str, purchase_id: str, score: int, answered_on: str) -> None:
    db.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?) ON CONFLICT(account, purchase_id) DO UPDATE SET "
               "score=excluded.score, answered_on=excluded.answered_on, received_at=excluded.received_at",
               (account, purchase_id, score, answered_on, time.time()))


def feedback_scores(db: Db, account: str) -> dict[str, int]:
    rows = db.execute("SELECT purchase_id, score FROM feedback WHERE account=?", (account,))
    return {pid: int(score) for pid, score in rows}


# --- saved playbooks --------------------------------------------------------------------------

def save_version(db: Db, user_id: str, user_name: str, note: str, data: str) -> int:
    with db.tx():
        row = db.execute("INSERT INTO playbook_versions (saved_at, user_id, user_name, note, data) "
                         "VALUES (?, ?, ?, ?, ?) RETURNING id", (time.time(), user_id, user_name, note, data)).fetchone()
    return int(row[0])


def versions(db: Db, limit: int) -> list[dict]:
    rows = db.execute("SELECT id, saved_at, user_name, note FROM playbook_versions ORDER BY id DESC LIMIT ?",
                      (limit,))
    return [{"id": r[0], "saved_at": r[1], "user_name": r[2], "note": r[3]} for r in rows]


def version_data(db: Db, version: int) -> str | None:
    row = db.execute("SELECT data FROM playbook_versions WHERE id=?", (version,)).fetchone()
    return row[0] if row else None


def latest_version(db: Db) -> tuple[int, str] | None:
    row = db.execute("SELECT id, data FROM playbook_versions ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), row[1]) if row else None


def newest_version_number(db: Db) -> int:
    row = db.execute("SELECT MAX(id) FROM playbook_versions").fetchone()
    return int(row[0] or 0)
