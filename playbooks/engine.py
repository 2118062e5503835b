"""evaluate(): facts -> shop-wide learning -> segments -> rules -> guards -> a sorted plan, reports and metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from itertools import chain

from connector.model import Action, Customer, Product
from playbooks import bonus
from playbooks.api import CustomerReport, Evaluation, PlanHistory, Suppressed
from playbooks.facts import CustomerFacts, ShopFacts, customer_facts, learn_shop
from playbooks.guards import guard_customer, is_holdout
from playbooks.keys import applied_by_customer
from playbooks.metrics import compute_metrics
from playbooks.referral import assign_codes, referral_bonus_credits
from playbooks.rules import REGISTRY
from playbooks.schema import Playbook
from playbooks.segments import assign
from playbooks.words import names_for

_RULES = {kind: cls() for kind, cls in REGISTRY.items()}  # rules are stateless


def learn_from_shop(facts: list[CustomerFacts], shop: ShopFacts, playbook: Playbook,
                    catalogue: Mapping[str, Product] | None) -> None:
    """Each enabled rule asks for what it learns from the whole shop; one pass over the facts fills it."""
    for kind, rule in _RULES.items():
        cfg = playbook.rule(kind)
        if cfg is not None:
            rule.learn(shop, cfg)
    if shop.wants_learning or catalogue:
        learn_shop(facts, shop, catalogue)
    if shop.referrals_wanted and shop.referral_secret:
        from playbooks.referral import find_referrals

        today = facts[0].today if facts else None
        for r in find_referrals((f.customer for f in facts), shop.referral_secret, today) if facts else ():
            shop.referrals.setdefault(r.referrer_id, []).append(r)


def build_facts(customers: Iterable[Customer], today: date, playbook: Playbook,
                history: PlanHistory | None = None,
                catalogue: Mapping[str, Product] | None = None, *, secret: str = "") -> list[CustomerFacts]:
    """Facts for every customer, segmented, sorted by customer id, with shop-wide learning done."""
    history = history or PlanHistory()
    shop = ShopFacts(words=names_for(playbook), referral_secret=secret)
    facts = [customer_facts(c, today, playbook.currency, playbook.rates, history, shop) for c in customers]
    facts.sort(key=lambda f: f.customer.id)
    learn_from_shop(facts, shop, playbook, catalogue)
    assign(facts, today, playbook)
    fill_bonuses(facts, today, playbook)
    assign_codes(facts, playbook, secret)
    holdout = playbook.guards.holdout
    for f in facts:
        f.holdout = f.n > 0 and is_holdout(f.customer.id, holdout)
    return facts


if referral_bonus_credits not in bonus.CREDIT_SOURCES:
    bonus.CREDIT_SOURCES.append(referral_bonus_credits)


def fill_bonuses(facts: list[CustomerFacts], today: date, playbook: Playbook) -> dict[str, list]:
    """Each customer's bonus account (playbooks.bonus), when the playbook keeps one, with the credits
    other rules give (returned, so the columnar reports use the same)."""
    if not playbook.bonuses_on:
        return {}
    credits = bonus.extra_credits(facts, today, playbook) if bonus.CREDIT_SOURCES else {}
    for f in facts:
        f.bonus = bonus.of_facts(f, today, playbook, credits.get(f.customer.id, ()))
    return credits


def plan_for(f: CustomerFacts, today: date, playbook: Playbook) -> list[Action]:
    """Every rule's actions for one customer, before guards; one action per key."""
    out: dict[str, Action] = {}
    for kind, rule in _RULES.items():
        cfg = playbook.rule(kind)
        if cfg is None:
            continue
        for action in rule.plan(f, today, cfg):
            out.setdefault(action.key, action)
    return list(out.values())


def held_out(f: CustomerFacts, playbook: Playbook) -> bool:
    """In the control group: a buyer as segmented (f.holdout), a prospect by the same hash, so a
    welcome series is measured against prospects who got none."""
    return f.holdout or (f.n == 0 and is_holdout(f.customer.id, playbook.guards.holdout))


def prospect_facts(newcomers: Iterable[Customer], today: date, playbook: Playbook, history: PlanHistory,
                   shop: ShopFacts) -> list[CustomerFacts]:
    """Contacts without a purchase passed beside the customers: planned for (welcome), never reported."""
    return [customer_facts(c, today, playbook.currency, playbook.rates, history, shop) for c in newcomers]


def plan_guarded(facts: Iterable[CustomerFacts], today: date, playbook: Playbook,
                 applied: Mapping[str, list]) -> Iterable[tuple[list[Action], list[Suppressed]]]:
    """Each customer's actions after the guards: (kept, suppressed), customers without actions skipped."""
    for f in facts:
        actions = plan_for(f, today, playbook)
        if actions:
            yield guard_customer(f.customer, actions, today, playbook.guards, applied.get(f.customer.id, ()),
                                 holdout=held_out(f, playbook))


def report(f: CustomerFacts, prediction: Mapping[str, float] | None = None) -> CustomerReport:
    extra: dict[str, object] = {
        "currency": f.currency,
        "aov": round(f.aov, 2),
        "next_tier": f.next_tier,
        "to_next_tier": f.to_next_tier,
        **(prediction or {}),
    }
    if f.bonus is not None:
        extra["bonus_balance"] = f.bonus.balance
        extra["bonus_expires"] = f.bonus.next_expiry.isoformat() if f.bonus.next_expiry else None
        extra["bonus_expiring"] = f.bonus.expiring
    if f.excluded_other_currency:
        extra["excluded_other_currency"] = f.excluded_other_currency
    if f.named_segments:
        extra["named_segments"] = list(f.named_segments)
    if f.referral_code:
        extra["referral_code"] = f.referral_code
    return CustomerReport(
        customer_id=f.customer.id, purchases=f.n, first_purchase=f.first, last_purchase=f.last,
        recency_days=f.recency_days, frequency=f.n, monetary=round(f.monetary, 2), rfm=f.rfm,
        lifecycle=f.lifecycle, value=f.value, trend=f.trend, tier=f.tier, segment=f.segment,
        holdout=f.holdout, extra=extra)


def segment_counts(facts: Iterable[CustomerFacts]) -> dict[str, int]:
    """Named RFM segments under their own names; other segmentations as `lifecycle:<stage>`,
    `value:<level>`, `trend:<trend>`, `tier:<tier>`; plus `holdout`."""
    counts: Counter[str] = Counter()
    for f in facts:
        counts[f.segment] += 1
        counts[f"lifecycle:{f.lifecycle}"] += 1
        counts[f"value:{f.value}"] += 1
        counts[f"trend:{f.trend}"] += 1
        counts[f"tier:{f.tier}"] += 1
        if f.holdout:
            counts["holdout"] += 1
    return dict(sorted(counts.items()))


def sort_key(a: Action) -> tuple:
    return (a.due, a.customer_id, a.rule, a.key)


def lifetime_prediction(facts: Iterable[CustomerFacts], today: date):
    """BG/NBD + Gamma-Gamma over the evaluated customers (amounts in the playbook currency)."""
    from playbooks.predict import predict  # numpy/scipy load only when a model is wanted

    return predict(_Histories(facts), today)


class _Histories(Mapping[str, list]):
    """Each customer's (purchase date, amount) pairs, made as predict() reads them: a million
    pairs are never held at once."""

    def __init__(self, facts: Iterable[CustomerFacts]) -> None:
        self._facts = {f.customer.id: f for f in facts if f.n}

    def __getitem__(self, customer_id: str) -> list:
        f = self._facts[customer_id]
        return list(zip((p.date for p in f.purchases), f.amounts, strict=True))

    def __iter__(self):
        return iter(self._facts)

    def __len__(self) -> int:
        return len(self._facts)


def run(customers: Iterable[Customer], today: date, playbook: Playbook, history: PlanHistory,
        *, catalogue: Mapping[str, Product] | None = None, cac: float | None = None,
        predict: bool = True, prospects: int = 0, secret: str = "",
        newcomers: Iterable[Customer] = ()) -> Evaluation:
    facts = build_facts(customers, today, playbook, history, catalogue, secret=secret)
    shop = facts[0].shop if facts else ShopFacts(words=names_for(playbook), referral_secret=secret)
    leads = prospect_facts(newcomers, today, playbook, history, shop)
    # the lifetime model first, so its working arrays are freed before the plan is built (peak memory)
    prediction = lifetime_prediction(facts, today) if predict else None
    applied = applied_by_customer(history.applied, REGISTRY) if history.applied else {}
    plan: list[Action] = []
    suppressed: list[Suppressed] = []
    for kept, dropped in plan_guarded(chain(facts, leads), today, playbook, applied):
        plan.extend(kept)
        suppressed.extend(dropped)
    del leads
    plan.sort(key=sort_key)
    suppressed.sort(key=lambda s: (s.customer_id, s.rule, s.key))
    metrics = compute_metrics(facts, today, playbook, cac=cac, prospects=prospects, secret=secret)
    metrics["planned"] = len(plan)
    metrics["suppressed"] = len(suppressed)
    model, predicted = None, {}
    if prediction is not None:
        model, predicted = prediction.model, prediction.customers
        if prediction.note:
            metrics["model_note"] = prediction.note
    segments = segment_counts(facts)
    # each customer's facts (and history) are let go as its report is made, and its prediction once
    # merged (ids are unique): a big shop's facts and reports are never all held at once
    facts.reverse()
    reports: list[CustomerReport] = []
    while facts:
        f = facts.pop()
        reports.append(report(f, predicted.pop(f.customer.id, None)))
    return Evaluation(as_of=today, customers=reports, plan=plan, segments=segments, metrics=metrics,
                      suppressed=suppressed, model=model)


def evaluate(customers: Iterable[Customer], today: date, playbook: Playbook,
             *, history: PlanHistory | None = None, catalogue: Iterable[Product] | None = None,
             cac: float | None = None, predict: bool = True, prospects: int = 0, secret: str = "",
             newcomers: Iterable[Customer] = ()) -> Evaluation:
    """Segment every customer and plan the actions due as of `today`.

    `catalogue` (optional) gives the rules products' `cycle_days` and prices; `cac` overrides the playbook's `metrics.cac` for the `ltv_cac` metric.
    `predict=False` skips fitting the lifetime model (playbooks.predict), e.g. for replays.
    `prospects` counts contacts without any purchase that were not passed in (metrics only).
    `secret` (settings) makes the referral codes; without it no code is given or credited.
    `newcomers`: such contacts (say, created lately) the rules may plan for - a welcome series;
    they are planned and guarded, never reported or counted (`prospects` counts them).
    """
    products = {p.id: p for p in catalogue} if catalogue is not None else None
    return run(customers, today, playbook, history or PlanHistory(), catalogue=products, cac=cac,
               predict=predict, prospects=prospects, secret=secret, newcomers=newcomers)
