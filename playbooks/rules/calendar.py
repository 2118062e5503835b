"""calendar: the post-purchase calendar (thanks, feedback, useful content, personal offer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action, Purchase
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_window, make_action, purchase_values


@dataclass(frozen=True)
class CalendarStep(Message):
    name: str = field(default="", metadata={"required": True})
    day: int = field(default=0, metadata={"min": 0, "max": 3650, "required": True})
    fire_within_days: int | None = field(default=None, metadata={"min": 0, "max": 365})
    stop_if_new_purchase: bool = False

    def check(self):
        yield from super().check()


@dataclass(frozen=True)
class CalendarConfig:
    enabled: bool = True
    priority: int = field(default=30, metadata={"min": 0})
    fire_within_days: int = field(default=3, metadata={"min": 0, "max": 365})
    steps: list[CalendarStep] = field(default_factory=list)

    def check(self):
        names = [s.name for s in self.steps]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"steps[{i}].name", f"duplicate step name {name!r}", "step names are part of action keys"


class CalendarRule(Rule):
    """Steps at day offsets after each purchase.

    When it fires: a step is due `day` days after a purchase and fires on that day or up to
    `fire_within_days` after it; older steps are never sent late. Purchases of one day share
    one calendar (anchored on that day's last purchase). A step with `stop_if_new_purchase`
    is dropped once the customer bought again on a later day.
    What it plans: one task or workflow start per due step; key anchor = purchase, step = name.
    Example: bought 2026-03-01, today 2026-03-03 -> step "thanks" (day 2) is planned, due 03-03.
    """

    kind = "calendar"
    Config = CalendarConfig

    def may_fire(self, due, config: CalendarConfig):
        """Only a purchase made a step's offset ago (within its firing window) can make it due; for a
        step that stops on a new purchase, only the last one (no later day bought on)."""
        out = due.nobody()
        for s in config.steps:
            within = s.fire_within_days if s.fire_within_days is not None else config.fire_within_days
            if s.stop_if_new_purchase:
                out |= (due.n > 0) & (due.recency >= s.day) & (due.recency <= s.day + within)
            else:
                out |= due.bought_between(s.day + within, s.day)
        return out

    def plan(self, facts: CustomerFacts, today: date, config: CalendarConfig) -> Iterator[Action]:
        if not facts.purchases or not config.steps:
            return
        horizon = _horizon(config)
        days: dict[date, list[Purchase]] = {}
        for p in reversed(facts.purchases):
            if (today - p.date).days > horizon:
                break
            days.setdefault(p.date, []).insert(0, p)
        last_day = facts.purchases[-1].date
        for day, group in sorted(days.items()):
            anchor = group[-1]
            values = purchase_values(facts, group)
            for step in config.steps:
                due = day + timedelta(days=step.day)
                within = step.fire_within_days if step.fire_within_days is not None else config.fire_within_days
                if not in_window(due, today, within):
                    continue
                if step.stop_if_new_purchase and last_day > day:
                    continue
                vals = {**values, "days": step.day}
                yield make_action(facts, self.kind, anchor.id, step.name, due, step, config.priority, vals)


def _horizon(config: CalendarConfig) -> int:
    """Days after a purchase its last step can still fire."""
    return max(s.day + (s.fire_within_days if s.fire_within_days is not None else config.fire_within_days)
               for s in config.steps)
