"""upsell: a customer who bought a product that has a better version gets the next model up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts, product_key
from playbooks.rules.base import Message, Rule, in_segments, in_window, make_action, purchase_values


@dataclass(frozen=True)
class UpsellLadder(Message):
    """One product line from the cheapest model to the best: `products` in that order, or the
    catalogue `categories` (sections) whose products are ranked by price."""

    name: str = field(default="", metadata={"required": True})
    products: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def check(self):
        yield from super().check()
        if not (self.products or self.categories):
            yield "products", "a ladder needs its models", \
                "set products = [\"cheapest\", \"better\", \"best\"] or categories = [\"<catalogue section>\"]"
        if self.products and len(set(self.products)) != len(self.products):
            yield "products", "a product is listed twice", "name each model once, cheapest first"


@dataclass(frozen=True)
class UpsellConfig:
    enabled: bool = True
    priority: int = field(default=55, metadata={"min": 0})
    after_days: int = field(default=60, metadata={"min": 0, "max": 3650})
    fire_within_days: int = field(default=14, metadata={"min": 0, "max": 365})
    max_price_ratio: float = field(default=3.0, metadata={"min": 1.0, "max": 100.0})
    segments: list[str] = field(default_factory=list)
    ladders: list[UpsellLadder] = field(default_factory=list)

    def check(self):
        names = [x.name for x in self.ladders]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"ladders[{i}].name", f"duplicate ladder name {name!r}", "ladder names are part of action keys"


def rungs(ladder: UpsellLadder, facts: CustomerFacts) -> list[tuple[str, float | None]]:
    """The ladder's models, cheapest first, with their prices (catalogue, else the shop's last seen)."""
    catalogue = facts.shop.catalogue
    if ladder.products:
        return [(key, catalogue[key].price if key in catalogue else None) for key in ladder.products]
    found = [(p.price, p.id) for p in catalogue.values() if p.category in ladder.categories and p.price]
    return [(pid, price) for price, pid in sorted(found)]


def on_ladder(ladder: UpsellLadder, facts: CustomerFacts) -> bool:
    """Whether the customer ever bought a model of this ladder (cheap: most customers did not)."""
    catalogue = facts.shop.catalogue
    for p in facts.purchases:
        for i in p.items:
            key = product_key(i)
            if key in ladder.products:
                return True
            if ladder.categories:
                product = catalogue.get(key)
                if product is not None and product.category in ladder.categories:
                    return True
    return False


class UpsellRule(Rule):
    """The next model up.

    When it fires: `after_days` after the latest purchase of the best model the customer owns on
    a ladder, on that day or within `fire_within_days`, when a better model exists whose price is
    at most `max_price_ratio` times the owned one's; never when the customer owns a better one.
    What it plans: one offer per ladder and purchase (kind `deal` pre-fills the better model).
    Example: bought the hand grinder (3 490) on 03-01, ladder hand -> electric (8 990) -> pro
    (24 990), ratio 3 -> "electric grinder" offered on 04-30 (after_days 60); pro is 7.2x: never.
    """

    kind = "upsell"
    Config = UpsellConfig

    def may_fire(self, due, config: UpsellConfig):
        """The offer is due `after_days` after a purchase (of the owned model): someone who bought
        `after_days`..`after_days` + `fire_within_days` days ago."""
        if not config.ladders:
            return due.nobody()
        return due.bought_between(config.after_days + config.fire_within_days, config.after_days)

    def plan(self, facts: CustomerFacts, today: date, config: UpsellConfig) -> Iterator[Action]:
        if not facts.purchases or not in_segments(facts, config.segments):
            return
        ladders = [ladder for ladder in config.ladders if on_ladder(ladder, facts)]
        if not ladders:
            return
        owned = facts.products()
        for ladder in ladders:
            models = rungs(ladder, facts)
            top = max((i for i, (key, _p) in enumerate(models) if key in owned), default=None)
            if top is None or top + 1 >= len(models):
                continue
            have = owned[models[top][0]]
            due = have.purchase.date + timedelta(days=config.after_days)
            if not in_window(due, today, config.fire_within_days):
                continue
            paid = models[top][1] or have.price
            key, price = models[top + 1]
            if paid and price and price > paid * config.max_price_ratio:
                continue
            name = facts.shop.names.get(key) or (facts.shop.catalogue[key].name if key in facts.shop.catalogue
                                                 else key)
            vals = {**purchase_values(facts, [have.purchase]), "product": have.name, "offer": name,
                    "days": config.after_days}
            payload = {"products": [{"product_id": key, "name": name, "quantity": 1.0, "price": price}]}
            yield make_action(facts, self.kind, have.purchase.id, ladder.name, due, ladder, config.priority,
                              vals, payload)

