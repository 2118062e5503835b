"""Segment fields on every customer card: what to write, under which key, and what was written last.

After each evaluation the customer's segment, RFM code, lifecycle stage, loyalty tier, predicted
next purchase date and bonus balance (playbooks.bonus) go onto the card (Bitrix24 user fields, amoCRM custom fields plus one segment
tag), so a sales team can filter and automate on them. These are planned here as `tag` actions,
never by playbook rules, and only for customers whose values differ from the values written last
(kept in the state file). The key `v1:<customer>:segment:g<n>-<hash of the values>:fields` changes
with the values and with the n-th write, so a segment that flips back (active -> sleeping ->
active) is written again, while a rerun re-plans the same key until it is applied.
An adapter settles a lost answer by reading the card back: the values it holds hash to the key.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

from connector.model import Action, ActionKind, Channel, Customer, action_key
from connector.state import State
from connector.store import cards

RULE = "segment"  # the rule part of a field action's key; not a playbook rule
STEP = "fields"
PRIORITY = 1000  # after every customer-facing action
SEGMENT_TAG_PREFIX = "rs-segment:"  # amoCRM: one tag per card names the segment
BLANK_LIFECYCLE = "prospect"  # the lifecycle of a customer with no purchase (as of the evaluated day)


@dataclass(frozen=True)
class CardField:
    """A value written on the customer card; `kind` is "string", "date" (ISO YYYY-MM-DD) or "number"
    (written as 2-decimal text; a CRM may read it back as 53 or 53.0, the same value)."""

    name: str
    kind: str
    label_ru: str
    label_en: str


CARD_FIELDS: tuple[CardField, ...] = (
    CardField("segment", "string", "Сегмент клиента", "Customer segment"),
    CardField("rfm", "string", "RFM-код", "RFM code"),
    CardField("lifecycle", "string", "Стадия жизненного цикла", "Lifecycle stage"),
    CardField("tier", "string", "Уровень лояльности", "Loyalty tier"),
    CardField("next_purchase", "date", "Прогноз следующей покупки", "Predicted next purchase"),
    # the bonus balance (playbooks.bonus) in the playbook's currency: Bitrix24 UF_CRM_RS_BONUS, amoCRM RS_BONUS
    CardField("bonus", "number", "Бонусный баланс", "Bonus balance"),
    CardField("named_segments", "string", "Сегменты по условиям", "Condition segments"),
    CardField("referral_code", "string", "Реферальный код", "Referral code"),
)
FIELD_NAMES = tuple(f.name for f in CARD_FIELDS)
NUMBER_FIELDS = frozenset(f.name for f in CARD_FIELDS if f.kind == "number")
# the playbook's second edition: written where install made them, and left out of a card's digest while
# empty, so a card written before they existed is not rewritten for them
LATER_FIELDS = frozenset({"named_segments", "referral_code"})
REQUIRED_FIELDS = tuple(n for n in FIELD_NAMES if n not in LATER_FIELDS)

def is_field_key(key: str) -> bool:
    return key.startswith("v1:") and f":{RULE}:" in key and key.endswith(f":{STEP}")


def digest(values: Mapping[str, str]) -> str:
    """Eight hex digits naming a set of card values (the same values give the same digest)."""
    text = json.dumps({n: _canon(n, normal(values.get(n))) for n in FIELD_NAMES
                       if n not in LATER_FIELDS or normal(values.get(n))}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _canon(name: str, text: str) -> str:
    """A number field's text as 2 decimals ("53", "53.0" and "53.00" are one value)."""
    if name in NUMBER_FIELDS and text:
        try:
            return f"{float(text.replace(',', '.')):.2f}"
        except ValueError:
            return text
    return text


def number_text(value: object) -> str:
    """A number as a card holds it: "53.00"; None -> "" (the field is cleared)."""
    return "" if value is None else f"{float(value):.2f}"


def key_digest(key: str) -> str:
    """The values' digest a field action's key carries: `...:segment:g3-1a2b3c4d:fields` -> 1a2b3c4d."""
    anchor = key.rsplit(":", 2)[-2]
    return anchor.rpartition("-")[2]


def customer_of(key: str) -> str:
    return key.split(":")[1]


def normal(value: object) -> str:
    """A card value as text; dates as YYYY-MM-DD whatever form the CRM reads them back in."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    if len(text) >= 10 and text[2] == "." and text[5] == ".":  # dd.mm.yyyy (a portal's display format)
        try:
            return datetime.strptime(text[:10], "%d.%m.%Y").date().isoformat()
        except ValueError:
            return text
    if len(text) > 10 and text[4] == "-" and text[10] in "T ":  # an ISO moment: its calendar day
        return text[:10]
    return text


def predicted_next_purchase(customer: Customer | None) -> str:
    """The last purchase day plus the customer's median interval between purchase days.

    Empty for one-day buyers. It moves only with a new purchase, so it is not rewritten daily;
    a date in the past says the customer is overdue.
    """
    if customer is None:
        return ""
    days = sorted({p.date for p in customer.purchases})
    if len(days) < 2:
        return ""
    gap = median((b - a).days for a, b in zip(days, days[1:], strict=False))
    return date.fromordinal(days[-1].toordinal() + round(gap)).isoformat()


@dataclass(frozen=True)
class CardFacts:
    """What a card action needs from the snapshot: the segment tags the card holds, the next purchase."""

    segment_tags: frozenset[str]
    next_purchase: str


def card_facts(customer: Customer) -> CardFacts:
    return CardFacts(frozenset(t for t in customer.tags if t.startswith(SEGMENT_TAG_PREFIX)),
                     predicted_next_purchase(customer))


def snapshot_card_facts(db, account: str) -> dict[str, CardFacts]:
    """card_facts of every customer with a purchase, read from the snapshot's columns (purchase days,
    the cards' segment tags) without a Customer object each; a customer with neither a next purchase
    nor a segment tag is left out (field_actions reads a missing one the same way)."""
    from itertools import groupby

    from connector.store import columns

    tagged = {cid: frozenset(t for t in json.loads(text) if t.startswith(SEGMENT_TAG_PREFIX))
              for cid, text in columns.tags_holding(db, account, SEGMENT_TAG_PREFIX)}
    out: dict[str, CardFacts] = {}
    days: dict[str, date] = {}
    for cid, rows in groupby(columns.purchase_days(db, account), key=lambda r: r[0]):
        seen = sorted({d for _c, d in rows if d})
        tags = tagged.get(cid, frozenset())
        if len(seen) < 2 and not tags:
            continue
        next_purchase = ""
        if len(seen) >= 2:
            dated = [days.get(d) or days.setdefault(d, date.fromisoformat(d)) for d in seen]
            gap = median((b - a).days for a, b in zip(dated, dated[1:], strict=False))
            next_purchase = date.fromordinal(dated[-1].toordinal() + round(gap)).isoformat()
        out[cid] = CardFacts(tags, next_purchase)
    return out


def card_codes(report, facts: CardFacts | None) -> dict[str, str]:
    """The codes for one customer's card from its evaluation report (`CustomerReport`)."""
    extra = getattr(report, "extra", None) or {}
    return {"segment": report.segment, "rfm": report.rfm, "lifecycle": report.lifecycle,
            "tier": report.tier, "next_purchase": facts.next_purchase if facts else "",
            "bonus": number_text(report.extra.get("bonus_balance")),
            "named_segments": ", ".join(extra.get("named_segments") or ()),
            "referral_code": str(extra.get("referral_code") or "")}


NAMED_FIELDS = {"segment": "segments", "lifecycle": "lifecycle", "tier": "tiers"}  # field -> playbooks.words group


def card_values(codes: dict[str, str], names=None) -> dict[str, str]:
    """What the team reads on the card: segment, lifecycle and tier by name ("Чемпионы"), the rest as is.

    `names` is a `playbooks.words.Names`; without it the codes are written (as before names existed).
    A CRM that filters by code keeps it next to the name (connector/bitrix/fields.py)."""
    if names is None:
        return dict(codes)
    return {k: names.of(NAMED_FIELDS[k], v) if k in NAMED_FIELDS and v else v for k, v in codes.items()}


class WrittenCards:
    """What was last written on each card (its own table in the state file)."""

    def __init__(self, state: State) -> None:
        self.db = state.db

    def last(self, account: str) -> dict[str, tuple[int, str]]:
        return {c: (int(g), d) for c, g, d in cards.written_cards(self.db, account)}

    def codes(self, account: str, customers: Iterable[str]) -> dict[str, dict]:
        """The codes each of these cards was last written with (a card never written is missing)."""
        wanted, out = set(customers), {}
        for customer_id, values in cards.card_values(self.db, account):
            if customer_id in wanted:
                out[customer_id] = json.loads(values)
        return out

    def holding_values(self, account: str) -> set[str]:
        """Customers whose card was last written with a purchase history (not a prospect's blank)."""
        return {c for c, values in cards.card_values(self.db, account) if json.loads(values).get("lifecycle") not in (None, "", BLANK_LIFECYCLE)}

    def record(self, account: str, actions: Iterable[Action]) -> int:
        rows = [(account, a.customer_id, int(a.payload.get("generation", 1)), key_digest(a.key),  # codes: see holding_values
                 json.dumps(dict(a.payload.get("codes") or a.payload.get("fields") or {}), ensure_ascii=False), a.key,
                 time.time())
                for a in actions]
        cards.record_cards(self.db, rows)
        return len(rows)


def field_actions(reports: Iterable, cards: Mapping[str, CardFacts], last: Mapping[str, tuple[int, str]],
                  today: date, *, lang: str = "ru", names=None) -> list[Action]:
    """One `tag` action per customer whose card values differ from those written last.

    The payload holds `fields` (name -> text the team reads, "" clears), `codes` (the same by code),
    `tag` (the segment tag, by code) and `drop_tags` (segment tags the card holds now that the new
    one replaces). `names` (`playbooks.words.Names`) names the codes in the playbook's language.
    """
    out = []
    for report in reports:
        facts = cards.get(report.customer_id)
        codes = card_codes(report, facts)
        values = card_values(codes, names)
        mark = digest(values)
        generation, written = last.get(report.customer_id, (0, ""))
        if written == mark:
            continue
        tag = f"{SEGMENT_TAG_PREFIX}{codes['segment']}"
        old_tags = sorted(t for t in (facts.segment_tags if facts else ()) if t != tag)
        title = ("Поля сегмента: " if lang == "ru" else "Segment fields: ") + ", ".join(
            v for v in values.values() if v)
        out.append(Action(
            key=action_key(report.customer_id, RULE, f"g{generation + 1}-{mark}", STEP), kind=ActionKind.TAG,
            customer_id=report.customer_id, rule=RULE, step=STEP, due=today, title=title,
            channel=Channel.TASK, priority=PRIORITY,
            payload={"fields": values, "codes": codes, "tag": tag, "drop_tags": old_tags, "generation": generation + 1}))
    return out
