"""holidays: greetings with an offer on configured dates (8 March, 23 February, New Year...)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_segments, make_action, occurrence


@dataclass(frozen=True)
class Holiday(Message):
    name: str = field(default="", metadata={"required": True})
    date: str = field(default="", metadata={"required": True, "doc": "MM-DD, e.g. \"03-08\""})
    label: str = ""
    days_before: int = field(default=2, metadata={"min": 0, "max": 60})
    segments: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def check(self):
        yield from super().check()
        if month_day(self.date) is None:
            yield "date", f"bad date {self.date!r}", "use MM-DD, e.g. \"03-08\""


@dataclass(frozen=True)
class HolidaysConfig:
    enabled: bool = True
    priority: int = field(default=70, metadata={"min": 0})
    min_purchases: int = field(default=1, metadata={"min": 0})
    dates: list[Holiday] = field(default_factory=list)

    def check(self):
        names = [h.name for h in self.dates]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"dates[{i}].name", f"duplicate holiday name {name!r}", "holiday names are part of action keys"


def month_day(text: str) -> tuple[int, int] | None:
    try:
        m, d = (int(x) for x in text.split("-"))
        date(2000, m, d)
    except ValueError:
        return None
    return m, d


class HolidaysRule(Rule):
    """Holiday greetings.

    When it fires: from `days_before` the holiday up to the day itself, for customers with at
    least `min_purchases` purchases, in one of the holiday's `segments` (empty: everyone) and
    whose CRM `fields` match (e.g. {gender = "F"}).
    What it plans: one action per holiday per year; anchor = the year of the holiday. A dated
    step (`payload["send_by"]`): guards never move it past the holiday.
    Example: "03-08", days_before 2 -> planned 03-06..03-08, key ...:holidays:2026:march8.
    """

    kind = "holidays"
    Config = HolidaysConfig

    def may_fire(self, due, config: HolidaysConfig):
        """Nobody on a day no holiday's window holds; else whoever bought often enough."""
        today = due.today
        for h in config.dates:
            m, d = month_day(h.date) or (1, 1)
            for year in (today.year, today.year + 1):
                day = occurrence(year, m, d)
                if day - timedelta(days=h.days_before) <= today <= day:
                    return due.n >= config.min_purchases
        return due.nobody()

    def plan(self, facts: CustomerFacts, today: date, config: HolidaysConfig) -> Iterator[Action]:
        if facts.n < config.min_purchases:
            return
        for h in config.dates:
            if not in_segments(facts, h.segments):
                continue
            if any(facts.customer.fields.get(k) != v for k, v in h.fields.items()):
                continue
            m, d = month_day(h.date) or (1, 1)
            for year in (today.year, today.year + 1):
                day = occurrence(year, m, d)
                due = day - timedelta(days=h.days_before)
                if due <= today <= day:
                    yield make_action(facts, self.kind, str(year), h.name, due, h, config.priority,
                                      {"holiday": h.label or h.name, "date": day.isoformat()},
                                      {"send_by": day.isoformat()})
