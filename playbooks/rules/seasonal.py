"""seasonal: "bought winter clothing -> the summer collection in spring", by categories and a date window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from connector.model import Action
from playbooks.facts import CustomerFacts, product_key
from playbooks.rules.base import Message, Rule, in_segments, make_action, occurrence, purchase_values
from playbooks.rules.holidays import month_day


@dataclass(frozen=True)
class SeasonalOffer(Message):
    name: str = field(default="", metadata={"required": True})
    if_categories: list[str] = field(default_factory=list)
    if_products: list[str] = field(default_factory=list)
    start: str = field(default="", metadata={"required": True, "doc": "MM-DD, e.g. \"04-01\""})
    end: str = field(default="", metadata={"required": True, "doc": "MM-DD, e.g. \"04-30\""})
    offer: str = ""  # what is offered, as the customer reads it ({offer})
    segments: list[str] = field(default_factory=list)

    def check(self):
        yield from super().check()
        if not (self.if_categories or self.if_products):
            yield "if_categories", "a seasonal offer needs what the customer bought", \
                "set if_categories = [...] or if_products = [...]"
        for key in ("start", "end"):
            if month_day(getattr(self, key)) is None:
                yield key, f"bad date {getattr(self, key)!r}", "use MM-DD, e.g. \"04-01\""


@dataclass(frozen=True)
class SeasonalConfig:
    enabled: bool = True
    priority: int = field(default=65, metadata={"min": 0})
    min_purchases: int = field(default=1, metadata={"min": 1})
    offers: list[SeasonalOffer] = field(default_factory=list)

    def check(self):
        names = [o.name for o in self.offers]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"offers[{i}].name", f"duplicate offer name {name!r}", "offer names are part of action keys"


def window(offer: SeasonalOffer, today: date) -> tuple[date, date] | None:
    """The offer's window that holds `today` (a window may run over the new year), or None."""
    sm, sd = month_day(offer.start) or (1, 1)
    em, ed = month_day(offer.end) or (1, 1)
    for year in (today.year - 1, today.year):
        start = occurrence(year, sm, sd)
        end = occurrence(year + ((em, ed) < (sm, sd)), em, ed)
        if start <= today <= end:
            return start, end
    return None


class SeasonalRule(Rule):
    """Seasonal offers by the categories bought.

    When it fires: any day of the window `start`..`end` (MM-DD, may run over the new year) for a
    customer who ever bought one of `if_categories` / `if_products`, with at least `min_purchases`
    purchases, in one of the offer's `segments` (empty: everyone).
    What it plans: one offer per season; anchor = the year the window starts, due its first day;
    a dated step (`payload["send_by"]` = the window's last day): guards never move it past the season.
    Example: bought "Winter coats" in 2025-12, window 04-01..04-30 -> planned 2026-04-01 (key
    ...:seasonal:2026:summer_collection), and again in April 2027.
    """

    kind = "seasonal"
    Config = SeasonalConfig

    def may_fire(self, due, config: SeasonalConfig):
        """Nobody outside every offer's window; inside, whoever bought often enough and bought what an
        open offer names (no column holds the items, so each is asked)."""
        open_now = [o for o in config.offers if window(o, due.today) is not None]
        if not open_now:
            return due.nobody()
        cats = {c for o in open_now for c in o.if_categories}
        keys = {k for o in open_now for k in o.if_products}
        return due.each(lambda c: any((i.category and i.category in cats) or product_key(i) in keys
                                      for p in c.purchases for i in p.items), due.n >= config.min_purchases)

    def plan(self, facts: CustomerFacts, today: date, config: SeasonalConfig) -> Iterator[Action]:
        if facts.n < config.min_purchases:
            return
        for offer in config.offers:
            span = window(offer, today)
            if span is None or not in_segments(facts, offer.segments):
                continue
            bought = [p for p in facts.purchases
                      if any((i.category and i.category in offer.if_categories) or product_key(i) in offer.if_products
                             for i in p.items)]
            if not bought:
                continue
            start, end = span
            vals = {**purchase_values(facts, [bought[-1]]), "offer": offer.offer, "date": end.isoformat()}
            yield make_action(facts, self.kind, str(start.year), offer.name, start, offer, config.priority, vals,
                              {"send_by": end.isoformat()})

