"""How the local snapshot stores customers and purchases (JSON text per row), and reads them back.

Reading shares what repeats: a million purchases hold a few thousand distinct line items, days,
names and amounts, so equal immutable values become one object (`Decoder`) and the history of a
big portal fits evaluation's memory. Caches are capped: all-distinct values cost what they did.
"""

from __future__ import annotations

import json
from datetime import date

from connector.model import Customer, LineItem, Purchase

SHARED_VALUES_CAP = 200_000  # distinct values remembered per read


def purchase_to_json(p: Purchase) -> str:
    d = {"id": p.id, "customer_id": p.customer_id, "date": p.date.isoformat(), "amount": p.amount,
         "currency": p.currency,
         "items": [{"product_id": i.product_id, "name": i.name, "quantity": i.quantity, "price": i.price,
                    "category": i.category} for i in p.items],
         "manager_id": p.manager_id, "title": p.title}
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def customer_to_json(c: Customer) -> str:
    d = {
        "id": c.id, "name": c.name, "kind": c.kind, "emails": list(c.emails), "phones": list(c.phones),
        "birthday": c.birthday.isoformat() if c.birthday else None, "manager_id": c.manager_id,
        "tags": sorted(c.tags), "fields": dict(c.fields),
        "last_contact_activity": c.last_contact_activity.isoformat() if c.last_contact_activity else None,
    }
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


class Decoder:
    """Snapshot rows -> records for one read of the snapshot, equal values shared.

    Keys carry the value's type, so 1 and 1.0 (equal in Python) never stand in for each other.
    """

    def __init__(self, cap: int = SHARED_VALUES_CAP) -> None:
        self.cap = cap
        self.values: dict = {}

    def share(self, value, kind: str = "s"):
        if value is None:
            return None
        key = (kind, type(value), value)
        found = self.values.get(key)
        if found is None:
            found = self._keep(key, value)
        return found

    def _keep(self, key, value):
        if len(self.values) < self.cap:
            self.values[key] = value
        return value

    def day(self, text: str | None) -> date | None:
        if not text:
            return None
        found = self.values.get(("d", text))
        return found if found is not None else self._keep(("d", text), date.fromisoformat(text))

    def item(self, i: dict) -> LineItem:
        pid, name, qty, price, category = i["product_id"], i["name"], i["quantity"], i["price"], i.get("category")
        key = ("i", pid, name, type(qty), qty, type(price), price, category)
        found = self.values.get(key)
        if found is None:
            found = self._keep(key, LineItem(self.share(pid), self.share(name), qty, price, self.share(category)))
        return found

    def purchase(self, text: str, customer_id: str | None = None) -> Purchase:
        """One purchase row; `customer_id` (the row's own, already read) is reused when it matches."""
        d = json.loads(text)
        items = tuple(self.item(i) for i in d["items"])
        return Purchase(
            id=d["id"], customer_id=customer_id if customer_id == d["customer_id"] else d["customer_id"],
            date=self.day(d["date"]), amount=self.share(d["amount"], "a"), currency=self.share(d["currency"]),
            items=self.share(items, "t") if items else (), manager_id=self.share(d["manager_id"]), title=d["title"])

    def customer(self, text: str, purchases: tuple[Purchase, ...]) -> Customer:
        d = json.loads(text)
        share = self.share
        return Customer(
            id=d["id"], name=d["name"], kind=share(d["kind"]), emails=tuple(d["emails"]), phones=tuple(d["phones"]),
            birthday=self.day(d["birthday"]), manager_id=share(d["manager_id"]),
            tags=frozenset(share(t) for t in d["tags"]),
            fields={share(k): share(v) if isinstance(v, str) else v for k, v in d["fields"].items()},
            purchases=purchases, last_contact_activity=self.day(d["last_contact_activity"]),
        )
