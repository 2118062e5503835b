"""welcome: a short series for a prospect (a contact without a purchase) from the day the contact was created."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_window, make_action


@dataclass(frozen=True)
class WelcomeStep(Message):
    name: str = field(default="", metadata={"required": True})
    day: int = field(default=0, metadata={"min": 0, "max": 365, "required": True})


@dataclass(frozen=True)
class WelcomeConfig:
    enabled: bool = True
    priority: int = field(default=35, metadata={"min": 0})
    fire_within_days: int = field(default=3, metadata={"min": 0, "max": 365})
    steps: list[WelcomeStep] = field(default_factory=list)

    def check(self):
        names = [s.name for s in self.steps]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"steps[{i}].name", f"duplicate step name {name!r}", "step names are part of action keys"


def horizon_days(config: WelcomeConfig) -> int:
    """How old a contact can be and still have a welcome step due: older prospects need not be read."""
    return max((s.day for s in config.steps), default=0) + config.fire_within_days


class WelcomeRule(Rule):
    """Welcome series for prospects.

    When it fires: a step is due `day` days after the contact was created (`Customer.created`) and
    fires on that day or up to `fire_within_days` after it, only while the contact has no purchase
    (as of today): the first purchase ends the series, and the post-purchase calendar takes over.
    What it plans: one touch per due step; anchor = the creation date, step = its name.
    Example: contact created 2026-05-04, steps day 0 / 3 / 10 -> "hello" 05-04, "guide" 05-07,
    "offer" 05-14; a purchase on 05-09 -> no "offer".
    """

    kind = "welcome"
    Config = WelcomeConfig

    def may_fire(self, due, config: WelcomeConfig):
        """Only a customer without a counted purchase, created at most the series' reach ago (prospects
        passed beside the customers are planned apart, playbooks.engine.prospect_facts)."""
        if not config.steps or not getattr(due, "created", True):  # a CSV's customers have no card date
            return due.nobody()
        today, reach = due.today, horizon_days(config)
        return due.each(lambda c: c.created is not None and 0 <= (today - c.created).days <= reach, due.n == 0)

    def plan(self, facts: CustomerFacts, today: date, config: WelcomeConfig) -> Iterator[Action]:
        created = facts.customer.created
        if facts.n or created is None or created > today:
            return
        for step in config.steps:
            due = created + timedelta(days=step.day)
            if in_window(due, today, config.fire_within_days):
                yield make_action(facts, self.kind, created.isoformat(), step.name, due, step, config.priority,
                                  {"days": step.day})
