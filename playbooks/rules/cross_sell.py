"""cross_sell: "bought X -> offer Y after N days", plus suggestions learned from co-purchases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts, ShopFacts, product_key
from playbooks.rules.base import Message, Rule, in_window, make_action, purchase_values


@dataclass(frozen=True)
class CrossSellOffer(Message):
    name: str = field(default="", metadata={"required": True})
    if_products: list[str] = field(default_factory=list)
    if_categories: list[str] = field(default_factory=list)
    offer_products: list[str] = field(default_factory=list)
    offer_categories: list[str] = field(default_factory=list)
    after_days: int = field(default=14, metadata={"min": 0, "max": 3650})
    fire_within_days: int | None = field(default=None, metadata={"min": 0, "max": 365})

    def check(self):
        yield from super().check()
        if not (self.if_products or self.if_categories):
            yield "if_products", "an offer needs a trigger", "set if_products = [...] or if_categories = [...]"
        if not (self.offer_products or self.offer_categories):
            yield "offer_products", "an offer needs something to offer", \
                "set offer_products = [...] or offer_categories = [...]"


@dataclass(frozen=True)
class LearnedOffer(Message):
    after_days: int = field(default=14, metadata={"min": 0, "max": 3650})


@dataclass(frozen=True)
class CrossSellConfig:
    enabled: bool = True
    priority: int = field(default=60, metadata={"min": 0})
    fire_within_days: int = field(default=7, metadata={"min": 0, "max": 365})
    offers: list[CrossSellOffer] = field(default_factory=list)
    learned_top_k: int = field(default=3, metadata={"min": 0, "max": 20})
    learned_min_customers: int = field(default=2, metadata={"min": 1})
    learned: LearnedOffer | None = None

    def check(self):
        names = [o.name for o in self.offers]
        for i, name in enumerate(names):
            if names.index(name) != i:
                yield f"offers[{i}].name", f"duplicate offer name {name!r}", "offer names are part of action keys"


class CrossSellRule(Rule):
    """Offers related products some days after a purchase.

    When it fires: `after_days` after the customer's latest purchase holding a trigger product
    or category, on that day or within `fire_within_days`; learned offers the same way after
    the last purchase, when co-purchase suggestions exist.
    What it plans: a task or workflow (or a deal with `payload["products"]`); what the customer
    already bought is never offered; an offer with nothing left to offer is skipped.
    Example: bought a coffee machine on 03-01 -> "descaler" offered on 03-15.
    """

    kind = "cross_sell"
    Config = CrossSellConfig

    def learn(self, shop: ShopFacts, config: CrossSellConfig) -> None:
        """Co-purchases for the learned offer and `{suggestions}`, with this rule's thresholds."""
        super().learn(shop, config)
        shop.suggest_top_k, shop.suggest_min_customers = config.learned_top_k, config.learned_min_customers
        if config.learned_top_k > 0:
            shop.want_pairs()

    def may_fire(self, due, config: CrossSellConfig):
        """A trigger is a purchase no later than the last one: the last must be within reach."""
        out = due.nobody()
        for o in config.offers:  # the trigger is a purchase made `after_days` ago, within the window
            within = o.fire_within_days if o.fire_within_days is not None else config.fire_within_days
            out |= due.bought_between(o.after_days + within, o.after_days)
        if config.learned is not None:  # the last purchase
            late = due.recency - config.learned.after_days
            out |= (late >= 0) & (late <= config.fire_within_days)
        return out & (due.n > 0)

    def plan(self, facts: CustomerFacts, today: date, config: CrossSellConfig) -> Iterator[Action]:
        if not facts.purchases:
            return
        bought, bought_cats = facts.bought()
        names = facts.shop.names
        for offer in config.offers:
            trigger = None
            for p in reversed(facts.purchases):
                if any(product_key(i) in offer.if_products or (i.category and i.category in offer.if_categories)
                       for i in p.items):
                    trigger = p
                    break
            if trigger is None:
                continue
            due = trigger.date + timedelta(days=offer.after_days)
            within = offer.fire_within_days if offer.fire_within_days is not None else config.fire_within_days
            if not in_window(due, today, within):
                continue
            products = [x for x in offer.offer_products if x not in bought]
            cats = [c for c in offer.offer_categories if c not in bought_cats]
            if not products and not cats:
                continue
            offered = [names.get(x, x) for x in products] + cats
            vals = {**purchase_values(facts, [trigger]), "offer": ", ".join(offered),
                    "product": offered[0], "days": offer.after_days}
            payload = {"products": [{"product_id": x, "name": names.get(x, x), "quantity": 1.0,
                                     "price": _price(facts, x)} for x in products]}
            yield make_action(facts, self.kind, trigger.id, offer.name, due, offer, config.priority, vals, payload)
        if config.learned is not None:
            last = facts.purchases[-1]
            due = last.date + timedelta(days=config.learned.after_days)
            if in_window(due, today, config.fire_within_days) and facts.suggestions:
                offered = [name for _k, name in facts.suggestions]
                vals = {**purchase_values(facts, [last]), "offer": ", ".join(offered), "product": offered[0],
                        "days": config.learned.after_days}
                payload = {"products": [{"product_id": k, "name": n, "quantity": 1.0, "price": _price(facts, k)}
                                        for k, n in facts.suggestions]}
                yield make_action(facts, self.kind, last.id, "learned", due, config.learned, config.priority,
                                  vals, payload)


def _price(facts: CustomerFacts, key: str) -> float | None:
    product = facts.shop.catalogue.get(key)
    return product.price if product is not None else None
