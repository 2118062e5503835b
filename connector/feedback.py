"""Answers to the feedback question (0-10) that came through `POST /feedback/<secret>`, kept in the
state file, and laid onto the purchases they rate before the playbook evaluates them.

A deal field the CRM fills (Bitrix24 UF, amoCRM custom field) is read with the deal; an answer
posted here fills a purchase whose deal field is empty, and a later answer replaces an earlier one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import date

from connector.model import Customer
from connector.state import State

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (account TEXT NOT NULL, purchase_id TEXT NOT NULL, score INTEGER NOT NULL,
    answered_on TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (account, purchase_id));
"""


def parse_score(value: object) -> int | None:
    """0-10 as an integer (" 7", "7", 7), anything else None."""
    text = str(value).strip()
    return int(text) if text.isdigit() and 0 <= int(text) <= 10 else None


class FeedbackAnswers:
    """The `feedback` table: one answer per purchase, the latest kept."""

    def __init__(self, state: State) -> None:
        self.db = state.db
        self.db.executescript(SCHEMA)

    def record(self, account: str, purchase_id: str, score: int, answered_on: date) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?)",
                            (account, purchase_id, score, answered_on.isoformat(), time.time()))

    def scores(self, account: str) -> dict[str, int]:
        rows = self.db.execute("SELECT purchase_id, score FROM feedback WHERE account=?", (account,))
        return {pid: score for pid, score in rows}


def with_answers(customers: Iterable[Customer], scores: Mapping[str, int]) -> Iterator[Customer]:
    """Each customer, its purchases carrying the posted answers where the deal field gave none."""
    for c in customers:
        if scores and any(p.id in scores and p.nps is None for p in c.purchases):
            purchases = tuple(dataclasses.replace(p, nps=scores[p.id]) if p.id in scores and p.nps is None else p
                              for p in c.purchases)
            c = dataclasses.replace(c, purchases=purchases)
        yield c


def answers_of(state: State, account: str) -> dict[str, int]:
    """The posted answers of `account`, or none when the state file has no such table (read-only, older)."""
    import sqlite3

    try:
        rows = state.db.execute("SELECT purchase_id, score FROM feedback WHERE account=?", (account,))
        return {pid: score for pid, score in rows}
    except sqlite3.OperationalError:
        return {}
