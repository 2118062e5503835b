"""Per-customer facts derived from purchases, and shop-wide facts learned across customers.

A purchase counts when it is dated on or before `today` and its amount is positive (a fully
refunded order is no purchase). Amounts are converted to the playbook currency with `rates`;
a purchase in another currency without a rate still counts as a purchase but stays out of
every sum (`excluded_other_currency`).
"""

from __future__ import annotations

import operator
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connector.model import Customer, LineItem, Product, Purchase
from playbooks.api import PlanHistory

MAX_PRODUCTS_FOR_PAIRS = 40  # co-purchase pairs grow quadratically; cap per customer
MAX_PARTNERS = 50  # co-purchase partners kept per product


def product_key(item: LineItem) -> str:
    return item.product_id or item.name


def convert_amount(p: Purchase, currency: str, rates: Mapping[str, float]) -> float | None:
    """The purchase amount in `currency`, or None when its currency has no rate."""
    if p.currency == currency or not p.currency:
        return p.amount
    rate = rates.get(p.currency)
    return p.amount * rate if rate is not None else None


@dataclass
class ProductFact:
    """The customer's last purchase of one product."""

    key: str
    product_id: str | None
    name: str
    category: str | None
    purchase: Purchase
    quantity: float
    price: float


@dataclass(frozen=True)
class CycleLearning:
    """How sure a learned consumption cycle must be (the replenishment rule's settings)."""

    min_observations: int = 3
    min_customers: int = 5
    max_spread: float = 0.5


@dataclass
class ShopFacts:
    """Learned across all evaluated customers: consumption cycles and co-purchases.

    A rule that learns from the whole shop asks for it in its `learn(shop, config)` step
    (`want_cycles`, `want_pairs`); `learn_shop` then fills this in one pass over every customer.
    """

    cycles: dict[str, float] = field(default_factory=dict)  # product key -> days per unit
    cycle_customers: dict[str, int] = field(default_factory=dict)  # product key -> steady re-buyers behind it
    co_purchases: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    catalogue: dict[str, Product] = field(default_factory=dict)
    catalogue_has_cycles: bool = False  # some catalogue product carries a consumption cycle
    cycle_learning: CycleLearning | None = None  # asked for by a rule: learn consumption cycles so
    pairs_wanted: bool = False  # asked for by a rule: learn co-purchases and suggest from them
    suggest_top_k: int = 3  # suggestions per customer
    suggest_min_customers: int = 2  # customers who bought both, for a pair to count
    words: Any = None  # playbooks.words.Names: the team's names for codes in texts ({tier}, {segment})

    def want_cycles(self, learning: CycleLearning) -> None:
        self.cycle_learning = learning

    def want_pairs(self) -> None:
        self.pairs_wanted = True

    @property
    def wants_learning(self) -> bool:
        return self.cycle_learning is not None or self.pairs_wanted

    def suggestions_for(self, f: CustomerFacts) -> list[tuple[str, str]]:
        """Top-k products most often bought by customers who bought the products of `f`'s last
        purchase, never one `f` already bought; ties by product key."""
        if not self.pairs_wanted or not f.purchases or self.suggest_top_k <= 0 or not self.co_purchases:
            return []
        bought, _cats = f.bought()
        seeds = {product_key(i) for i in f.purchases[-1].items} or bought
        score: Counter[str] = Counter()
        for seed in sorted(seeds):
            for other, count in self.co_purchases.get(seed, ()):
                if count >= self.suggest_min_customers and other not in bought:
                    score[other] += count
        best = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:self.suggest_top_k]
        return [(key, self.names.get(key, key)) for key, _ in best]


@dataclass(slots=True)  # one per customer, all held at once: no per-instance __dict__ (1.5 KB each)
class CustomerFacts:
    customer: Customer
    purchases: tuple[Purchase, ...]
    amounts: tuple[float | None, ...]
    currency: str
    today: date
    history: PlanHistory
    rates: Mapping[str, float] = field(default_factory=dict)
    excluded_other_currency: int = 0
    shop: ShopFacts = field(default_factory=ShopFacts)
    # filled by segments.assign
    rfm: str = "000"
    r: int = 0
    f: int = 0
    m: int = 0
    segment: str = "no_purchases"
    lifecycle: str = "prospect"
    sleeping_after: int = 90
    lost_after: int = 365
    value: str = "base"
    trend: str = "stable"
    tier: str = "none"
    tier_benefits: str = ""
    tier_label: str = ""  # the tier's name as customers read it (the playbook's `label`)
    tier_reached: Purchase | None = None
    tier_index: int = -1
    tier_by: str = "purchases"
    next_tier_threshold: float | None = None
    next_tier: str | None = None
    next_tier_benefits: str = ""
    next_tier_label: str = ""
    to_next_tier: float | None = None
    holdout: bool = False
    bonus: object = None  # playbooks.bonus.BonusBalance, filled with the segments when bonuses are on
    _suggestions: list[tuple[str, str]] | None = field(default=None, repr=False)
    monetary: float = field(init=False, default=0.0, repr=False, compare=False)  # from amounts, once
    aov: float = field(init=False, default=0.0, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = [a for a in self.amounts if a is not None]
        self.monetary = sum(known)
        self.aov = sum(known) / len(known) if known else 0.0

    @property
    def suggestions(self) -> list[tuple[str, str]]:
        """Learned cross-sell suggestions (computed on first use: most customers never need them)."""
        if self._suggestions is None:
            self._suggestions = self.shop.suggestions_for(self)
        return self._suggestions

    @suggestions.setter
    def suggestions(self, value: list[tuple[str, str]]) -> None:
        self._suggestions = value

    @property
    def n(self) -> int:
        return len(self.purchases)

    @property
    def first(self) -> date | None:
        return self.purchases[0].date if self.purchases else None

    @property
    def last(self) -> date | None:
        return self.purchases[-1].date if self.purchases else None

    @property
    def recency_days(self) -> int | None:
        return (self.today - self.purchases[-1].date).days if self.purchases else None

    def amount_of(self, p: Purchase) -> float | None:
        return convert_amount(p, self.currency, self.rates)

    def median_interval(self) -> float | None:
        """Median days between distinct purchase dates (same-day orders are one visit)."""
        days = sorted({p.date for p in self.purchases})
        if len(days) < 2:
            return None
        return statistics.median((b - a).days for a, b in zip(days, days[1:], strict=False))

    def products(self) -> dict[str, ProductFact]:
        """Last purchase of every product the customer bought (quantities of that purchase summed)."""
        out: dict[str, ProductFact] = {}
        for p in self.purchases:
            seen_here: dict[str, ProductFact] = {}
            for item in p.items:
                key = product_key(item)
                if not key:
                    continue
                if key in seen_here:
                    seen_here[key].quantity += item.quantity
                else:
                    seen_here[key] = ProductFact(key, item.product_id, item.name, item.category, p,
                                                 item.quantity, item.price)
            out.update(seen_here)
        return out

    def bought(self) -> tuple[set[str], set[str]]:
        """Product keys and categories the customer ever bought."""
        keys, cats = set(), set()
        for p in self.purchases:
            for item in p.items:
                keys.add(product_key(item))
                if item.category:
                    cats.add(item.category)
        return keys, cats


def customer_facts(customer: Customer, today: date, currency: str, rates: Mapping[str, float],
                   history: PlanHistory, shop: ShopFacts) -> CustomerFacts:
    counted = sorted((p for p in customer.purchases if p.date <= today and p.amount > 0),
                     key=lambda p: (p.date, p.id))
    amounts = tuple(convert_amount(p, currency, rates) for p in counted)
    # the customer's own tuple when it already is the counted history (saves a copy per customer)
    same = (isinstance(customer.purchases, tuple) and len(counted) == len(customer.purchases)
            and all(map(operator.is_, counted, customer.purchases)))
    return CustomerFacts(customer=customer, purchases=customer.purchases if same else tuple(counted),
                         amounts=amounts, currency=currency,
                         today=today, history=history, rates=rates, shop=shop,
                         excluded_other_currency=sum(1 for a in amounts if a is None))


def learn_shop(facts: Iterable[CustomerFacts], shop: ShopFacts, catalogue: Mapping[str, Product] | None = None) -> None:
    """Learn what the rules asked for into `shop`: days-per-unit cycles from steady re-buyers of a
    product, and co-purchase counts; product names and categories always.

    An interval is the gap between two purchases of the same product by one customer divided by
    the quantity bought the first time. A customer re-buys at a steady interval with at least two
    intervals whose spread, (longest - shortest) / median, is at most `max_spread`. A product gets
    a cycle - the median of its steady re-buyers' medians - only from at least `min_customers` of
    them and `min_observations` intervals: a grinder two customers happened to buy again is no
    consumable. Co-purchase counts how many customers bought both products (ever, not per order).
    """
    cycle = shop.cycle_learning
    learn_cycles, learn_pairs = cycle is not None, shop.pairs_wanted
    shop.catalogue = dict(catalogue or {})
    shop.catalogue_has_cycles = any(p.cycle_days for p in shop.catalogue.values())
    steady: dict[str, list[float]] = defaultdict(list)  # product -> each steady re-buyer's median interval
    observations: Counter = Counter()
    pairs: dict[str, Counter] = defaultdict(Counter)
    for f in facts:
        last_seen: dict[str, tuple[date, float]] = {}
        intervals: dict[str, list[float]] = defaultdict(list)
        keys: list[str] = []
        for p in f.purchases:
            day_qty: dict[str, float] = {}
            for item in p.items:
                key = product_key(item)
                if not key:
                    continue
                day_qty[key] = day_qty.get(key, 0.0) + item.quantity
                shop.names.setdefault(key, item.name)
                if item.category:
                    shop.categories.setdefault(key, item.category)
            for key, qty in day_qty.items():
                if learn_cycles and key in last_seen:
                    prev_day, prev_qty = last_seen[key]
                    gap = (p.date - prev_day).days
                    if gap > 0:
                        intervals[key].append(gap / max(prev_qty, 1e-9))
                if key not in last_seen:
                    keys.append(key)
                last_seen[key] = (p.date, qty)
        for key, gaps in intervals.items():
            if len(gaps) < 2:
                continue
            middle = statistics.median(gaps)
            if (max(gaps) - min(gaps)) / middle <= cycle.max_spread:
                steady[key].append(middle)
                observations[key] += len(gaps)
        if learn_pairs and len(keys) > 1:
            uniq = sorted(set(keys))[:MAX_PRODUCTS_FOR_PAIRS]
            for a in uniq:  # Counter.update counts in C; each product's count of itself goes below
                pairs[a].update(uniq)
    if learn_cycles:
        learned = {k: v for k, v in steady.items()
                   if len(v) >= cycle.min_customers and observations[k] >= cycle.min_observations}
        shop.cycles = {k: float(statistics.median(v)) for k, v in learned.items()}
        shop.cycle_customers = {k: len(v) for k, v in learned.items()}
    if learn_pairs:
        for a, counter in pairs.items():
            del counter[a]
        shop.co_purchases = {a: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_PARTNERS]
                             for a, c in pairs.items()}
