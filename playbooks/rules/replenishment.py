"""replenishment: remind before a consumable runs out (a repeat deal with the products pre-filled)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts, ProductFact
from playbooks.rules.base import KINDS, Message, Rule, in_window, make_action, purchase_values


@dataclass(frozen=True)
class ReplenishmentConfig(Message):
    kind: str = field(default="deal", metadata={"choices": KINDS})
    enabled: bool = True
    priority: int = field(default=20, metadata={"min": 0})
    days_before: int = field(default=7, metadata={"min": 0, "max": 365})
    fire_within_days: int = field(default=7, metadata={"min": 0, "max": 365})
    products: dict[str, float] = field(default_factory=dict, metadata={"min": 1})
    categories: dict[str, float] = field(default_factory=dict, metadata={"min": 1})
    use_catalogue: bool = True
    learn: bool = True
    learn_min_observations: int = field(default=3, metadata={"min": 1})
    cover_days: int | None = field(default=None, metadata={"min": 1, "max": 3650})
    task: Message | None = None


def cycle_days(fact: ProductFact, facts: CustomerFacts, config: ReplenishmentConfig) -> tuple[float, str] | None:
    """Days one unit lasts, and where that came from: playbook product, playbook category,
    the CRM catalogue (`Product.cycle_days`), or learned from customers' repeat intervals."""
    if fact.key in config.products:
        return config.products[fact.key], "playbook"
    category = fact.category or facts.shop.categories.get(fact.key)
    if category and category in config.categories:
        return config.categories[category], "playbook_category"
    product = facts.shop.catalogue.get(fact.product_id or fact.key)
    if config.use_catalogue and product is not None and product.cycle_days:
        if product.category in config.categories and not product.cycle_days:
            return config.categories[product.category], "playbook_category"
        return float(product.cycle_days), "catalogue"
    if config.learn and fact.key in facts.shop.cycles:
        return facts.shop.cycles[fact.key], "learned"
    return None


class ReplenishmentRule(Rule):
    """A reminder `days_before` the predicted run-out of a product with a consumption cycle.

    When it fires: run-out = last purchase of the product + cycle x quantity bought; the reminder
    is due `days_before` that and fires on that day or within `fire_within_days`. Buying the
    product again moves the anchor to the new purchase.
    What it plans: a deal (default) with `payload["products"]` = [{product_id, name, quantity,
    price}] - the last quantity, or enough for `cover_days` - and optionally a manager task.
    Example: 2 packs of coffee (30 days each) on 03-01 -> run-out 04-30, reminder due 04-23.
    """

    kind = "replenishment"
    Config = ReplenishmentConfig

    def plan(self, facts: CustomerFacts, today: date, config: ReplenishmentConfig) -> Iterator[Action]:
        for key, fact in facts.products().items():
            found = cycle_days(fact, facts, config)
            if found is None:
                continue
            cycle, source = found
            lasts = cycle * max(fact.quantity, 0.0)
            runout = fact.purchase.date + timedelta(days=round(lasts))
            due = runout - timedelta(days=config.days_before)
            if not in_window(due, today, config.fire_within_days):
                continue
            qty = math.ceil(config.cover_days / cycle) if config.cover_days else fact.quantity
            line = {"product_id": fact.product_id or key, "name": fact.name, "quantity": float(qty),
                    "price": fact.price}
            vals = {**purchase_values(facts, [fact.purchase]), "product": fact.name, "products": fact.name,
                    "days": round(lasts)}
            payload = {"products": [line], "runout": runout.isoformat(), "cycle_days": cycle, "cycle_source": source}
            yield make_action(facts, self.kind, fact.purchase.id, f"remind:{key}", due, config,
                              config.priority, vals, payload)
            if config.task is not None:
                yield make_action(facts, self.kind, fact.purchase.id, f"task:{key}", due, config.task,
                                  config.priority, vals, payload)
