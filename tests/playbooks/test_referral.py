"""Referral codes and referrals, worked through: who holds a code, which first purchase counts, what the
referrer is thanked and credited, and the counts in the metrics (both evaluation paths)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date

from pb_builders import customer, playbook
from test_columnar_equivalence import assert_same

from playbooks import evaluate
from playbooks.referral import find_referrals, referral_code, referral_credits

SECRET = "shop-secret-0123456789"
TODAY = date(2026, 4, 12)


def expected_code(customer_id: str, secret: str = SECRET) -> str:
    """The code as the README defines it, computed here on its own."""
    mac = hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).digest()
    return "R-" + base64.b32encode(mac).decode()[:8]


def shop(code_for_new: str) -> list:
    silver = customer({"id": "c1", "purchases": [{"id": f"p{i}", "date": f"2026-0{i}-05", "amount": 2000}
                                                 for i in (1, 2, 3)]})
    bronze = customer({"id": "c2", "purchases": [{"id": "q1", "date": "2026-01-10", "amount": 1000}]})
    new = customer({"id": "c9", "purchases": [
        {"id": "n1", "date": "2026-04-10", "amount": 3000, "referral_code": code_for_new},
        {"id": "n2", "date": "2026-04-11", "amount": 500}]})
    return [silver, bronze, new]


def book():
    return playbook({"rules": {"calendar": {"enabled": False}, "reactivation": {"enabled": False}}})


def test_a_code_is_the_hmac_of_the_customer_id_stable_and_secret_bound():
    assert referral_code("c1", SECRET) == expected_code("c1")
    assert referral_code("c1", SECRET) == referral_code("c1", SECRET)
    assert referral_code("c1", SECRET) != referral_code("c2", SECRET)
    assert referral_code("c1", "another-secret-0123") != referral_code("c1", SECRET)
    assert referral_code("c1", "") == ""


def test_silver_customer_holds_the_code_and_is_thanked_for_a_friends_first_purchase():
    code = expected_code("c1")
    ev = evaluate(shop(code.lower().replace("r-", "")), TODAY, book(), secret=SECRET, predict=False)
    reports = {r.customer_id: r.to_json() for r in ev.customers}
    assert reports["c1"]["referral_code"] == code
    assert "referral_code" not in reports["c2"]  # bronze: below min_tier silver
    thanks = [a for a in ev.plan if a.rule == "referral" and a.step == "thanks"]
    assert [(a.key, a.due.isoformat()) for a in thanks] == [("v1:c1:referral:c9:thanks", "2026-04-10")]
    assert "500 RUB" in thanks[0].payload["text"]
    assert ev.metrics["referrals"] == 1
    assert ev.metrics["referral_revenue"] == 3500.0  # everything the friend bought since
    assert_same(shop(code), TODAY, book(), secret=SECRET, predict=False)


def test_referral_credits_go_to_the_referrer_once_per_friend():
    customers = shop(expected_code("c1"))
    credits = referral_credits(find_referrals(customers, SECRET, TODAY), 500.0)
    assert credits == {"c1": [(date(2026, 4, 10), 500.0, "v1:c1:referral:c9:credit", "referral: c9")]}


def test_the_referrers_bonus_balance_grows_by_the_bonus_on_both_evaluation_paths():
    without = {r.customer_id: r.to_json() for r in evaluate(shop(""), TODAY, book(), secret=SECRET,
                                                            predict=False).customers}
    ref = assert_same(shop(expected_code("c1")), TODAY, book(), secret=SECRET, predict=False)
    credited = {r.customer_id: r.to_json() for r in ref.customers}
    assert credited["c1"]["bonus_balance"] == without["c1"]["bonus_balance"] + 500
    assert credited["c2"]["bonus_balance"] == without["c2"]["bonus_balance"]


def test_a_forged_or_own_code_or_a_code_on_a_later_purchase_is_no_referral():
    forged = shop("R-AAAAAAAA")
    own = shop(expected_code("c9"))
    later = shop("")
    later[2] = customer({"id": "c9", "purchases": [
        {"id": "n1", "date": "2026-04-10", "amount": 3000},
        {"id": "n2", "date": "2026-04-11", "amount": 500, "referral_code": expected_code("c1")}]})
    for customers in (forged, own, later):
        assert find_referrals(customers, SECRET, TODAY) == []
        ev = evaluate(customers, TODAY, book(), secret=SECRET, predict=False)
        assert ev.metrics["referrals"] == 0
        assert not [a for a in ev.plan if a.step == "thanks"]


def test_without_the_secret_nobody_holds_a_code_and_nothing_is_counted():
    ev = evaluate(shop(expected_code("c1")), TODAY, book(), predict=False)
    assert not [a for a in ev.plan if a.rule == "referral"]
    assert "referrals" not in ev.metrics
    assert all("referral_code" not in json.dumps(r.to_json()) for r in ev.customers)


def test_a_promoter_gets_the_referral_offer_with_a_code_and_none_without_the_programme():
    promoter = customer({"id": "c5", "purchases": [{"id": "x1", "date": "2026-04-01", "amount": 900, "nps": 10}]})
    with_code = evaluate([promoter], TODAY, book(), secret=SECRET, predict=False)
    offer = [a for a in with_code.plan if a.key == "v1:c5:nps:x1:promoter"]
    assert offer and expected_code("c5") in offer[0].payload["text"] and "500 RUB" in offer[0].payload["text"]
    without = evaluate([promoter], TODAY, book(), predict=False)  # no secret: no code to offer
    assert not [a for a in without.plan if a.rule == "nps"]
