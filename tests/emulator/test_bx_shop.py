"""The synthetic shop: deterministic, relative to today, with the promised mix."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from emulators.shop import RHYTHMS, generate_shop

TODAY = date(2026, 6, 15)


def test_same_seed_gives_the_same_shop():
    a, b = generate_shop(200, 3, TODAY), generate_shop(200, 3, TODAY)
    assert a.customers == b.customers
    assert a.deals == b.deals
    assert a.products == b.products and a.managers == b.managers


def test_another_seed_gives_another_shop():
    a, b = generate_shop(200, 3, TODAY), generate_shop(200, 4, TODAY)
    assert [c.name for c in a.customers] != [c.name for c in b.customers]
    assert len(a.deals) != len(b.deals) or a.deals != b.deals


def test_dates_follow_today():
    a = generate_shop(100, 3, TODAY)
    b = generate_shop(100, 3, TODAY + timedelta(days=10))
    assert b.history_start == a.history_start + timedelta(days=10)
    assert 730 <= (TODAY - a.history_start).days <= 1095
    for shop, today in ((a, TODAY), (b, TODAY + timedelta(days=10))):
        assert max(d.closed.date() for d in shop.deals if d.closed) <= today
        assert min(d.created.date() for d in shop.deals) >= shop.history_start - timedelta(days=90)

    def closes(shop):  # seasonal customers follow the calendar, the others shift with today
        return sorted((d.customer_id, d.closed) for d in shop.deals
                      if d.closed and shop.customer(d.customer_id).rhythm != "seasonal")

    assert closes(b) == [(c, t + timedelta(days=10)) for c, t in closes(a)]


def test_rhythm_mix_is_realistic():
    shop = generate_shop(2000, 11, TODAY)
    share = {k: v / 2000 for k, v in shop.rhythm_counts().items()}
    assert set(share) == set(RHYTHMS)
    assert 0.30 <= share["one_off"] <= 0.40
    for rhythm in ("regular", "seasonal", "consumable", "churned", "vip"):
        assert share[rhythm] >= 0.05, rhythm
    won_by = Counter(d.customer_id for d in shop.won_deals())
    one_off = [c for c in shop.customers if c.rhythm == "one_off"]
    assert all(won_by[c.id] == 1 for c in one_off)
    churned = [c for c in shop.customers if c.rhythm == "churned"]
    last = {c.id: max(d.closed.date() for d in shop.won_deals() if d.customer_id == c.id) for c in churned}
    assert all((TODAY - last[c.id]).days >= 150 for c in churned)
    vip = [c for c in shop.customers if c.rhythm == "vip"]
    assert sum(won_by[c.id] for c in vip) / len(vip) > sum(won_by.values()) / len(shop.customers)


def test_consumable_customers_buy_on_the_product_cycle():
    shop = generate_shop(1500, 5, TODAY)
    checked = 0
    for c in shop.customers:
        if c.rhythm != "consumable":
            continue
        days = sorted(d.closed.date() for d in shop.won_deals() if d.customer_id == c.id)
        cycle = shop.product(c.cycle_product_id).cycle_days
        gaps = [(b - a).days for a, b in zip(days, days[1:], strict=False)]
        if len(gaps) >= 3:
            assert 0.7 * cycle <= sorted(gaps)[len(gaps) // 2] <= 2.5 * cycle
            checked += 1
    assert checked > 10


def test_catalogue_people_and_deals_have_what_the_playbooks_need():
    shop = generate_shop(2000, 9, TODAY)
    assert 5 <= len(shop.managers) <= 8 and sum(not m.active for m in shop.managers) == 1
    assert 30 <= len(shop.products) <= 60 and len(shop.categories) >= 3
    assert {p.cycle_days for p in shop.products} >= {30, 90, None}
    assert all(p.currency == "RUB" for p in shop.products)
    companies = [c for c in shop.customers if c.kind == "company"]
    assert 0.02 <= len(companies) / 2000 <= 0.09 and all(c.contacts for c in companies)
    assert any(c.no_marketing for c in shop.customers)
    assert any(not c.emails and not c.phones for c in shop.customers)
    assert any(c.emails and not c.phones for c in shop.customers)
    assert any(c.birthday is None for c in shop.customers if c.kind == "person")
    statuses = Counter(d.status for d in shop.deals)
    assert statuses["won"] and statuses["lost"] and statuses["open"]
    won = shop.won_deals()
    assert any(not d.lines for d in won) and {"USD", "EUR"} <= {d.currency for d in won}
    assert all(d.closed is None for d in shop.deals if d.status == "open")
    assert [d.id for d in shop.deals] == list(range(1, len(shop.deals) + 1))
    assert all(a.created <= b.created for a, b in zip(shop.deals, shop.deals[1:], strict=False))
    for d in won:
        if d.lines:
            assert abs(d.amount - sum(ln.quantity * ln.price for ln in d.lines)) < 0.01
