"""The plan's counts on top of a columnar segmentation, with the reference rules and guards.

The segmentation comes from the columns (playbooks.columnar); each customer's facts are made
only to run the rules, and each customer's actions are counted and let go: `analyze` prints
how many actions a sync would plan and hold back, never the actions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from connector.model import Action, Customer, Product
from playbooks import bonus
from playbooks.api import PlanHistory
from playbooks.columnar import (
    LIFECYCLE,
    TRENDS,
    Segmented,
    metrics,
    predict_into,
    prediction_of,
    segment,
    segment_counts,
)
from playbooks.columnar_bonus import BonusColumns, balance_of, bonus_columns
from playbooks.columnar_counts import counted_from_columns
from playbooks.columns import PurchaseColumns, purchase_columns
from playbooks.facts import CustomerFacts, ShopFacts, customer_facts
from playbooks.guards import guard_customer
from playbooks.keys import applied_by_customer
from playbooks.referral import assign_codes, gives_code, referral_bonus_credits, referral_code
from playbooks.rules import REGISTRY
from playbooks.segments import LEVELS, assign_tier, named_segments
from playbooks.words import names_for

PREFETCH = 1_000  # customers read ahead at a time when the plan asks for them (a lazy `customers`)


@dataclass
class DueColumns:
    """What a rule's may_fire() reads: arrays over the customers of a segmentation (in id order)."""

    today: date
    n: np.ndarray  # counted purchases
    recency: np.ndarray  # days since the last counted purchase (-1 without one)
    lost_after: np.ndarray  # the customer's lifecycle threshold for `lost`
    history: np.ndarray  # some action of this customer was applied before (PlanHistory)
    customers: Sequence[Customer]
    shop: ShopFacts
    birthdays: bool = True  # some customer may have a birthday (a CSV has none)
    answers: bool = True  # some purchase may carry an NPS answer (a CSV's cannot)
    created: bool = True  # some customer may carry the day its card was made (a CSV's cannot)
    start: np.ndarray | None = None  # the counted purchases' columns (PurchaseColumns.start/.day), when known
    day: np.ndarray | None = None
    bonus_days: int | None = None  # days an accrual lives (0: bonuses never burn, -1: no bonus account; None: unknown)
    bonus_credits: Mapping[str, Sequence] = field(default_factory=dict)  # extra credits (engine.fill_bonuses)
    items: object = None  # playbooks.columnar_learn.ItemColumns of the line items, when read as columns
    born: np.ndarray | None = None  # per customer: birthday as month * 100 + day (0: none), when read
    nps: np.ndarray | None = None  # per counted purchase: its answer (-1: none), when read
    applied: Mapping[str, Sequence] | None = None  # keys.applied_by_customer of the history
    ids: Sequence[str] | None = None  # the customers' ids
    tier: np.ndarray | None = None  # per customer: the tier index (-1: none), when segmented
    tiers: object = None  # the playbook's segments.tiers (schema.TierConfig) that `tier` indexes

    def had(self, rule: str) -> np.ndarray:
        """Who had an action of `rule` applied before (`history` when the keys are not at hand)."""
        if self.applied is None or self.ids is None:
            return self.history
        return np.fromiter((any(r == rule for _k, r, _d in self.applied.get(c, ())) for c in self.ids),
                           dtype=bool, count=len(self.ids))

    def nobody(self) -> np.ndarray:
        return np.zeros(len(self.n), dtype=bool)

    def bought_between(self, oldest: int, newest: int, only: np.ndarray | None = None) -> np.ndarray:
        """Who has a counted purchase between `oldest` and `newest` days ago (inclusive); `only`: of
        the counted purchases (a mask over `day`) those that count."""
        if newest < 0:
            newest = 0  # a purchase after today is not counted
        if oldest < newest:
            return self.nobody()
        last = self.today.toordinal() - newest
        first = self.today.toordinal() - oldest
        if self.start is None or self.day is None:
            return self.each(lambda c: any(first <= p.date.toordinal() <= last and p.amount > 0 for p in c.purchases),
                             self.n > 0)
        inside = (self.day >= first) & (self.day <= last)
        hit = np.concatenate(([0], np.cumsum(inside if only is None else inside & only)))
        return (hit[self.start[1:]] - hit[self.start[:-1]]) > 0

    def each(self, test: Callable[[Customer], bool], among: np.ndarray | None = None) -> np.ndarray:
        """A test of each customer object (for what no column holds, e.g. the birthday), only of those
        `among` says (a customer's object may be made anew on each ask: narrow it by the columns first)."""
        if among is None:
            return np.fromiter((bool(test(c)) for c in self.customers), dtype=bool, count=len(self.customers))
        out = self.nobody()
        for i in np.flatnonzero(among).tolist():
            out[i] = bool(test(self.customers[i]))
        return out


def plan_counts(s: Segmented, customers: Sequence[Customer], *, history: PlanHistory | None = None,
                catalogue: Mapping[str, Product] | None = None, with_items: np.ndarray | None = None,
                birthdays: bool = True, secret: str = "", newcomers: Sequence[Customer] = (),
                answers: bool = True, bare: bool = False) -> tuple[int, int]:
    """(planned, suppressed) as engine.run counts them; `customers` in the order of s.cols.ids.

    Each rule first says from the columns who it could act on today (Rule.may_fire); facts are made
    and rules asked only for those customers (every customer when the shop is learned from). `bare`:
    the customers carry no card fields or tags (a CSV), so a customer for whom only the calendar and
    the reactivation are due is counted without facts (columnar_counts).
    """
    from playbooks.engine import _RULES, learn_from_shop, plan_guarded, prospect_facts

    pb, today = s.playbook, s.today
    history = history or PlanHistory()
    shop = ShopFacts(words=names_for(pb), referral_secret=secret)

    def every_customer():  # consumed only when a rule learns from the whole shop, which learns from line
        for i in range(len(customers)):  # items only; each customer's facts are let go once learned from
            if with_items is not None and not with_items[i]:
                continue
            c = customers[i]
            if any(p.items for p in c.purchases):
                yield customer_facts(c, today, pb.currency, pb.rates, history, shop)

    everyone: list[CustomerFacts] | None = None
    if pb.rule("referral") is not None and secret:  # who brought whom, and the codes: every customer's facts
        everyone = [customer_facts(c, today, pb.currency, pb.rates, history, shop) for c in customers]
        learn_from_shop(everyone, shop, pb, catalogue)
    else:
        learn_from_shop(every_customer(), shop, pb, catalogue)
    # credits from every customer's facts; the referral's need the secret (without it, shop.referrals is empty)
    credit_sources = [src for src in bonus.CREDIT_SOURCES if src is not referral_bonus_credits or everyone is not None]
    if everyone is not None or (pb.bonuses_on and credit_sources):
        if everyone is None:
            everyone = [customer_facts(c, today, pb.currency, pb.rates, history, shop) for c in customers]
        for i, f in enumerate(everyone):
            fill_one(s, f, i)
        assign_codes(everyone, pb, secret)
        # the credits only: each planned customer's balance is made below (engine.fill_bonuses's are let go)
        s.bonus_credits = bonus.extra_credits(everyone, today, pb) if pb.bonuses_on and bonus.CREDIT_SOURCES else {}
    applied = applied_by_customer(history.applied, REGISTRY) if history.applied else {}
    due = DueColumns(today=today, n=s.fig.n, recency=s.fig.recency, lost_after=s.lost_after,
                     history=np.fromiter((cid in applied for cid in s.cols.ids), dtype=bool, count=len(s.cols.ids)),
                     customers=customers, shop=shop, birthdays=birthdays, answers=answers, created=not bare,
                     start=s.cols.start,
                     day=s.cols.day,
                     bonus_days=pb.bonuses.bonus_expiry_days if pb.bonuses_on else -1,
                     bonus_credits=s.bonus_credits or {}, tier=s.tier, tiers=pb.segments.tiers)
    rules = []
    anyone = due.nobody()
    for kind, rule in _RULES.items():
        cfg = pb.rule(kind)
        if cfg is None:
            continue
        mask = rule.may_fire(due, cfg)
        anyone |= True if mask is None else mask
        rules.append((rule, cfg, mask))
    planned = suppressed = 0
    balances = balances_of(s)
    counted = counted_from_columns(due, rules, pb, s.holdout, with_items=with_items,
                                   balances=balances) if bare else None
    if counted is not None:  # the actions of customers whose every due rule is counted by date arithmetic
        alone, planned, suppressed = counted
        anyone &= ~alone
    for kept, dropped in plan_each(s, customers, np.flatnonzero(anyone).tolist(), rules, everyone=everyone,
                                   history=history, shop=shop, applied=applied, balances=balances):
        planned += len(kept)
        suppressed += len(dropped)
    for kept, dropped in plan_guarded(prospect_facts(newcomers, today, pb, history, shop), today, pb, applied):
        planned += len(kept)
        suppressed += len(dropped)
    return planned, suppressed


def balances_of(s: Segmented) -> BonusColumns | None:
    """The balances of customers who neither paid with bonuses nor got a credit, as arrays (columnar_bonus)."""
    return bonus_columns(s) if s.playbook.bonuses_on and s.cols.paid is not None else None


def plan_each(s: Segmented, customers: Sequence[Customer], due_now: list[int], rules: list, *,
              everyone: list[CustomerFacts] | None, history: PlanHistory, shop: ShopFacts,
              applied: Mapping[str, Sequence], balances: BonusColumns | None,
              prefetch: Callable[[list[int]], None] | None = None) -> Iterator[tuple[list[Action], list]]:
    """(kept, suppressed) of each customer in `due_now` some rule gives an action, as engine.run plans
    them: facts (every customer's when made already), the bonus account, the rules whose may_fire
    mask holds the customer, then the guards. `prefetch` is told who will be asked for, a batch ahead.

    `balances` (balances_of) gives the balance of a customer not `slow` there; the others' come from
    their facts (as engine.fill_bonuses)."""
    from playbooks.engine import held_out

    pb, today = s.playbook, s.today
    for at, i in enumerate(due_now):
        if prefetch is not None and at % PREFETCH == 0:
            prefetch(due_now[at:at + PREFETCH])
        if everyone is not None:
            f = everyone[i]
        else:
            f = customer_facts(customers[i], today, pb.currency, pb.rates, history, shop)
            fill_one(s, f, i)
        if balances is not None and not balances.slow[i]:
            f.bonus = balance_of(balances, i)
        elif pb.bonuses_on:
            f.bonus = bonus.of_facts(f, today, pb, s.bonus_credits.get(f.customer.id, ()))
        actions: dict[str, Action] = {}
        for rule, cfg, mask in rules:
            if mask is None or mask[i]:
                for action in rule.plan(f, today, cfg):
                    actions.setdefault(action.key, action)
        if actions:
            yield guard_customer(f.customer, list(actions.values()), today, pb.guards,
                                 applied.get(f.customer.id, ()), holdout=held_out(f, pb))


def fill_one(s: Segmented, f: CustomerFacts, i: int) -> None:
    """Copy customer i's columnar segmentation into the facts the rules read (segments.assign's fields)."""
    f.sleeping_after, f.lost_after = int(s.sleeping_after[i]), int(s.lost_after[i])
    f.lifecycle = LIFECYCLE[s.lifecycle[i]]
    if f.n:
        r, fr, m = int(s.r[i]), int(s.f[i]), int(s.m[i])
        f.r, f.f, f.m = r, fr, m
        f.rfm = f"{r}{fr}{m}"
        f.segment = s.names[s.segment[i]]
    f.value = LEVELS[s.value[i]]
    f.trend = TRENDS[s.trend[i]]
    assign_tier(f, s.playbook.segments.tiers)
    f.named_segments = named_segments(s.playbook.segments.conditions, f.purchases, f.monetary, f.tier,
                                      f.lifecycle, s.today)
    f.holdout = bool(s.holdout[i])


def evaluate_columns(customers: Sequence[Customer], today: date, playbook, *, history: PlanHistory | None = None,
                     catalogue: Sequence[Product] | None = None, cac: float | None = None, predict: bool = True,
                     prospects: int = 0, plan: bool = True, secret: str = "",
                     ) -> tuple[Segmented, dict[str, int], dict[str, object]]:
    """engine.evaluate's segments and metrics (with the plan's counts when `plan`), the customers'
    reports to be drawn from columnar.reports(segmented) one at a time."""
    cols = purchase_columns(customers, today, playbook.currency, playbook.rates, keep_customers=True,
                            paid_field=playbook.bonuses.paid_field if playbook.bonuses_on else None)
    people, cols.customers = cols.customers, None
    return evaluate_purchases(cols, people, today, playbook, history=history, catalogue=catalogue, cac=cac,
                              predict=predict, prospects=prospects, secret=secret, plan=plan)


def evaluate_purchases(cols: PurchaseColumns, customers: Sequence[Customer] | None, today: date, playbook, *,
                       history: PlanHistory | None = None, catalogue: Sequence[Product] | None = None,
                       cac: float | None = None, predict: bool = True, prospects: int = 0,
                       with_items: np.ndarray | None = None, birthdays: bool = True, secret: str = "",
                       plan: bool = True, scored: bool = True, bare: bool = False,
                       alongside: Callable[[Callable, Callable], tuple] | None = None,
                       holdout: np.ndarray | None = None) -> tuple[Segmented, dict[str, int], dict[str, object]]:
    """evaluate_columns from purchase columns; `customers` (in the columns' order, None: no plan)
    are asked for one by one, and only the ones the plan needs. `with_items` says who has line
    items (None: unknown), `birthdays` whether any customer can have one, `scored` whether any
    purchase can carry an NPS answer (a CSV's cannot), `bare` whether the customers carry no card
    fields or tags (a CSV). `alongside(there, here)` gives (there(), here()), e.g. the model fitted in
    another process (connector.forked.alongside) while the metrics and the plan's counts, which do not
    read it, are made here; None: one after the other. `holdout`: the customers' hold-out draws made
    already (columnar.segment)."""
    s = segment(cols, today, playbook, holdout=holdout)

    def rest() -> dict[str, object]:
        out = metrics(s, customers if customers is not None else (), cac=cac, prospects=prospects, secret=secret,
                      scored=scored)
        s.extras = extras(s, customers if customers is not None else (), secret)
        if customers is not None and plan:
            products = {p.id: p for p in catalogue} if catalogue is not None else None
            out["planned"], out["suppressed"] = plan_counts(s, customers, history=history, catalogue=products,
                                                            with_items=with_items, birthdays=birthdays,
                                                            secret=secret, answers=scored, bare=bare)
        return out

    if predict and alongside is not None:
        made, out = alongside(lambda: prediction_of(s), rest)
        predict_into(s, made)
    else:
        if predict:
            predict_into(s)
        out = rest()
    if s.model_note:
        out["model_note"] = s.model_note
    return s, segment_counts(s), out


def extras(s: Segmented, customers: Sequence[Customer], secret: str) -> dict[int, dict]:
    """customer index -> the report's condition segments and referral code (engine.report's extras)."""
    pb, today = s.playbook, s.today
    conditions = pb.segments.conditions
    coded = pb.rule("referral") is not None and bool(secret)
    if not conditions and not coded:
        return {}
    tiers = pb.segments.tiers
    out: dict[int, dict] = {}
    for i, c in enumerate(sorted(customers, key=lambda c: c.id)):
        counted = sorted((p for p in c.purchases if p.date <= today and p.amount > 0), key=lambda p: (p.date, p.id))
        tier = int(s.tier[i])
        monetary = float(s.fig.monetary[i]) if s.fig.known[i] else 0
        more: dict = {}
        named = named_segments(conditions, counted, monetary, tiers.tiers[tier].name if tier >= 0 else tiers.none,
                               LIFECYCLE[s.lifecycle[i]], today)
        if named:
            more["named_segments"] = list(named)
        if coded and gives_code(tier, counted, pb):
            more["referral_code"] = referral_code(c.id, secret)
        if more:
            out[i] = more
    return out
