"""Every customer's bonus account on the columns (playbooks.columns), the same as playbooks.bonus.

Most customers never paid with bonuses and got no credit from another rule: their balance is the
cashback of their purchases still alive, summed as arrays. The others (and every customer of a
playbook with tiers by spend) go through playbooks.bonus.compute on their own columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from playbooks.bonus import BonusBalance, compute, tier_rates

NEVER = np.iinfo(np.int64).max


@dataclass
class BonusColumns:
    balance: np.ndarray  # kopecks
    next_expiry: np.ndarray  # date ordinal, NEVER when nothing burns
    expiring: np.ndarray  # kopecks
    slow: np.ndarray  # bool: computed one by one (payments, credits, tiers by spend)


def bonus_columns(s) -> BonusColumns:
    """The arrays for `s` (a columnar.Segmented whose columns carry `paid`), made once for the plan and the
    JSON (again if other rules' credits were set since)."""
    key = (id(s.bonus_credits), len(s.bonus_credits))
    made = getattr(s, "_bonus_columns", None)
    if made is not None and made[0] == key:
        return made[1]
    out = _bonus_columns(s)
    s._bonus_columns = (key, out)
    return out


def _bonus_columns(s) -> BonusColumns:
    cols, pb = s.cols, s.playbook
    n_cust = len(cols.ids)
    owner = cols.owner
    slow = np.zeros(n_cust, dtype=bool)
    if len(cols.paid):
        slow |= np.bincount(owner[cols.paid > 0], minlength=n_cust) > 0
    if s.bonus_credits:
        index = {cid: i for i, cid in enumerate(cols.ids)}
        slow[[index[c] for c in s.bonus_credits if c in index]] = True
    by, rates = tier_rates(pb)
    if by != "purchases":  # the running spend must be added as compute adds it: one by one
        slow[:] = True
    count = np.arange(len(owner)) - cols.start[owner] + 1  # the purchase's number in the customer's history
    pct = np.zeros(len(owner), dtype=np.int64)
    for threshold, hundredths in rates:  # as bonus._rate: the last tier reached wins
        pct = np.where(count >= threshold, hundredths, pct)
    known = ~np.isnan(cols.amount)
    amount_c = np.zeros(len(owner), dtype=np.int64)
    amount_c[known] = np.floor(cols.amount[known] * 100 + 0.5 + 1e-7).astype(np.int64)  # as bonus.cents
    accrued = (amount_c * pct + 5000) // 10000
    alive = accrued > 0
    life = pb.bonuses.bonus_expiry_days
    expires = cols.day + life
    if life:
        alive &= expires > s.today.toordinal()
    balance = np.zeros(n_cust, dtype=np.int64)
    np.add.at(balance, owner[alive], accrued[alive])
    nxt = np.full(n_cust, NEVER, dtype=np.int64)
    expiring = np.zeros(n_cust, dtype=np.int64)
    if life:
        np.minimum.at(nxt, owner[alive], expires[alive])
        first = alive & (expires == nxt[owner])
        np.add.at(expiring, owner[first], accrued[first])
    return BonusColumns(balance, nxt, expiring, slow)


def bonus_of(s, b: BonusColumns, i: int, cid: str) -> dict[str, object]:
    """Customer i's `bonus_*` keys of the analyze object."""
    if b.slow[i]:
        lo, hi = int(s.cols.start[i]), int(s.cols.start[i + 1])
        rows = ((f"#{j}", date.fromordinal(day), None if a != a else a, paid)
                for j, (day, a, paid) in enumerate(zip(s.cols.day[lo:hi].tolist(), s.cols.amount[lo:hi].tolist(),
                                                       s.cols.paid[lo:hi].tolist(), strict=True)))
        got = compute(cid, rows, s.today, s.playbook, s.bonus_credits.get(cid, ()), explain=False)
        return {"bonus_balance": got.balance,
                "bonus_expires": got.next_expiry.isoformat() if got.next_expiry else None,
                "bonus_expiring": got.expiring}
    nxt = int(b.next_expiry[i])
    return {"bonus_balance": round(int(b.balance[i]) / 100, 2),
            "bonus_expires": date.fromordinal(nxt).isoformat() if nxt != NEVER else None,
            "bonus_expiring": round(int(b.expiring[i]) / 100, 2)}


def balance_of(b: BonusColumns, i: int) -> BonusBalance:
    """Customer i's balance as bonus.compute(explain=False) gives it; for a customer not `slow` only."""
    nxt = int(b.next_expiry[i])
    return BonusBalance(round(int(b.balance[i]) / 100, 2), date.fromordinal(nxt) if nxt != NEVER else None,
                        round(int(b.expiring[i]) / 100, 2))
