"""reactivation: a chain of touches for a customer who stopped buying."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action, action_key
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_window, make_action, named_in, purchase_values


@dataclass(frozen=True)
class ReactivationStep(Message):
    name: str = field(default="", metadata={"required": True})
    after_days: int = field(default=7, metadata={"min": 0, "max": 365})


@dataclass(frozen=True)
class ReactivationConfig:
    enabled: bool = True
    priority: int = field(default=10, metadata={"min": 0})
    silence_days: int = field(default=60, metadata={"min": 1, "max": 3650})
    first_step_within_days: int | None = field(default=None, metadata={"min": 0, "max": 3650})
    reaction_includes_activity: bool = True
    # by rhythm: the chain starts at max(silence_days, median interval x rhythm_factor)
    rhythm_factor: float | None = field(default=None, metadata={"min": 1.0, "max": 50.0})
    rhythm_min_purchases: int = field(default=3, metadata={"min": 2})
    steps: list[ReactivationStep] = field(default_factory=list)

    def check(self):
        names = [s.name for s in self.steps]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"steps[{i}].name", f"duplicate step name {name!r}", "step names are part of action keys"


class ReactivationRule(Rule):
    """Email, then SMS, then a manager call for a customer silent for `silence_days`.

    When it fires: step 1 any day from `silence_days` after the last purchase until the customer
    becomes lost (or only within `first_step_within_days` when set). Step k+1 fires
    `after_days` after step k was actually applied (PlanHistory), unless the customer reacted:
    a new purchase (the anchor moves to it, the old chain ends) or, with
    `reaction_includes_activity`, an inbound CRM activity after step k was applied.
    What it plans: one action per step, anchored on the last purchase, so the same silence
    never restarts the chain; steps never come all at once.
    Example: last purchase 2026-01-01, today 2026-03-05 -> step "email" (due 03-02).
    By rhythm (`rhythm_factor` set, at least `rhythm_min_purchases` purchases): the silence is
    max(silence_days, median interval x rhythm_factor), so a customer buying every 100 days with
    factor 1.5 is reminded after 150 days, a weekly buyer still after `silence_days`.
    """

    kind = "reactivation"
    Config = ReactivationConfig

    def may_fire(self, due, config: ReactivationConfig):
        """Silent long enough, and step 1 in its window or an earlier step applied (PlanHistory)."""
        if not config.steps:
            return due.nobody()
        silent = (due.n > 0) & (due.recency >= config.silence_days)
        if config.first_step_within_days is None:
            first = due.recency <= due.lost_after
        else:
            first = due.recency - config.silence_days <= config.first_step_within_days
        had = due.had(self.kind) if hasattr(due, "had") else due.history  # a chain's later steps follow its own
        return silent & (first | had)

    def plan(self, facts: CustomerFacts, today: date, config: ReactivationConfig) -> Iterator[Action]:
        if not facts.purchases or not config.steps:
            return
        last = facts.purchases[-1]
        silence = (today - last.date).days
        threshold = silence_threshold(facts, config)
        if silence < threshold:
            return
        texts = (t for step in config.steps for t in (step.title, step.body, step.subject, step.text))
        values = {**purchase_values(facts, [last], named_in(*texts)), "days": silence}
        cid = facts.customer.id
        first = config.steps[0]
        due = last.date + timedelta(days=threshold)
        if config.first_step_within_days is None:
            fires = silence <= facts.lost_after
        else:
            fires = in_window(due, today, config.first_step_within_days)
        if fires:
            yield make_action(facts, self.kind, last.id, first.name, due, first, config.priority, values)
        prev = first
        for step in config.steps[1:]:
            applied = facts.history.applied.get(action_key(cid, self.kind, last.id, prev.name))
            if applied is None:
                return
            activity = facts.customer.last_contact_activity
            if config.reaction_includes_activity and activity is not None and activity > applied:
                return
            due = applied + timedelta(days=step.after_days)
            if today < due:
                return
            yield make_action(facts, self.kind, last.id, step.name, due, step, config.priority, values)
            prev = step


def silence_threshold(facts: CustomerFacts, config: ReactivationConfig) -> int:
    """Days of silence that start the chain: `silence_days`, stretched by the customer's rhythm when asked."""
    if config.rhythm_factor is None or facts.n < config.rhythm_min_purchases:
        return config.silence_days
    median = facts.median_interval()
    return max(config.silence_days, round(median * config.rhythm_factor)) if median else config.silence_days
