"""The bonus account (playbooks.bonus) worked by hand: extra credits, currencies, the playbook's
[bonuses] section and its faults, and texts naming a balance the customer does not have."""

from __future__ import annotations

from datetime import date

import pytest
from pb_builders import customer, playbook

from connector.errors import PlaybookError
from playbooks import evaluate, load_playbook
from playbooks.bonus import compute

DAY = date(2026, 3, 1)


def test_an_extra_credit_is_added_once_per_key_and_burns_like_an_accrual():
    book = playbook()
    rows = [("p1", date(2025, 1, 10), 1000.0, 0.0)]  # bronze 2 %: 20, burns 2026-01-10
    credit = (date(2025, 3, 1), 500.0, "v1:c1:referral:f9:credit", "a friend bought")
    got = compute("c1", rows, date(2025, 12, 31), book, [credit, credit])  # the referral rule may list it twice
    assert (got.balance, got.next_expiry, got.expiring) == (520.0, date(2026, 1, 10), 20.0)
    assert [e.kind for e in got.entries].count("credit") == 1
    later = compute("c1", rows, date(2026, 2, 28), book, [credit])  # p1's 20 burned on 2026-01-10
    assert (later.balance, later.next_expiry, later.expiring) == (500.0, date(2026, 3, 1), 500.0)
    gone = compute("c1", rows, date(2026, 3, 1), book, [credit])  # the day it burns, it is gone
    assert gone.balance == 0.0 and gone.next_expiry is None


def test_a_credit_pays_a_later_purchase_and_the_cap_still_holds():
    book = playbook()
    rows = [("p1", date(2026, 1, 10), 1000.0, 0.0), ("p2", date(2026, 2, 10), 1000.0, 900.0)]
    got = compute("c1", rows, DAY, book, [(date(2026, 1, 20), 1000.0, "k1", "gift")])
    # before p2: 20 + 1000; p2 asks 900, the cap is 500; 500 in money earns 2 % = 10
    assert got.balance == 20 + 1000 - 500 + 10
    assert [(e.kind, e.amount) for e in got.entries if e.kind == "redemption"] == [("redemption", -500.0)]


def test_a_deal_in_another_currency_pays_and_accrues_at_the_playbook_rate():
    book = playbook({"rates": {"USD": 90.0}})
    c = customer({"id": "c1", "purchases": [
        {"id": "p1", "date": "2026-01-10", "amount": 100, "currency": "USD"},  # 9000 RUB: 180
        {"id": "p2", "date": "2026-02-10", "amount": 10, "currency": "USD", "fields": {"bonus_paid": "1"}},
        {"id": "p3", "date": "2026-02-11", "amount": 10, "currency": "GBP"}]})  # no GBP rate: nothing
    report = evaluate([c], DAY, book, predict=False).customers[0].to_json()
    # p2: 900 RUB, 90 RUB paid in bonuses, 810 in money earns 2 % = 16.20
    assert report["bonus_balance"] == 180 - 90 + 16.2


def test_without_cashback_there_is_no_account_and_a_text_naming_the_balance_is_held_back():
    book = playbook({"bonuses": {"enabled": False}, "rules": {"birthday": {
        "text": "{name}, на вашем счёте {bonus_balance}"}}})
    c = customer({"id": "c1", "birthday": "1990-03-03", "purchases": [{"id": "p1", "date": "2026-01-10"}]})
    ev = evaluate([c], DAY, book, predict=False)
    assert "bonus_balance" not in ev.customers[0].to_json()
    [greeting] = [a for a in ev.plan if a.rule == "birthday"]
    assert greeting.payload["missing"] == ["bonus_balance"]
    on = evaluate([c], DAY, playbook({"rules": {"birthday": {"text": "{name}, на вашем счёте {bonus_balance}"}}}),
                  predict=False)
    [greeting] = [a for a in on.plan if a.rule == "birthday"]
    assert greeting.payload["text"].endswith("на вашем счёте 20 RUB") and "missing" not in greeting.payload


@pytest.mark.parametrize(("text", "key", "line"), [
    ('extends = "default"\n\n[bonuses]\nmax_pay_with_bonus_percent = 150\n', "bonuses.max_pay_with_bonus_percent", 4),
    ('extends = "default"\n[bonuses]\nbonus_expiry_days = "year"\n', "bonuses.bonus_expiry_days", 3),
    ('extends = "default"\n[bonuses]\npaid_field = " "\n', "bonuses.paid_field", 3),
    ('extends = "default"\n[bonuses]\ncash_back = 3\n', "bonuses.cash_back", 3),
    ('extends = "default"\n[rules.bonus_expiry]\ndays_before = 2\nfire_within_days = 3\n',
     "rules.bonus_expiry.fire_within_days", 4),
])
def test_a_bad_bonus_setting_names_its_key_and_line(tmp_path, text, key, line):
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert info.value.key_path == key and info.value.line == line, str(info.value)


def test_a_bad_tier_cashback_names_the_tier(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[segments.tiers]\nby = "purchases"\n[[segments.tiers.tiers]]\nname = "a"\nmin_purchases = 1\n'
                    'cashback_percent = -3\n', encoding="utf-8")
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert info.value.key_path == "segments.tiers.tiers[0].cashback_percent" and info.value.line == 6


def test_a_rule_crediting_bonuses_reaches_the_balance_in_the_engine_and_the_columnar_path(monkeypatch):
    from playbooks import bonus
    from playbooks.columnar import reports
    from playbooks.columnar_plan import evaluate_columns

    def referral(facts, today, book):  # what the referral rule registers
        return {"c1": [(date(2026, 2, 1), 300.0, "v1:c1:referral:c2:credit", "c2 bought")]}

    monkeypatch.setattr(bonus, "CREDIT_SOURCES", [referral])
    people = [customer({"id": "c1", "purchases": [{"id": "p1", "date": "2026-01-10"}]}),
              customer({"id": "c2", "purchases": [{"id": "q1", "date": "2026-02-01"}]})]
    book = playbook()
    ref = {c.customer_id: c.to_json()["bonus_balance"] for c in evaluate(people, DAY, book, predict=False).customers}
    assert ref == {"c1": 20 + 300.0, "c2": 20.0}
    s, _segments, _metrics = evaluate_columns(people, DAY, book, predict=False)
    assert {r["customer_id"]: r["bonus_balance"] for r in reports(s)} == ref


def test_the_entries_explain_the_balance_one_movement_at_a_time():
    book = playbook()
    rows = [("p1", date(2025, 1, 10), 1000.0, 0.0), ("p2", date(2025, 6, 1), 1000.0, 0.0),
            ("p3", date(2025, 12, 1), 1000.0, 30.0)]
    got = compute("c1", rows, DAY, book)
    assert [(e.day.isoformat(), e.kind, e.amount) for e in got.entries] == [
        ("2025-01-10", "accrual", 20.0), ("2025-06-01", "accrual", 20.0), ("2025-12-01", "redemption", -30.0),
        ("2025-12-01", "accrual", 29.1)]
    assert got.entries[0].key == "v1:c1:bonus:p1:accrual" and got.entries[2].key == "v1:c1:bonus:p3:redemption"
    assert round(sum(e.amount for e in got.entries), 2) == got.balance == 39.1
    burnt = compute("c1", rows[:2], DAY, book)  # nothing paid: p1's 20 burn on 2026-01-10
    assert [(e.day.isoformat(), e.kind, e.amount) for e in burnt.entries][-1] == ("2026-01-10", "expiry", -20.0)
    assert compute("c1", rows, DAY, book, explain=False).entries == ()
