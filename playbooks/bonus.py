"""The customer's bonus balance: a pure function of the purchase history, today and the playbook.

Nothing is stored: every run recomputes the account from the won deals, so each purchase accrues
exactly once (its entry is keyed `v1:<customer>:bonus:<purchase>:accrual`, like every action) and a
deal edited in the CRM corrects the balance on the next run.

How one purchase is booked, in (date, purchase id) order as the facts sort them:
1. accruals whose expiry date has come burn (an accrual of day D burns on D + `bonus_expiry_days`:
   that day it is gone);
2. the bonuses paid on it (the playbook's `paid_field` of the deal, in the deal's currency) are taken
   from the oldest accruals first, capped at `max_pay_with_bonus_percent` of the purchase and at the
   balance: a redemption never takes the balance below zero;
3. the rest, paid in money, accrues the cashback of the tier the customer holds *with* this
   purchase - the tier counted as playbooks.segments.assign_tier counts it (the purchase that
   reaches silver is a silver purchase, as the loyalty rule's "welcome to silver" says). So the first
   purchase already earns the first tier's cashback, and an upgrade pays from the purchase that
   earned it.
Extra credits (date, amount, key, reason), e.g. a referral bonus, join on their day after that day's
purchases, once per key, and burn like accruals. Money is kept in whole kopecks (cents), rounded
half up, in the playbook's currency; a deal in a currency without a rate accrues nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from connector.model import action_key
from playbooks.schema import Playbook

RULE = "bonus"  # the rule part of an entry's key


@dataclass(frozen=True, slots=True)
class BonusEntry:
    """One movement of the account: `kind` accrual | credit | redemption | expiry; `amount` signed."""

    day: date
    kind: str
    amount: float
    key: str
    reason: str = ""
    expires: date | None = None


@dataclass(frozen=True, slots=True)
class BonusBalance:
    balance: float
    next_expiry: date | None  # the next day some of the balance burns
    expiring: float  # how much burns that day
    entries: tuple[BonusEntry, ...] = ()


EMPTY = BonusBalance(0.0, None, 0.0)
Credit = tuple[date, float, str, str]  # (day, amount, key, reason)
# Rules that credit bonuses (a referral...) register here: (every customer's facts, today, playbook) ->
# customer id -> credits. engine.fill_bonuses asks them all once per evaluation, before any balance.
CREDIT_SOURCES: list[Callable[[Sequence, date, Playbook], Mapping[str, Sequence[Credit]]]] = []


def extra_credits(facts: Sequence, today: date, playbook: Playbook) -> dict[str, list[Credit]]:
    """Every registered source's credits, by customer id."""
    out: dict[str, list[Credit]] = defaultdict(list)
    for source in CREDIT_SOURCES:
        for cid, credits in source(facts, today, playbook).items():
            out[cid].extend(credits)
    return dict(out)


def cents(value: float) -> int:
    """A non-negative amount in kopecks, half up ("0.005" -> 1; float noise like 1.005 * 100 =
    100.49999999999999 is read as the 100.5 it stands for)."""
    return math.floor(value * 100 + 0.5 + 1e-7)


def _share(c: int, hundredths: int) -> int:
    """`hundredths` / 100 percent of `c` kopecks, half up, in integers."""
    return (c * hundredths + 5000) // 10000


def _money(c: int) -> float:
    return round(c / 100, 2)


def parse_paid(text: object) -> float:
    """A deal field's value as a number ("150", "150,5", "150.50 RUB"); empty or unreadable: 0."""
    raw = str(text or "").replace("\u00a0", "").replace(" ", "").split("|")[0]
    raw = "".join(ch for ch in raw if ch.isdigit() or ch in ".,-")
    if raw.count(",") == 1 and "." not in raw:
        raw = raw.replace(",", ".")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 0.0


def tier_rates(playbook: Playbook) -> tuple[str, list[tuple[float, int]]]:
    """("purchases"|"spend", [(threshold, cashback in hundredths of a percent)] lowest tier first)."""
    tiers = playbook.segments.tiers
    attr = "min_purchases" if tiers.by == "purchases" else "min_spend"
    return tiers.by, [(float(getattr(t, attr)), round(t.cashback_percent * 100)) for t in tiers.tiers]


def _rate(metric: float, rates: list[tuple[float, int]]) -> int:
    pct = 0
    for threshold, percent in rates:  # as assign_tier: the last tier whose threshold is reached
        if threshold <= metric:
            pct = percent
    return pct


def compute(customer_id: str, purchases: Iterable[tuple[str, date, float | None, float | None]], today: date,
            playbook: Playbook, extra_credits: Sequence[Credit] = (), *, explain: bool = True) -> BonusBalance:
    """The balance as of `today` from (purchase id, day, amount, bonuses paid) rows in the playbook's
    currency (amount None: no rate, no accrual), in (day, id) order, counted purchases only.

    Returns the balance, the next expiry day and amount, and (with `explain`) every entry.
    """
    if not playbook.bonuses_on:
        return EMPTY
    cfg = playbook.bonuses
    life = timedelta(days=cfg.bonus_expiry_days) if cfg.bonus_expiry_days else None
    by, rates = tier_rates(playbook)
    cap = round(cfg.max_pay_with_bonus_percent * 100)
    # [expires or None, kopecks left, key]; every lot lives as long, so oldest first is also soonest to burn
    lots: list[list] = []
    entries: list[BonusEntry] = []

    def burn(until: date) -> None:
        while lots and lots[0][0] is not None and lots[0][0] <= until:
            lot = lots.pop(0)
            if explain:
                entries.append(BonusEntry(lot[0], "expiry", -_money(lot[1]), lot[2], "expired"))

    def add(day: date, amount_c: int, key: str, kind: str, reason: str) -> None:
        expires = day + life if life else None
        if explain:
            entries.append(BonusEntry(day, kind, _money(amount_c), key, reason, expires))
        lots.append([expires, amount_c, key])

    events: list[tuple[date, int, int, tuple]] = []
    seen: set[str] = set()
    for n, (pid, day, amount, paid) in enumerate(purchases):
        if day <= today and (not pid or pid not in seen):
            seen.add(pid)
            events.append((day, 0, n, (pid, amount, paid)))
    for n, (day, amount, key, reason) in enumerate(extra_credits):
        if day <= today and key not in seen and amount > 0:
            seen.add(key)
            events.append((day, 1, n, (key, amount, reason)))
    if extra_credits:
        events.sort(key=lambda e: e[:3])
    count, spend = 0, 0.0
    for day, kind, _n, data in events:
        burn(day)
        if kind == 1:
            key, amount, reason = data
            add(day, cents(amount), key, "credit", reason)
            continue
        pid, amount, paid = data
        count += 1
        spend += amount or 0.0
        if amount is None:
            continue
        amount_c = cents(amount)
        redeemed = 0
        if paid and paid > 0:
            wanted = cents(paid)
            redeemed = min(wanted, _share(amount_c, cap), sum(lot[1] for lot in lots))
            left = redeemed
            while left:  # the oldest first
                take = min(left, lots[0][1])
                lots[0][1] -= take
                left -= take
                if not lots[0][1]:
                    lots.pop(0)
            if redeemed and explain:
                note = pid if redeemed == wanted else f"{pid}: {_money(wanted)} asked, {_money(redeemed)} allowed"
                entries.append(BonusEntry(day, "redemption", -_money(redeemed),
                                          action_key(customer_id, RULE, pid, "redemption"), note))
        pct = _rate(count if by == "purchases" else spend, rates)
        accrued = _share(amount_c - redeemed, pct)
        if accrued > 0:
            add(day, accrued, action_key(customer_id, RULE, pid, "accrual") if explain else pid, "accrual",
                f"{pid}: {pct / 100:g}%" if explain else "")
    burn(today)
    balance = sum(lot[1] for lot in lots)
    nxt = lots[0][0] if lots else None
    expiring = sum(lot[1] for lot in lots if lot[0] == nxt) if nxt else 0
    return BonusBalance(_money(balance), nxt, _money(expiring), tuple(entries))


def of_facts(facts, today: date, playbook: Playbook, extra_credits: Sequence[Credit] = (), *,
             explain: bool = False) -> BonusBalance:
    """The balance of one customer's facts (playbooks.facts.CustomerFacts); the entries only with
    `explain` (an evaluation needs the figures, an explanation of one customer the entries)."""
    if not playbook.bonuses_on:
        return EMPTY
    return compute(facts.customer.id, rows(facts.purchases, facts.amounts, playbook), today, playbook, extra_credits,
                   explain=explain)


def rows(purchases, amounts, playbook: Playbook):
    """(id, day, amount, paid) of counted purchases; paid converted like the amount."""
    name = playbook.bonuses.paid_field
    for p, amount in zip(purchases, amounts, strict=True):
        paid = parse_paid(p.fields.get(name)) if p.fields else 0.0
        if paid and amount is not None and p.amount:
            paid = paid * amount / p.amount  # the deal's currency -> the playbook's, at the amount's rate
        yield p.id, p.date, amount, paid
