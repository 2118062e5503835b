"""What every rule shares: the Rule base class, the message spec of a step, and action building."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from connector.model import Action, ActionKind, Channel, action_key
from playbooks import numbers
from playbooks.templates import (
    CUSTOMER_PLACEHOLDERS,
    PLACEHOLDERS,
    filled,
    missing_values,
    money,
    placeholders,
    render_with,
)

if TYPE_CHECKING:
    from playbooks.facts import CustomerFacts, ShopFacts

KINDS = ["task", "workflow", "deal"]
CHANNELS = ["email", "sms", "call", "task", "messenger"]
TOUCH_CHANNELS = ["messenger", "email", "sms", "task"]  # a step's `channels`, tried in the order given


@dataclass(frozen=True)
class Message:
    """How a step reaches the customer: a manager task or a CRM automation start, and its texts.

    `template` is the CRM automation (business process / Salesbot) id a `workflow` starts.
    `channels` (e.g. ["messenger", "email", "sms", "task"]): the step goes out through the first
    one that can reach this customer; `subject` and `text` are what the customer reads there, while
    `title` and `body` stay the manager's words (a `task` channel is the manager's last resort).
    """

    kind: str = field(default="task", metadata={"choices": KINDS})
    channel: str = field(default="task", metadata={"choices": CHANNELS})
    title: str = field(default="", metadata={"template": PLACEHOLDERS})
    body: str = field(default="", metadata={"template": PLACEHOLDERS})
    template: str = ""
    channels: list[str] = field(default_factory=list, metadata={"choices": TOUCH_CHANNELS})
    subject: str = field(default="", metadata={"template": CUSTOMER_PLACEHOLDERS})
    text: str = field(default="", metadata={"template": CUSTOMER_PLACEHOLDERS})

    def check(self):
        if self.channels:
            if len(set(self.channels)) != len(self.channels):
                yield "channels", "a channel is listed twice", "name each channel once, in the order to try them"
            if self.kind != "task":
                yield "kind", "a step with `channels` is delivered through them", \
                    "remove `kind` (and `template`) from this step, or remove `channels`"
            if not self.text:
                yield "text", "a step with `channels` needs the text the customer reads", \
                    "set text = \"...\" (placeholders allowed); title and body stay the manager's"
            if "email" in self.channels and not self.subject:
                yield "subject", "an e-mail needs a subject", "set subject = \"...\" (placeholders allowed)"
        if self.kind == "workflow" and not self.template:
            yield "template", "a workflow step needs the CRM automation template id", \
                "set template = \"<business process or Salesbot id>\", or kind = \"task\""
        if not self.title:
            yield "title", "missing title", "every step needs a title (placeholders allowed)"


class Rule:
    """A rule kind: `kind` is its TOML key under [rules]; `Config` its settings dataclass."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type] = object

    def learn(self, shop: ShopFacts, config: Any) -> None:
        """Ask for what this rule learns from the whole shop, before customers are planned.

        Any rule whose steps' texts show `{suggestions}` needs the shop's co-purchases.
        """
        if any("{suggestions}" in (getattr(s, "body", "") + getattr(s, "title", ""))
               for s in getattr(config, "steps", [])):
            shop.want_pairs()

    def plan(self, facts: CustomerFacts, today: date, config: Any) -> Iterable[Action]:
        raise NotImplementedError

    def may_fire(self, due: Any, config: Any) -> Any:
        """Which customers plan() could give an action today, from columns (playbooks.columnar_plan.
        DueColumns): a boolean array that holds every customer plan() would act on, or None for
        everyone. Only a speed-up for columnar planning: a rule without it is asked about every
        customer; one with it must stay a superset of plan() (the equivalence tests check it).
        """
        return None


def in_window(due: date, today: date, within_days: int) -> bool:
    """A step fires on its due day or up to `within_days` days after it, never before."""
    return 0 <= (today - due).days <= within_days


BONUS_PLACEHOLDERS = frozenset({"bonus_balance", "bonus_expires", "bonus_expiring"})


def base_values(facts: CustomerFacts, names: frozenset[str]) -> dict[str, object]:
    """The placeholder values every rule can use, of those `names` (what the step's texts name: each
    value is made only for a text that shows it - a plan renders a hundred thousand steps)."""
    words = facts.shop.words  # codes become the team's names in texts ("уровень Золото", not "gold")
    name = words.of if words is not None else (lambda _group, code: code or "")
    out = {key: value(facts, name) for key, value in _SHARED.items() if key in names}
    if not BONUS_PLACEHOLDERS.isdisjoint(names):
        out.update(bonus_values(facts))
    return out


_SHARED = {  # placeholder -> its value from (facts, the team's name of a code)
    "name": lambda f, _name: f.customer.name,
    "tier": lambda f, name: name("tiers", f.tier),
    "next_tier": lambda f, name: name("tiers", f.next_tier),
    "to_next_tier": lambda f, _name: _fmt_num(f.to_next_tier) if f.to_next_tier is not None else "",
    "benefits": lambda f, _name: f.tier_benefits,
    "next_benefits": lambda f, _name: f.next_tier_benefits,
    "manager": lambda f, _name: f.customer.manager_id or (f.purchases[-1].manager_id if f.purchases else "") or "",
    "currency": lambda f, _name: f.currency,
    "segment": lambda f, name: name("segments", f.segment),
    "lifecycle": lambda f, name: name("lifecycle", f.lifecycle),
    "suggestions": lambda f, _name: ", ".join(shown for _pid, shown in f.suggestions),
}


@lru_cache(maxsize=1024)
def named_in(*texts: str) -> frozenset[str]:
    """The placeholders some of a step's texts name (a playbook has a few dozen steps)."""
    return frozenset(n for t in texts if t for n in placeholders(t))


def bonus_values(facts: CustomerFacts) -> dict[str, str]:
    """{bonus_balance}, {bonus_expires}, {bonus_expiring}: empty when the playbook keeps no bonuses
    (or nothing burns), so a customer text naming them is held back rather than sent with a hole."""
    b = facts.bonus
    if b is None:
        return {"bonus_balance": "", "bonus_expires": "", "bonus_expiring": ""}
    return {"bonus_balance": money(b.balance, facts.currency),
            "bonus_expires": b.next_expiry.isoformat() if b.next_expiry else "",
            "bonus_expiring": money(b.expiring, facts.currency) if b.expiring > 0 else ""}


def purchase_values(facts: CustomerFacts, purchases: Iterable[Any], names: frozenset[str] | None = None
                    ) -> dict[str, object]:
    """{products}, {purchase_date} and {amount} of the purchases (the last one's date); `names`: only
    when some text names the amount (None: every value)."""
    items = []
    total = 0.0
    last = None
    for p in purchases:
        last = p
        total += facts.amount_of(p) or 0.0
        items.extend(i.name for i in p.items if i.name)
    out: dict[str, object] = {"products": ", ".join(dict.fromkeys(items)) or (last.title if last else "")}
    if last is not None:
        out["purchase_date"] = last.date.isoformat()
        if names is not None and "amount" not in names:
            return out
        words = facts.shop.words  # "1 234,50 ₽" in Russian, "1,234.50 RUB" in English
        if words is None:
            out["amount"] = money(total, facts.currency)
        else:
            out["amount"] = numbers.money(total, facts.currency, words.lang, 0 if float(total).is_integer() else 2)
    return out


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def make_action(facts: CustomerFacts, rule: str, anchor: str | None, step: str, due: date,
                msg: Message, priority: int, values: Mapping[str, object],
                payload: Mapping[str, object] | None = None) -> Action:
    """An Action with its stable key, rendered texts, and the workflow template in the payload."""
    vals = {**base_values(facts, named_in(msg.title, msg.body, msg.subject, msg.text)), "date": due.isoformat(),
            **values}
    data: dict[str, object] = dict(payload or {})
    if msg.kind == "workflow":
        data["template"] = msg.template
    channel = Channel(msg.channel)
    if msg.channels:  # a touch: what the customer reads, and where to try it, in order
        shown = {**vals, "tier": facts.tier_label or facts.tier, "next_tier": facts.next_tier_label or vals.get("next_tier")}
        blank = filled(shown)
        subject, missing = render_with(msg.subject, blank), missing_values(msg.subject, shown)
        text, missing_text = render_with(msg.text, blank), missing_values(msg.text, shown)
        data.update(channels=list(msg.channels), subject=subject, text=text)
        if missing or missing_text:
            data["missing"] = sorted({*missing, *missing_text})
        channel = Channel(msg.channels[0])
    manager = facts.customer.manager_id or (facts.purchases[-1].manager_id if facts.purchases else None)
    blank = filled(vals)
    return Action(
        key=action_key(facts.customer.id, rule, anchor, step),
        kind=ActionKind(msg.kind),
        customer_id=facts.customer.id,
        rule=rule,
        step=step,
        due=due,
        title=render_with(msg.title, blank),
        body=render_with(msg.body, blank),
        channel=channel,
        # a year, a tier or a period anchors a key too, but only a purchase of this customer links a deal
        anchor_purchase_id=anchor if any(p.id == anchor for p in facts.customer.purchases) else None,
        manager_id=manager,
        priority=priority,
        payload=data,
    )


def in_segments(facts: CustomerFacts, names: list[str]) -> bool:
    """Empty list: everyone. A name matches the RFM segment, or `lifecycle:`/`value:`/`trend:`/
    `tier:` prefixed (or bare) lifecycle stage, value level, trend or tier, or a condition segment."""
    if not names:
        return True
    mine = {facts.segment, facts.lifecycle, facts.value, facts.trend, facts.tier,
            f"lifecycle:{facts.lifecycle}", f"value:{facts.value}", f"trend:{facts.trend}", f"tier:{facts.tier}",
            *facts.named_segments}
    return any(n in mine for n in names)


def occurrence(year: int, month: int, day: int) -> date:
    """The date in `year`; 29 February falls back to 28 February in other years."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, month, day - 1)
