"""Rule details the case files cannot express: the CRM catalogue, learned suggestions in texts,
the registry, and docstrings in the house format."""

from __future__ import annotations

from datetime import date

from pb_builders import customer, playbook

from connector.model import Product
from playbooks import evaluate
from playbooks.rules import REGISTRY


def test_catalogue_cycle_days_drive_replenishment():
    c = customer({"id": "c1", "purchases": [{"id": "p1", "date": "2026-03-01", "amount": 900,
                                             "items": [{"product_id": "food", "name": "Корм", "quantity": 3,
                                                        "price": 300}]}]})
    catalogue = [Product(id="food", name="Корм 2 кг", price=320.0, cycle_days=10)]
    ev = evaluate([c], date(2026, 3, 24), playbook(), catalogue=catalogue)
    (action,) = [a for a in ev.plan if a.rule == "replenishment"]
    assert action.key == "v1:c1:replenishment:p1:remind:food"
    assert action.due == date(2026, 3, 24)  # run-out 03-31 (3 x 10 days), 7 days before
    assert action.payload["cycle_source"] == "catalogue"
    assert action.payload["products"] == [{"product_id": "food", "name": "Корм", "quantity": 3.0, "price": 300.0}]


def test_feedback_step_lists_learned_suggestions():
    buyers = [customer({"id": f"b{i}", "purchases": [{"id": "x", "date": "2025-10-01", "items": [
        {"product_id": "beans", "name": "Зёрна"}, {"product_id": "grinder", "name": "Кофемолка"}]}]})
        for i in range(3)]
    me = customer({"id": "me", "purchases": [{"id": "p1", "date": "2026-03-01",
                                              "items": [{"product_id": "beans", "name": "Зёрна"}]}]})
    ev = evaluate([*buyers, me], date(2026, 3, 8), playbook())
    (feedback,) = [a for a in ev.plan if a.key == "v1:me:calendar:p1:feedback"]
    assert feedback.body.endswith("предложить сопутствующее: Кофемолка")
    assert feedback.payload["channels"] == ["messenger", "email", "task"]  # a touch, no longer a business process


def test_cac_argument_overrides_playbook():
    c = customer({"id": "c1", "purchases": [{"id": "p1", "date": "2026-01-01", "amount": 3000}]})
    ev = evaluate([c], date(2026, 3, 1), playbook(), cac=1000.0)
    assert ev.metrics["cac"] == 1000.0 and ev.metrics["ltv_cac"] is not None


def test_every_rule_documents_itself():
    for kind, cls in REGISTRY.items():
        assert cls.kind == kind
        doc = cls.__doc__ or ""
        for section in ("When it fires:", "What it plans:", "Example:"):
            assert section in doc, f"{kind} docstring lacks {section}"


def test_customers_without_purchases_are_prospects_without_actions():
    ev = evaluate([customer({"id": "p", "birthday": "1990-03-02"})], date(2026, 3, 1), playbook())
    assert ev.plan == []
    assert ev.customers[0].lifecycle == "prospect"
    assert ev.customers[0].segment == "no_purchases"
    assert ev.metrics["customers"] == 0 and ev.metrics["prospects"] == 1
