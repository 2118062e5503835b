"""loyalty: "welcome to silver" once per tier reached, and "one purchase from gold" nudges."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_window, make_action, purchase_values


@dataclass(frozen=True)
class LoyaltyConfig:
    enabled: bool = True
    priority: int = field(default=40, metadata={"min": 0})
    fire_within_days: int = field(default=14, metadata={"min": 0, "max": 365})
    welcome: Message | None = None
    welcome_first_tier: bool = False
    near: Message | None = None
    near_purchases: int = field(default=1, metadata={"min": 1})
    near_spend_share: float = field(default=0.15, metadata={"min": 0.0, "max": 1.0})
    near_after_days: int = field(default=14, metadata={"min": 0, "max": 3650})


def welcome_due(due, config: LoyaltyConfig, tiers) -> np.ndarray:
    """Who reached a tier worth a welcome on a purchase whose day is in the window (tiers by purchases:
    the purchase that reached tier t is the ceil(min_purchases)-th counted one, as assign_tier counts)."""
    tier = due.tier
    eligible = tier >= (0 if config.welcome_first_tier else 1)
    nth = np.array([max(math.ceil(t.min_purchases) - 1, 0) for t in tiers.tiers] or [0], dtype=np.int64)
    at = due.start[:-1] + nth[np.maximum(tier, 0)]
    eligible &= at < due.start[1:]
    if not len(due.day):
        return eligible
    age = due.today.toordinal() - due.day[np.where(eligible, at, 0)]
    return eligible & (age >= 0) & (age <= config.fire_within_days)


class LoyaltyRule(Rule):
    """Tier messages.

    When it fires: `welcome` on the day of the purchase that reached a tier (or within
    `fire_within_days`), once per tier - the key is anchored on the tier, not a purchase;
    `near` `near_after_days` after the last purchase when the next tier is at most
    `near_purchases` purchases (or `near_spend_share` of its threshold) away.
    What it plans: one task / workflow per message.
    Example: the 3rd purchase on 03-01 reaches silver -> "welcome to silver" due 03-01.
    """

    kind = "loyalty"
    Config = LoyaltyConfig

    def may_fire(self, due, config: LoyaltyConfig):
        """A tier is reached on a purchase no later than the last one; `near` counts from the last.

        With tiers by purchases and the tier and purchase-day columns at hand, exactly: the welcome
        when the purchase that reached the customer's tier falls in the window, `near` when the next
        tier is close enough."""
        tiers = getattr(due, "tiers", None)
        exact = (tiers is not None and tiers.by == "purchases" and due.tier is not None and due.start is not None
                 and due.day is not None)
        out = due.nobody()
        if config.welcome is not None:
            out |= welcome_due(due, config, tiers) if exact else due.recency <= config.fire_within_days
        if config.near is not None:
            late = due.recency - config.near_after_days
            near = (late >= 0) & (late <= config.fire_within_days)
            if exact:
                limits = np.array([float(t.min_purchases) for t in tiers.tiers] + [np.inf])
                nxt = np.minimum(due.tier + 1, len(tiers.tiers))  # -1 (none) -> the first tier; past the last: inf
                near &= np.round(limits[nxt] - due.n, 2) <= config.near_purchases
            out |= near
        return out & (due.n > 0)

    def plan(self, facts: CustomerFacts, today: date, config: LoyaltyConfig) -> Iterator[Action]:
        if not facts.purchases:
            return
        if config.welcome is not None and facts.tier_reached is not None and (
                config.welcome_first_tier or facts.tier_index > 0):
            reached = facts.tier_reached
            if in_window(reached.date, today, config.fire_within_days):
                vals = purchase_values(facts, [reached])
                yield make_action(facts, self.kind, f"tier-{facts.tier}", "welcome", reached.date,
                                  config.welcome, config.priority, vals)
        if config.near is not None and facts.next_tier and facts.to_next_tier is not None:
            if facts.tier_by == "purchases":
                close = facts.to_next_tier <= config.near_purchases
            else:
                close = facts.to_next_tier <= config.near_spend_share * (facts.next_tier_threshold or 0)
            last = facts.purchases[-1]
            due = last.date + timedelta(days=config.near_after_days)
            if close and in_window(due, today, config.fire_within_days):
                vals = purchase_values(facts, [last])
                yield make_action(facts, self.kind, last.id, f"near-{facts.next_tier}", due, config.near,
                                  config.priority, vals)
