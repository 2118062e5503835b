"""bonus_expiry: "your bonuses burn on <day>" a few days before some of the balance expires."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_window, make_action


@dataclass(frozen=True)
class BonusExpiryConfig:
    enabled: bool = True
    priority: int = field(default=45, metadata={"min": 0})
    days_before: int = field(default=7, metadata={"min": 1, "max": 365})
    fire_within_days: int = field(default=3, metadata={"min": 0, "max": 365})
    message: Message | None = None

    def check(self):
        if self.fire_within_days >= self.days_before:
            yield "fire_within_days", "must be less than days_before", \
                "a reminder sent on or after the expiry day would come too late"


class BonusExpiryRule(Rule):
    """When it fires: `days_before` days before the next day some bonuses burn (playbooks.bonus),
    or up to `fire_within_days` later, only when the amount burning is above zero.
    What it plans: one message per expiry day - the key is anchored on that day, so a customer
    hears about each burning once. Nothing without a [bonuses] account.
    Example: 300 RUB burn on 07-10, days_before 7 -> the reminder is due 07-03.
    """

    kind = "bonus_expiry"
    Config = BonusExpiryConfig

    def may_fire(self, due, config: BonusExpiryConfig):
        """Some lot burns in the reminder's reach: an accrual (a counted purchase) or a credit of a day D
        burns on D + bonus_expiry_days, and the reminder fires while that day is `days_before` -
        `fire_within_days`..`days_before` days ahead; the next expiry is one of those days."""
        if config.message is None or due.bonus_days is not None and due.bonus_days <= 0:
            return due.nobody()  # no account (-1), or bonuses never burn (0)
        if due.bonus_days is None:
            return None
        oldest = due.bonus_days - config.days_before + config.fire_within_days  # days ago the lot accrued
        newest = due.bonus_days - config.days_before
        out = due.bought_between(oldest, newest)
        if due.bonus_credits:
            today = due.today
            out |= due.each(lambda c: any(newest <= (today - day).days <= oldest
                                          for day, *_rest in due.bonus_credits.get(c.id, ())))
        return out

    def plan(self, facts: CustomerFacts, today: date, config: BonusExpiryConfig) -> Iterator[Action]:
        b = facts.bonus
        if config.message is None or b is None or b.next_expiry is None or b.expiring <= 0:
            return
        due = b.next_expiry - timedelta(days=config.days_before)
        if in_window(due, today, config.fire_within_days) and today < b.next_expiry:
            yield make_action(facts, self.kind, f"expiry-{b.next_expiry.isoformat()}", "remind", due,
                              config.message, config.priority, {})
