"""Referral codes and the referrals they brought: pure functions of the customers and a secret.

A code is the HMAC-SHA256 of the customer id under the shop's secret (settings, never the
playbook), cut to 8 base32 letters: the same customer always gets the same code, and nobody can
make a valid code for someone else without the secret. A referral is a new customer whose first
purchase carries a code (a deal/lead field) that belongs to another customer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from connector.model import Customer, Purchase, action_key

CODE_LETTERS = 8
PROMOTER, DETRACTOR = 9, 6  # answers 9-10 promote (they get the referral offer), 0-6 detract, 7-8 are passive


def referral_code(customer_id: str, secret: str) -> str:
    """The customer's personal code, e.g. "R-K3ZQ7M2A"; "" without a secret (no codes then)."""
    if not secret:
        return ""
    digest = hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).digest()
    return "R-" + base64.b32encode(digest).decode()[:CODE_LETTERS]


def normal(code: str) -> str:
    """A code as a customer may type it: case and spaces do not matter, the "R-" may be left out."""
    text = "".join(code.split()).upper()
    return text if text.startswith("R-") else f"R-{text}" if text else ""


@dataclass(frozen=True)
class Referral:
    """A new customer's first purchase that carried `referrer_id`'s code."""

    referrer_id: str
    customer_id: str
    purchase: Purchase


def first_purchase(c: Customer, today: date) -> Purchase | None:
    counted = [p for p in c.purchases if p.date <= today and p.amount > 0]
    return min(counted, key=lambda p: (p.date, p.id)) if counted else None


def find_referrals(customers: Iterable[Customer], secret: str, today: date) -> list[Referral]:
    """Every referral up to `today`, in (date, customer id) order; a customer's own code is no referral."""
    if not secret:
        return []
    people = list(customers)
    codes = {referral_code(c.id, secret): c.id for c in people}
    out = []
    for c in people:
        first = first_purchase(c, today)
        if first is None or not first.referral_code:
            continue
        referrer = codes.get(normal(first.referral_code))
        if referrer is not None and referrer != c.id:
            out.append(Referral(referrer, c.id, first))
    return sorted(out, key=lambda r: (r.purchase.date, r.customer_id))


def referral_credits(referrals: Iterable[Referral], bonus: float,
                     reason: str = "referral") -> dict[str, list[tuple[date, float, str, str]]]:
    """referrer id -> the bonus credits its referrals earned, as the bonus ledger's `extra_credits`
    take them: (date, amount, key, reason); the key `v1:<referrer>:referral:<new customer>:credit` names
    the new customer, so a credit is made once."""
    out: dict[str, list[tuple[date, float, str, str]]] = {}
    if bonus <= 0:
        return out
    for r in referrals:
        out.setdefault(r.referrer_id, []).append(
            (r.purchase.date, float(bonus), action_key(r.referrer_id, "referral", r.customer_id, "credit"),
             f"{reason}: {r.customer_id}"))
    return out


def referral_metrics(referrals: Iterable[Referral], revenue: Mapping[str, float]) -> dict[str, object]:
    """`referrals` (new customers a code brought) and `referral_revenue` (everything they bought
    since, from `revenue`: customer id -> spend in the playbook currency)."""
    items = list(referrals)
    total = sum(revenue.get(r.customer_id, 0.0) for r in items)
    return {"referrals": len(items), "referral_revenue": round(total, 2)}


def gives_code(tier_index: int, purchases: Iterable[Purchase], playbook) -> bool:
    """Who holds a code: a customer at or above the referral rule's `min_tier`, or a promoter
    (an answer of 9-10: the nps rule offers them the referral programme)."""
    cfg = playbook.rule("referral")
    if cfg is None:
        return False
    names = [t.name for t in playbook.segments.tiers.tiers]
    if cfg.min_tier in names and tier_index >= names.index(cfg.min_tier):
        return True
    return any(p.nps is not None and p.nps >= PROMOTER for p in purchases)


def assign_codes(facts: Iterable, playbook, secret: str) -> None:
    """Give each customer's facts its code (when it holds one) and the shop the referral bonus."""
    cfg = playbook.rule("referral")
    if cfg is None or not secret:
        return
    names = [t.name for t in playbook.segments.tiers.tiers]
    for f in facts:
        f.shop.referral_bonus = cfg.bonus
        f.shop.referral_tier_index = names.index(cfg.min_tier) if cfg.min_tier in names else len(names)
        if gives_code(f.tier_index, f.purchases, playbook):
            f.referral_code = referral_code(f.customer.id, secret)


def referral_bonus_credits(facts, today: date, playbook) -> dict[str, list]:
    """The referral rule's credits (playbooks.referral.referral_credits) for the bonus ledger: `bonus` to
    the referrer on the day of each friend's first purchase with the code."""
    cfg = playbook.rule("referral")
    if cfg is None or not facts:
        return {}
    found = [r for refs in facts[0].shop.referrals.values() for r in refs if r.purchase.date <= today]
    return referral_credits(sorted(found, key=lambda r: (r.purchase.date, r.customer_id)), cfg.bonus,
                            "referral" if playbook.lang == "en" else "за друга")
