"""How the local snapshot stores customers and purchases (JSON text per row), and reads them back.

Reading shares what repeats: a million purchases hold a few thousand distinct line items, days,
names and amounts, so equal immutable values become one object (`Decoder`) and the history of a
big portal fits evaluation's memory. Caches are capped: all-distinct values cost what they did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from types import MappingProxyType

from connector.model import Customer, LineItem, Purchase

SHARED_VALUES_CAP = 200_000  # distinct values remembered per read (the cache lives only while reading)


def purchase_to_json(p: Purchase) -> str:
    d = {"id": p.id, "customer_id": p.customer_id, "date": p.date.isoformat(), "amount": p.amount,
         "currency": p.currency,
         "items": [_line(i) for i in p.items],
         "manager_id": p.manager_id, "title": p.title, **({"promo": p.promo} if p.promo else {})}
    if p.fields:  # deal fields (the bonuses paid on it...): only deals that hold some carry the key
        d["fields"] = dict(p.fields)
    if p.nps is not None:  # written only when set: a snapshot of a shop without them stays as it was
        d["nps"] = p.nps
    if p.referral_code:
        d["referral_code"] = p.referral_code
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def _line(i: LineItem) -> dict:
    return {"product_id": i.product_id, "name": i.name, "quantity": i.quantity, "price": i.price,
            "category": i.category, **({"discount": i.discount} if i.discount else {})}


def lines_to_json(purchases: Iterable[Purchase]) -> list[tuple[str, int, str]]:
    """(purchase id, place, JSON text) of the purchases' line items; a repeated line is encoded once."""
    texts: dict[LineItem, str] = {}
    out = []
    for p in purchases:
        for place, i in enumerate(p.items):
            text = texts.get(i)
            if text is None:
                text = texts[i] = json.dumps(_line(i), ensure_ascii=False, separators=(",", ":"))
            out.append((p.id, place, text))
    return out


def customer_to_json(c: Customer) -> str:
    d = {
        "id": c.id, "name": c.name, "kind": c.kind, "emails": list(c.emails), "phones": list(c.phones),
        "birthday": c.birthday.isoformat() if c.birthday else None, "manager_id": c.manager_id,
        "tags": sorted(c.tags), "fields": dict(c.fields),
        "last_contact_activity": c.last_contact_activity.isoformat() if c.last_contact_activity else None,
        **({"created": c.created.isoformat()} if c.created else {}),
    }
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


class Decoder:
    """Snapshot rows -> records for one read of the snapshot, equal values shared.

    Number keys carry their type, so 1 and 1.0 (equal in Python) never stand in for each other.
    """

    def __init__(self, cap: int = SHARED_VALUES_CAP, *, lean: bool = False) -> None:
        self.cap = cap
        self.lean = lean  # drop a purchase's title when its line items already say what it was
        self.strings: dict[str, str] = {}
        self.values: dict = {}  # numbers, days, line items, items tuples, card fields: by a tagged key

    def share(self, value: str | None) -> str | None:
        if value is None:
            return None
        found = self.strings.get(value)
        if found is None:
            found = value
            if len(self.strings) < self.cap:
                self.strings[value] = value
        return found

    def _shared(self, key, make):
        found = self.values.get(key)
        if found is None:
            found = make()
            if len(self.values) < self.cap:
                self.values[key] = found
        return found

    def day(self, text: str | None) -> date | None:
        return self._shared(("d", text), lambda: date.fromisoformat(text)) if text else None

    def items(self, raw: list[dict]) -> tuple[LineItem, ...]:
        """A purchase's line items, each shared, and the tuple of them shared too (most repeat)."""
        if not raw:
            return ()
        items = tuple(self._item(i) for i in raw)
        return self._shared(("t", *items), lambda: items)

    def _item(self, i: dict) -> LineItem:
        pid, name, qty, price, category = i["product_id"], i["name"], i["quantity"], i["price"], i.get("category")
        off = i.get("discount", 0.0)
        return self._shared(("i", pid, name, type(qty), qty, type(price), price, category, off),
                            lambda: LineItem(self.share(pid), self.share(name), qty, price, self.share(category), off))

    def fields(self, values: dict) -> Mapping[str, str]:
        """Card fields, read-only and shared: most customers' fields are the same few values."""
        try:
            key = ("f", *sorted(values.items()))
            hash(key)
        except TypeError:  # an unhashable value (a list): this customer keeps its own copy
            return MappingProxyType(values)
        return self._shared(key, lambda: MappingProxyType(values))

    def purchase(self, text: str, customer_id: str | None = None) -> Purchase:
        """One purchase row; `customer_id` (the row's own, already read) is reused when it matches."""
        d = json.loads(text)
        amount = d["amount"]
        title = "" if self.lean and d["items"] else d["title"]
        return Purchase(
            d["id"], customer_id if customer_id == d["customer_id"] else d["customer_id"], self.day(d["date"]),
            self._shared(("a", type(amount), amount), lambda: amount), self.share(d["currency"]),
            self.items(d["items"]), self.share(d["manager_id"]), title,
            self.fields(d["fields"]) if d.get("fields") else None, d.get("nps"), d.get("referral_code") or "",
            self.share(d.get("promo", "")))

    def customer(self, text: str, purchases: tuple[Purchase, ...]) -> Customer:
        d = json.loads(text)
        share = self.share
        return Customer(
            id=d["id"], name=d["name"], kind=share(d["kind"]), emails=tuple(d["emails"]), phones=tuple(d["phones"]),
            birthday=self.day(d["birthday"]), manager_id=share(d["manager_id"]),
            tags=frozenset(share(t) for t in d["tags"]), fields=self.fields(d["fields"]),
            purchases=purchases, last_contact_activity=self.day(d["last_contact_activity"]),
            created=self.day(d.get("created")),
        )
