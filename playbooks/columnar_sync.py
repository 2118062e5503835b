"""The sync's plan on top of a columnar segmentation: every action kept and held back, as
engine.run plans them, made only for the customers some rule could act on today.

playbooks.columnar_plan.plan_counts counts the same plan for `analyze` and lets it go; the sync
needs the actions themselves, and reads the snapshot's line items as columns (ItemColumns), so
the shop is learned from them instead of from every customer's facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from connector.model import Action, Customer, Product
from playbooks import bonus
from playbooks.api import PlanHistory
from playbooks.columnar import Segmented
from playbooks.columnar_plan import DueColumns, balances_of, fill_one, plan_each
from playbooks.facts import CustomerFacts, ShopFacts, customer_facts
from playbooks.keys import applied_by_customer
from playbooks.referral import assign_codes, referral_bonus_credits
from playbooks.rules import REGISTRY
from playbooks.words import names_for


def plan_due(s: Segmented, customers: Sequence[Customer], items, *, history: PlanHistory | None = None,
             catalogue: Mapping[str, Product] | None = None, secret: str = "", newcomers: Sequence[Customer] = (),
             born: np.ndarray | None = None, nps: np.ndarray | None = None,
             spread: Callable[[list[int], Callable], Iterator] | None = None) -> Iterator[tuple[list[Action], list]]:
    """Each customer's (kept, suppressed) actions, customers without any skipped; `customers` in the
    order of s.cols.ids, `items` (playbooks.columnar_learn.ItemColumns) their line items, let go once
    the shop is learned and each rule has said whom it may act on (pass them unnamed to free them).

    Each rule first says from the columns who it could act on today (Rule.may_fire); facts are made
    and rules asked only for those customers. A `customers` with a `prefetch(indices)` is told who
    will be asked for, a batch ahead. Every customer's facts are made only where the reference
    needs them all: the referral programme (with its secret) and the bonus credits other rules give.
    `spread(due, plan)` plans the due customers' indices (plan(indices, customers) plans some of
    them), e.g. half of them in another process; by default all here, in order.
    """
    from playbooks.engine import _RULES, learn_from_shop, plan_guarded, prospect_facts

    pb, today = s.playbook, s.today
    history = history or PlanHistory()
    shop = ShopFacts(words=names_for(pb), referral_secret=secret)
    everyone: list[CustomerFacts] | None = None
    if pb.rule("referral") is not None and secret:  # who brought whom, and the codes: every customer's facts
        everyone = [customer_facts(c, today, pb.currency, pb.rates, history, shop) for c in customers]
        learn_from_shop(everyone, shop, pb, catalogue)
    else:
        learn_in_bulk(items, shop, pb, catalogue)
    # credits from every customer's facts; the referral's need the secret (without it, shop.referrals is empty)
    credit_sources = [src for src in bonus.CREDIT_SOURCES if src is not referral_bonus_credits or everyone is not None]
    if everyone is not None or (pb.bonuses_on and credit_sources):
        if everyone is None:
            everyone = [customer_facts(c, today, pb.currency, pb.rates, history, shop) for c in customers]
        for i, f in enumerate(everyone):
            fill_one(s, f, i)
        assign_codes(everyone, pb, secret)
        s.bonus_credits = bonus.extra_credits(everyone, today, pb) if pb.bonuses_on and bonus.CREDIT_SOURCES else {}
    applied = applied_by_customer(history.applied, REGISTRY) if history.applied else {}
    due = DueColumns(today=today, n=s.fig.n, recency=s.fig.recency, lost_after=s.lost_after,
                     history=np.fromiter((cid in applied for cid in s.cols.ids), dtype=bool, count=len(s.cols.ids)),
                     customers=customers, shop=shop, start=s.cols.start, day=s.cols.day,
                     bonus_days=pb.bonuses.bonus_expiry_days if pb.bonuses_on else -1,
                     bonus_credits=s.bonus_credits or {}, items=items, born=born, nps=nps,
                     applied=applied, ids=s.cols.ids, tier=s.tier, tiers=pb.segments.tiers)
    rules = []
    anyone = due.nobody()
    for kind, rule in _RULES.items():
        cfg = pb.rule(kind)
        if cfg is None:
            continue
        mask = rule.may_fire(due, cfg)
        anyone |= True if mask is None else mask
        rules.append((rule, cfg, mask))
    due_now = np.flatnonzero(anyone).tolist()
    items = due = None  # the line items' columns (~100 MB at 200,000 customers) go before the actions come
    balances = balances_of(s)

    def plan(indices: list[int], people: Sequence[Customer]) -> Iterator[tuple[list[Action], list]]:
        prefetch = getattr(people, "prefetch", None) if everyone is None else None
        return plan_each(s, people, indices, rules, everyone=everyone, history=history, shop=shop,
                         applied=applied, balances=balances, prefetch=prefetch)

    yield from (plan(due_now, customers) if spread is None else spread(due_now, plan))
    yield from plan_guarded(prospect_facts(newcomers, today, pb, history, shop), today, pb, applied)


def learn_in_bulk(items, shop: ShopFacts, pb, catalogue: Mapping[str, Product] | None) -> None:
    """engine.learn_from_shop with the shop learned from line-item columns (no referrals: no secret)."""
    from playbooks.columnar_learn import learn_columns
    from playbooks.engine import _RULES

    for kind, rule in _RULES.items():
        cfg = pb.rule(kind)
        if cfg is not None:
            rule.learn(shop, cfg)
    if shop.wants_learning or catalogue:
        learn_columns(items, shop, catalogue)
