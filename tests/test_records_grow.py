"""Records can grow: a field added to Purchase or LineItem reaches the plan, or a test names the
place that would drop it. Nothing rebuilds a record from positional arguments and loses a field."""

from __future__ import annotations

import dataclasses
from datetime import date

from connector.bitrix import _with_categories
from connector.model import LineItem, Product, Purchase
from connector.snapshot import Decoder, purchase_to_json


@dataclasses.dataclass(frozen=True, slots=True)
class GrownItem(LineItem):
    unit: str = "pcs"  # a field a later version adds


@dataclasses.dataclass(frozen=True, slots=True)
class GrownPurchase(Purchase):
    channel: str = "web"  # a field a later version adds


def test_the_bitrix_catalogue_step_keeps_every_field_of_a_purchase():
    """Bitrix24 line items get their categories from the catalogue after the rows are read; the
    purchase and its items keep every other field, however many the records grow to."""
    item = GrownItem("7", "Coffee beans 1 kg", 2.0, 990.0, None, unit="kg")
    purchase = GrownPurchase("D1", "C1", date(2026, 5, 4), 1980.0, "RUB", (item,), "5", "Order 1", channel="shop")
    done = _with_categories(purchase, {"7": Product("7", "Coffee beans 1 kg", category="Coffee")})
    assert done == dataclasses.replace(purchase, items=(dataclasses.replace(item, category="Coffee"),))
    assert done.channel == "shop" and done.items[0].unit == "kg"


def every_field_set(cls, **given):
    """An instance whose every field differs from its default (so a dropped field shows)."""
    values = {"str": "x", "str | None": "y", "float": 2.5, "date": date(2026, 5, 4)}
    return cls(**{f.name: given.get(f.name, values.get(str(f.type), f"{f.name}!")) for f in dataclasses.fields(cls)})


def test_the_snapshot_stores_every_field_of_a_purchase():
    """A field added to Purchase or LineItem fails here until the snapshot stores and reads it."""
    item = every_field_set(LineItem)
    purchase = every_field_set(Purchase, items=(item,), fields={"bonus_paid": "30"})
    assert Decoder().purchase(purchase_to_json(purchase)) == purchase
