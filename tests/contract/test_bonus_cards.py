"""Bonus balances on the cards of every CRM equal a hand computation from the deals it holds.

The shop's loyalty program records bonuses paid on some won deals (Bitrix24 UF_CRM_RS_BONUS_PAID,
amoCRM RS_BONUS_PAID); after `install` and a sync, each contact's card carries the balance the
bundled playbook's rules give (tiers' cashback 2/3/5 % from the 1st/3rd/6th purchase, each accrual
burning after 365 days, at most 50 % of a deal paid with bonuses), and a rerun writes no card.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from tests.conftest import run_cli

CASHBACK = ((1, 2), (3, 3), (6, 5))  # (from the n-th purchase, percent) in the bundled playbook
LIFE = timedelta(days=365)


def kop(x) -> int:
    return int((Decimal(str(x)) * 100).quantize(Decimal(1), ROUND_HALF_UP))


def hand_balance(purchases, paid, today) -> tuple[int, dict]:
    """Kopecks held on `today`, and what happened (for the coverage asserts)."""
    lots: list[list] = []  # [burns on, kopecks]
    seen = {"redeemed": 0, "burned": 0, "tiers": set()}
    for n, (day, pid, amount) in enumerate(sorted(purchases), start=1):
        seen["burned"] += sum(k for burns, k in lots if burns <= day)
        lots = [lot for lot in lots if lot[0] > day]
        wanted = kop(paid.get(pid, 0))
        pay = min(wanted, int((Decimal(kop(amount)) / 2).quantize(Decimal(1), ROUND_HALF_UP)), sum(k for _, k in lots))
        seen["redeemed"] += pay
        left = pay
        for lot in lots:  # the oldest first
            take = min(left, lot[1])
            lot[1] -= take
            left -= take
        percent = [p for first, p in CASHBACK if n >= first][-1]
        seen["tiers"].add(percent)
        earned = int((Decimal(kop(amount) - pay) * percent / 100).quantize(Decimal(1), ROUND_HALF_UP))
        lots.append([day + LIFE, earned])
    seen["burned"] += sum(k for burns, k in lots if burns <= today)
    return sum(k for burns, k in lots if burns > today), seen


def test_card_balances_equal_a_hand_computation_and_a_rerun_writes_no_card(crm, tmp_path):
    env = crm.cli_env(tmp_path)
    assert run_cli(["install"], env).returncode == 0
    first = run_cli(["sync", "--format", "json"], env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    paid = crm.bonus_paid()
    by_customer = defaultdict(list)
    for pid, p in crm.won_purchases().items():
        if p.day <= crm.today and p.amount > 0:
            by_customer[p.customer_id].append((p.day, pid, p.currency, p.amount))
    chosen = {cid: [(day, pid, amount) for day, pid, _cur, amount in rows]
              for cid, rows in by_customer.items() if all(cur == "RUB" for _d, _p, cur, _a in rows)}
    assert len(chosen) > 50
    cards = crm.card_bonus(chosen)
    shown = {c["crm_id"]: c for c in out["customers"]}
    covered = {"redeemed": 0, "burned": 0, "gold": 0}
    for cid, purchases in chosen.items():
        want, seen = hand_balance(purchases, paid, crm.today)
        assert kop(cards[cid]) == want, (cid, cards[cid], want / 100)
        assert kop(shown[cid]["bonus_balance"]) == want, cid
        covered["redeemed"] += seen["redeemed"] > 0
        covered["burned"] += seen["burned"] > 0
        covered["gold"] += 5 in seen["tiers"]
    assert min(covered.values()) > 0, covered  # payments, expiry and a tier change are all exercised
    writes = crm.card_writes()
    again = run_cli(["sync", "--format", "json"], env)
    assert again.returncode == 0, again.stderr
    assert crm.card_writes() == writes
    assert json.loads(again.stdout)["stats"]["written"] == 0
