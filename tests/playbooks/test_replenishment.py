"""Replenishment on the demo's synthetic shop: a repeat deal only for goods that are used up."""

from __future__ import annotations

from datetime import date

from pb_builders import playbook, synthetic_shop

from playbooks import evaluate

TODAY = date(2026, 6, 15)


def restocked(ev) -> list:
    return [a for a in ev.plan if a.rule == "replenishment"]


def test_demo_shop_restocks_only_what_its_catalogue_marks_as_consumable():
    customers, catalogue = synthetic_shop(300, 42, TODAY)
    consumable = {p.id for p in catalogue if p.cycle_days}
    deals = restocked(evaluate(customers, TODAY, playbook(), catalogue=catalogue, predict=False))
    assert deals, "the demo shop should still get repeat deals for its consumables"
    durable = [a.payload["products"][0]["name"] for a in deals if a.payload["products"][0]["product_id"] not in consumable]
    assert durable == []
    assert all("указан в карточке товара в каталоге CRM" in a.body for a in deals)


def test_without_a_catalogue_only_steady_re_buyers_give_a_cycle():
    customers, catalogue = synthetic_shop(1000, 42, TODAY)
    consumable = {p.id for p in catalogue if p.cycle_days}
    deals = restocked(evaluate(customers, TODAY, playbook(lang="en"), predict=False))
    assert deals, "steady re-buyers of consumables should still teach their cycles"
    durable = [a.payload["products"][0]["name"] for a in deals if a.payload["products"][0]["product_id"] not in consumable]
    assert durable == []
    for a in deals:
        assert a.payload["cycle_source"] == "learned" and a.payload["cycle_customers"] >= 5
        assert f"{a.payload['cycle_customers']} customers re-bought it every ~" in a.body
