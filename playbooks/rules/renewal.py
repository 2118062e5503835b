"""renewal: a licence, a subscription or a service interval ends -> a reminder and a renewal deal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts, ProductFact, product_key
from playbooks.rules.base import Message, Rule, in_window, make_action, purchase_values


@dataclass(frozen=True)
class RenewalConfig(Message):
    enabled: bool = True
    priority: int = field(default=15, metadata={"min": 0})
    kind: str = field(default="deal", metadata={"choices": ["task", "workflow", "deal"]})
    before_days: int = field(default=14, metadata={"min": 0, "max": 365})
    fire_within_days: int = field(default=7, metadata={"min": 0, "max": 365})
    use_catalogue: bool = True  # the product's term from the CRM catalogue (term_days)
    products: dict[str, int] = field(default_factory=dict, metadata={"min": 1})  # product id -> term, days
    categories: dict[str, int] = field(default_factory=dict, metadata={"min": 1})  # category -> term, days


def term_of(fact: ProductFact, facts: CustomerFacts, config: RenewalConfig) -> int | None:
    """The playbook's term for the product, else its category's, else the catalogue's."""
    if fact.key in config.products:
        return config.products[fact.key]
    product = facts.shop.catalogue.get(fact.product_id or "")
    category = fact.category or (product.category if product else None) or facts.shop.categories.get(fact.key)
    if category and category in config.categories:
        return config.categories[category]
    return product.term_days if config.use_catalogue and product is not None else None


def _any_term(facts: CustomerFacts, config: RenewalConfig) -> bool:
    """Whether the customer ever bought a product with a term of its own (cheap: most did not)."""
    catalogue = facts.shop.catalogue
    for p in facts.purchases:
        for i in p.items:
            key = product_key(i)
            if key in config.products:
                return True
            product = catalogue.get(key) if config.use_catalogue else None
            if product is not None and product.term_days:
                return True
    return False


class RenewalRule(Rule):
    """Renewal of what runs out on a date.

    When it fires: a product with a term (`products`, `categories`, or the catalogue's
    `term_days`) ends `term` days after its last purchase; the reminder is due `before_days`
    before that and fires on that day or up to `fire_within_days` after it. Buying the product
    again moves the end (the anchor moves to the new purchase).
    What it plans: by default a renewal deal with the same product and quantity; step `renew-<product>`.
    Example: a year's licence bought 2026-01-10 (term_days 365), before_days 14 -> due 2026-12-27,
    the end 2027-01-10 in {date}.
    """

    kind = "renewal"
    Config = RenewalConfig

    def may_fire(self, due, config: RenewalConfig):
        """A reminder is due `term` - `before_days` days after a purchase; the terms a product can
        have are the playbook's and (with `use_catalogue`) the catalogue's, a handful of numbers."""
        terms = {*config.products.values(), *config.categories.values()}
        if config.use_catalogue:
            terms |= {p.term_days for p in due.shop.catalogue.values() if p.term_days}
        out = due.nobody()
        for term in terms:
            out |= due.bought_between(term - config.before_days + config.fire_within_days, term - config.before_days)
        return out

    def plan(self, facts: CustomerFacts, today: date, config: RenewalConfig) -> Iterator[Action]:
        if not facts.purchases or not (config.categories or _any_term(facts, config)):
            return
        for key, fact in facts.products().items():
            term = term_of(fact, facts, config)
            if not term:
                continue
            ends = fact.purchase.date + timedelta(days=term)
            due = ends - timedelta(days=config.before_days)
            if not in_window(due, today, config.fire_within_days):
                continue
            product = facts.shop.catalogue.get(fact.product_id or "")
            vals = {**purchase_values(facts, [fact.purchase]), "product": fact.name, "date": ends.isoformat(),
                    "days": term}
            payload = {"products": [{"product_id": fact.product_id or key, "name": fact.name,
                                     "quantity": fact.quantity,
                                     "price": product.price if product and product.price else fact.price}]}
            step = "renew-" + key.replace(":", "_")
            yield make_action(facts, self.kind, fact.purchase.id, step, due, config, config.priority, vals, payload)
