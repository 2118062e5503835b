"""Answers to the feedback question (0-10) that came through `POST /feedback/<secret>`, kept in the
state file, and laid onto the purchases they rate before the playbook evaluates them.

A deal field the CRM fills (Bitrix24 UF, amoCRM custom field) is read with the deal; an answer
posted here fills a purchase whose deal field is empty, and a later answer replaces an earlier one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from datetime import date

from connector.model import Customer
from connector.state import State
from connector.store import cards


def parse_score(value: object) -> int | None:
    """0-10 as an integer (" 7", "7", 7), anything else None."""
    text = str(value).strip()
    return int(text) if text.isdigit() and 0 <= int(text) <= 10 else None


class FeedbackAnswers:
    """The `feedback` table: one answer per purchase, the latest kept."""

    def __init__(self, state: State) -> None:
        self.db = state.db

    def record(self, account: str, purchase_id: str, score: int, answered_on: date) -> None:
        cards.record_feedback(self.db, account, purchase_id, score, answered_on.isoformat())

    def scores(self, account: str) -> dict[str, int]:
        return cards.feedback_scores(self.db, account)


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
        return cards.feedback_scores(state.db, account)
    except sqlite3.OperationalError:
        return {}
