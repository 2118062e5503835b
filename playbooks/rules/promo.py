"""promo: sale announcements sent first (`lead_days` ahead) to customers who mostly buy on discount."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action, Purchase
from playbooks.facts import CustomerFacts
from playbooks.rules.base import Message, Rule, in_segments, make_action, occurrence
from playbooks.rules.holidays import month_day


@dataclass(frozen=True)
class Sale(Message):
    name: str = field(default="", metadata={"required": True})
    date: str = field(default="", metadata={"required": True, "doc": "MM-DD (every year) or YYYY-MM-DD"})
    label: str = ""  # the sale as the customer reads it ({sale})
    segments: list[str] = field(default_factory=list)

    def check(self):
        yield from super().check()
        if sale_day(self.date) is None:
            yield "date", f"bad date {self.date!r}", "use MM-DD (every year) or YYYY-MM-DD"


@dataclass(frozen=True)
class PromoConfig:
    enabled: bool = True
    priority: int = field(default=45, metadata={"min": 0})
    lead_days: int = field(default=3, metadata={"min": 0, "max": 60})
    min_share: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    min_purchases: int = field(default=2, metadata={"min": 1})
    sales: list[Sale] = field(default_factory=list)

    def check(self):
        names = [s.name for s in self.sales]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"sales[{i}].name", f"duplicate sale name {name!r}", "sale names are part of action keys"


def sale_day(text: str) -> tuple[int, int, int] | None:
    """`MM-DD` -> (0, m, d), every year; `YYYY-MM-DD` -> (y, m, d), once; anything else None."""
    if text.count("-") == 1:
        found = month_day(text)
        return (0, *found) if found else None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day.year, day.month, day.day


def discounted(p: Purchase) -> bool:
    """Bought on a promo: a promo code / campaign on the deal, or a discount on any of its rows."""
    return bool(p.promo) or any(i.discount > 0 for i in p.items)


def promo_share(facts: CustomerFacts) -> float:
    """The share of the customer's purchases that were discounted (0 without purchases)."""
    return sum(map(discounted, facts.purchases)) / facts.n if facts.n else 0.0


def promo_sensitive(facts: CustomerFacts, config: PromoConfig) -> bool:
    """Mostly discounted: at least `min_purchases` purchases and more than `min_share` of them on a promo."""
    return facts.n >= config.min_purchases and promo_share(facts) > config.min_share


class PromoRule(Rule):
    """Sale announcements for promo-sensitive customers.

    When it fires: from `lead_days` before a sale's start (`date`, MM-DD every year or YYYY-MM-DD
    once) up to the start itself, for a customer with at least `min_purchases` purchases of which
    more than `min_share` were discounted (a row discount or a promo code on the deal), in one of
    the sale's `segments` (empty: everyone). Others are never told ahead.
    What it plans: one announcement per sale and year; anchor = the year; a dated step
    (`payload["send_by"]` = the start): guards never move it past the sale.
    Example: 3 of 4 purchases discounted (0.75 > 0.5), sale "11-11", lead_days 3 -> planned
    11-08..11-11, key ...:promo:2026:singles_day; a customer with 1 of 4 gets nothing.
    """

    kind = "promo"
    Config = PromoConfig

    def may_fire(self, due, config: PromoConfig):
        """Nobody outside every sale's announcement days; inside, whoever bought often enough with at
        least one discounted purchase (a share above `min_share` >= 0 needs one)."""
        today = due.today
        for sale in config.sales:
            y, m, d = sale_day(sale.date) or (0, 1, 1)
            for year in ((y,) if y else (today.year, today.year + 1)):
                day = occurrence(year, m, d)
                if day - timedelta(days=config.lead_days) <= today <= day:
                    return due.each(lambda c: any(map(discounted, c.purchases)), due.n >= config.min_purchases)
        return due.nobody()

    def plan(self, facts: CustomerFacts, today: date, config: PromoConfig) -> Iterator[Action]:
        if not config.sales or not promo_sensitive(facts, config):
            return
        share = promo_share(facts)
        for sale in config.sales:
            if not in_segments(facts, sale.segments):
                continue
            y, m, d = sale_day(sale.date) or (0, 1, 1)
            for year in ((y,) if y else (today.year, today.year + 1)):
                day = occurrence(year, m, d)
                due = day - timedelta(days=config.lead_days)
                if due <= today <= day:
                    yield make_action(facts, self.kind, str(year), sale.name, due, sale, config.priority,
                                      {"sale": sale.label or sale.name, "date": day.isoformat(),
                                       "days": config.lead_days},
                                      {"send_by": day.isoformat(), "promo_share": round(share, 2)})
