"""birthday: a greeting with an offer a few days before the customer's birthday, once a year."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_segments, make_action, occurrence


@dataclass(frozen=True)
class BirthdayConfig(Message):
    enabled: bool = True
    priority: int = field(default=50, metadata={"min": 0})
    days_before: int = field(default=3, metadata={"min": 0, "max": 60})
    segments: list[str] = field(default_factory=list)
    min_purchases: int = field(default=1, metadata={"min": 0})


class BirthdayRule(Rule):
    """Birthday greeting.

    When it fires: any day from `days_before` the birthday up to the day itself, for customers
    with `Customer.birthday`, at least `min_purchases` purchases and in one of `segments`
    (empty: everyone). 29 February is celebrated on 28 February in other years.
    What it plans: one action per year; the anchor is the year of the birthday. A dated step
    (`payload["send_by"]`): guards never move it past the birthday.
    Example: birthday 05-10, days_before 3 -> planned 05-07..05-10, key ...:birthday:2026:greeting.
    """

    kind = "birthday"
    Config = BirthdayConfig

    def may_fire(self, due, config: BirthdayConfig):
        """Customers with a birthday in its window today (segments are left to plan())."""
        if not due.birthdays:
            return due.nobody()
        today = due.today
        windows = [(today.year, config.days_before), (today.year + 1, config.days_before)]

        def close(month: int, day: int) -> bool:
            return any(occurrence(y, month, day) - timedelta(days=before) <= today <= occurrence(y, month, day)
                       for y, before in windows)

        born = getattr(due, "born", None)  # month * 100 + day per customer (0: none), when read as a column
        if born is not None:
            import numpy as np

            days = np.unique(born[born > 0])
            return np.isin(born, days[[close(d // 100, d % 100) for d in days.tolist()]]) & (due.n >= config.min_purchases)
        near = due.each(lambda c: c.birthday is not None and close(c.birthday.month, c.birthday.day))
        return near & (due.n >= config.min_purchases)

    def plan(self, facts: CustomerFacts, today: date, config: BirthdayConfig) -> Iterator[Action]:
        born = facts.customer.birthday
        if born is None or facts.n < config.min_purchases or not in_segments(facts, config.segments):
            return
        for year in (today.year, today.year + 1):
            day = occurrence(year, born.month, born.day)
            due = day - timedelta(days=config.days_before)
            if due <= today <= day:
                yield make_action(facts, self.kind, str(year), "greeting", due, config, config.priority,
                                  {"date": day.isoformat()}, {"send_by": day.isoformat()})
