"""referral: a personal code for the best customers, and thanks when a friend buys with it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from connector.model import Action
from playbooks.facts import CustomerFacts, ShopFacts
from playbooks.rules.base import Message, Rule, in_segments, in_window, make_action, purchase_values
from playbooks.templates import money


@dataclass(frozen=True)
class ReferralConfig:
    enabled: bool = True
    priority: int = field(default=45, metadata={"min": 0})
    min_tier: str = "silver"  # the tier (or higher) whose customers get a code; promoters get one too
    bonus: float = field(default=500.0, metadata={"min": 0.0})  # credited to the referrer, playbook currency
    fire_within_days: int = field(default=14, metadata={"min": 0, "max": 365})
    segments: list[str] = field(default_factory=list)
    code: Message | None = None  # tells the customer the code, on the day they reach `min_tier`
    thanks: Message | None = None  # thanks the referrer when a friend's first purchase carried the code


class ReferralRule(Rule):
    """Personal referral codes and thanks for referrals.

    When it fires: `code` when the purchase that reached `min_tier` is at most `fire_within_days`
    old (the code itself is on the card from then on); `thanks` when a new customer's first
    purchase carrying this customer's code is at most `fire_within_days` old - the referrer's bonus
    is credited on that day (playbooks.referral.referral_credits). Codes need the referral secret
    of the settings; without it the rule plans nothing.
    What it plans: one touch per message; keys anchored on the tier / on the new customer.
    Example: the 3rd purchase on 03-01 reaches silver -> "your code R-K3ZQ7M2A" due 03-01 (once: key anchor "code"); a new
    customer buys with it on 04-10 -> "thank you, 500 RUB are yours" due 04-10.
    """

    kind = "referral"
    Config = ReferralConfig

    def learn(self, shop: ShopFacts, config: ReferralConfig) -> None:
        shop.referrals_wanted = True

    def may_fire(self, due, config: ReferralConfig):
        """Codes need the secret. `code`: the purchase reaching the tier is no later than the last one,
        so the last is within `fire_within_days`; `thanks`: a referral of this customer in its window."""
        if not due.shop.referral_secret:
            return due.nobody()
        out = due.nobody()
        if config.code is not None:
            out |= (due.n > 0) & (due.recency <= config.fire_within_days)
        referrals = due.shop.referrals
        if config.thanks is not None and referrals:
            today, within = due.today, config.fire_within_days
            out |= due.each(lambda c: any(0 <= (today - r.purchase.date).days <= within
                                          for r in referrals.get(c.id, ())))
        return out

    def plan(self, facts: CustomerFacts, today: date, config: ReferralConfig) -> Iterator[Action]:
        if not facts.referral_code or not in_segments(facts, config.segments):
            return
        vals = {"code": facts.referral_code, "bonus": money(config.bonus, facts.currency)}
        reached = facts.tier_reached
        if config.code is not None and reached is not None and facts.tier_index >= facts.shop.referral_tier_index \
                and in_window(reached.date, today, config.fire_within_days):
            yield make_action(facts, self.kind, "code", "code", reached.date, config.code,
                              config.priority, {**purchase_values(facts, [reached]), **vals})
        if config.thanks is None:
            return
        for r in facts.shop.referrals.get(facts.customer.id, ()):
            if in_window(r.purchase.date, today, config.fire_within_days):
                yield make_action(facts, self.kind, r.customer_id, "thanks", r.purchase.date, config.thanks,
                                  config.priority, {**vals, "purchase_date": r.purchase.date.isoformat()},
                                  payload={"referred": r.customer_id, "bonus": config.bonus})
