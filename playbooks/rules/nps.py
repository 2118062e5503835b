"""nps: act on the answer to the feedback question (0-10): a manager call for a detractor, the
referral offer for a promoter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action
from playbooks.facts import CustomerFacts
from playbooks.referral import DETRACTOR, PROMOTER
from playbooks.rules.base import Message, Rule, in_segments, make_action, purchase_values
from playbooks.templates import money


@dataclass(frozen=True)
class NpsConfig:
    enabled: bool = True
    priority: int = field(default=15, metadata={"min": 0})
    ask_day: int = field(default=7, metadata={"min": 0, "max": 365})  # the calendar step that asks
    answer_within_days: int = field(default=60, metadata={"min": 1, "max": 3650})
    segments: list[str] = field(default_factory=list)
    detractor: Message | None = None  # 0-6: a manager task, due the day after the question
    promoter: Message | None = None  # 9-10: the referral offer


class NpsRule(Rule):
    """The feedback loop behind NPS.

    When it fires: once a purchase carries its 0-10 answer (a deal field the CRM fills from a form
    or the manager, or `POST /feedback/<secret>` on `serve`), while the purchase is at most
    `answer_within_days` old: 0-6 plans `detractor`, 9-10 plans `promoter` (when its texts name
    {code} or {bonus}, only for a customer who holds a code); 7-8 nothing.
    Both are due the day after the question was asked (`ask_day` + 1 after the purchase) and are
    planned from that day on, so a late answer is overdue at once - a detractor waits at most a day.
    What it plans: one action per answered purchase; key anchor = the purchase.
    Example: bought 03-01, answered 4 on 03-09 -> "call back: the customer rated us 4" due 03-09.
    """

    kind = "nps"
    Config = NpsConfig

    def may_fire(self, due, config: NpsConfig):
        """A customer with an answered purchase whose question was due (`ask_day` + 1 days after it)
        and that is at most `answer_within_days` old; no column holds the answer, so each who bought then
        is asked (none where no purchase can carry one: `due.answers`)."""
        if (config.detractor is None and config.promoter is None) or not due.answers:
            return due.nobody()
        today, first, last = due.today, config.ask_day + 1, config.answer_within_days
        rated = getattr(due, "nps", None)  # each counted purchase's answer (-1: none), when read as a column
        if rated is not None:
            return due.bought_between(last, first, only=rated >= 0)
        return due.each(lambda c: any(p.nps is not None and first <= (today - p.date).days <= last
                                      for p in c.purchases), due.bought_between(last, first))

    def plan(self, facts: CustomerFacts, today: date, config: NpsConfig) -> Iterator[Action]:
        if not in_segments(facts, config.segments):
            return
        for p in reversed(facts.purchases):
            if (today - p.date).days > config.answer_within_days:
                break
            if p.nps is None:
                continue
            step, msg = ("detractor", config.detractor) if p.nps <= DETRACTOR else \
                ("promoter", config.promoter) if p.nps >= PROMOTER else ("", None)
            if msg is None or (needs_code(msg) and not facts.referral_code):
                continue  # a referral offer without a code (no referral programme, no secret) is not made
            vals = {**purchase_values(facts, [p]), "score": p.nps}
            referral = facts.shop.referral_bonus
            if facts.referral_code:
                vals.update(code=facts.referral_code, bonus=money(referral, facts.currency) if referral else "")
            due = p.date + timedelta(days=config.ask_day + 1)
            if today < due:  # an early answer waits for the day the question was due: never planned ahead
                continue
            yield make_action(facts, self.kind, p.id, step, due, msg, config.priority, vals)


def needs_code(msg: Message) -> bool:
    return any("{code}" in t or "{bonus}" in t for t in (msg.title, msg.body, msg.subject, msg.text))
