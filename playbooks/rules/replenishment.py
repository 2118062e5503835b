"""replenishment: remind before a consumable runs out (a repeat deal with the products pre-filled)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts, CycleLearning, ProductFact, ShopFacts
from playbooks.rules.base import KINDS, Message, Rule, in_window, make_action, purchase_values
from playbooks.templates import render

WHY_PLACEHOLDERS = frozenset({"cycle", "customers", "category", "product"})


@dataclass(frozen=True)
class CycleReasons:
    """Why a product's cycle was assumed, one text per source; a repeat deal says it (`{cycle_reason}`)."""

    playbook: str = field(default="", metadata={"template": WHY_PLACEHOLDERS})
    category: str = field(default="", metadata={"template": WHY_PLACEHOLDERS})
    catalogue: str = field(default="", metadata={"template": WHY_PLACEHOLDERS})
    learned: str = field(default="", metadata={"template": WHY_PLACEHOLDERS})


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
    durable_without_cycle: bool = True
    learn: bool = True
    learn_min_customers: int = field(default=5, metadata={"min": 2})
    learn_max_spread: float = field(default=0.5, metadata={"min": 0.0, "max": 5.0})
    learn_min_observations: int = field(default=3, metadata={"min": 1})
    cover_days: int | None = field(default=None, metadata={"min": 1, "max": 3650})
    why: CycleReasons = field(default_factory=CycleReasons)
    task: Message | None = None

    def check(self):
        yield from super().check()
        used = {"playbook": bool(self.products), "category": bool(self.categories),
                "catalogue": self.use_catalogue, "learned": self.learn}
        for source, on in used.items():
            if on and not getattr(self.why, source):
                yield f"why.{source}", "missing text: a repeat deal says why the product's cycle was assumed", \
                    f"set [rules.replenishment.why] {source} = \"...\" (placeholders " \
                    + ", ".join("{" + p + "}" for p in sorted(WHY_PLACEHOLDERS)) + ")"


def cycle_days(fact: ProductFact, facts: CustomerFacts, config: ReplenishmentConfig) -> tuple[float, str] | None:
    """Days one unit lasts, and where that came from: playbook product, playbook category, the
    CRM catalogue (`Product.cycle_days`), or learned from steady re-buyers. A product the catalogue
    lists without a cycle, when it gives cycles for others, is durable (`durable_without_cycle`)."""
    if fact.key in config.products:
        return config.products[fact.key], "playbook"
    product = facts.shop.catalogue.get(fact.product_id or fact.key)
    category = fact.category or (product.category if product else None) or facts.shop.categories.get(fact.key)
    if category and category in config.categories:
        return config.categories[category], "playbook_category"
    if config.use_catalogue and product is not None:
        if product.cycle_days:
            return float(product.cycle_days), "catalogue"
        if config.durable_without_cycle and facts.shop.catalogue_has_cycles:
            return None
    if config.learn and fact.key in facts.shop.cycles:
        return facts.shop.cycles[fact.key], "learned"
    return None


def cycle_options(items, shop: ShopFacts, config: ReplenishmentConfig) -> list[list[float]]:
    """Per product of the line-item columns (playbooks.columnar_learn.ItemColumns), every cycle
    cycle_days could give it: a product's facts carry its line's category, else the catalogue's or
    the learned one, so each category its lines carry is tried, and none."""

    class _Facts:  # what cycle_days reads of a customer's facts: the shop
        pass

    facts = _Facts()
    facts.shop = shop
    out = []
    for k, name in enumerate(items.keys):
        found = {cycle_days(ProductFact(name, name, items.names[k], category, None, 0.0, 0.0), facts, config)
                 for category in (*items.key_categories[k], None)}
        out.append(sorted({f[0] for f in found if f is not None}))
    return out


def cycle_reason(source: str, cycle: float, fact: ProductFact, facts: CustomerFacts,
                 config: ReplenishmentConfig) -> str:
    """The playbook's sentence on why this cycle: "8 customers re-bought it every ~30 days"."""
    text = {"playbook": config.why.playbook, "playbook_category": config.why.category,
            "catalogue": config.why.catalogue, "learned": config.why.learned}[source]
    product = facts.shop.catalogue.get(fact.product_id or fact.key)
    category = fact.category or (product.category if product else None) or facts.shop.categories.get(fact.key)
    return render(text, {"cycle": round(cycle), "customers": facts.shop.cycle_customers.get(fact.key, ""),
                         "category": category or "", "product": fact.name})


class ReplenishmentRule(Rule):
    """A reminder `days_before` the predicted run-out of a product with a consumption cycle.

    When it fires: run-out = last purchase of the product + cycle x quantity bought; the reminder
    is due `days_before` that and fires on that day or within `fire_within_days`. Buying the
    product again moves the anchor to the new purchase. Only a product with a known cycle fires:
    from the playbook, the catalogue, or at least `learn_min_customers` steady re-buyers.
    What it plans: a deal (default) with `payload["products"]` = [{product_id, name, quantity,
    price}] - the last quantity, or enough for `cover_days` - and optionally a manager task; the
    text says why the cycle was assumed (`{cycle_reason}`, added at the end when the body lacks it).
    Example: 2 packs of coffee (30 days each) on 03-01 -> run-out 04-30, reminder due 04-23.
    """

    kind = "replenishment"
    Config = ReplenishmentConfig

    def learn(self, shop: ShopFacts, config: ReplenishmentConfig) -> None:
        """Consumption cycles learned from steady re-buyers, when `learn` is on."""
        super().learn(shop, config)
        if config.learn:
            shop.want_cycles(CycleLearning(min_observations=config.learn_min_observations,
                                           min_customers=config.learn_min_customers,
                                           max_spread=config.learn_max_spread))

    def may_fire(self, due, config: ReplenishmentConfig):
        """Nobody when no product can have a cycle (none set, in the catalogue or learned)."""
        shop = due.shop
        if config.products or config.categories or (config.use_catalogue and shop.catalogue_has_cycles) \
                or (config.learn and shop.cycles):
            if getattr(due, "items", None) is not None:  # line items as columns: only who runs out now
                from playbooks.columnar_learn import runout_candidates

                return runout_candidates(due.items, cycle_options(due.items, shop, config), config.days_before,
                                         config.fire_within_days, due.today, len(due.n))
            return due.n > 0
        return due.nobody()

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
            reason = cycle_reason(source, cycle, fact, facts, config)
            vals = {**purchase_values(facts, [fact.purchase]), "product": fact.name, "products": fact.name,
                    "days": round(lasts), "cycle_reason": reason}
            payload = {"products": [line], "runout": runout.isoformat(), "cycle_days": cycle, "cycle_source": source}
            if source == "learned":
                payload["cycle_customers"] = facts.shop.cycle_customers.get(key, 0)
            steps = [(f"remind:{key}", config)] + ([(f"task:{key}", config.task)] if config.task is not None else [])
            for step, msg in steps:
                action = make_action(facts, self.kind, fact.purchase.id, step, due, msg, config.priority, vals,
                                     payload)
                if reason and "{cycle_reason}" not in msg.body:
                    action = replace(action, body=f"{action.body}\n{reason}".strip())
                yield action
