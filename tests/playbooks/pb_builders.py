"""Builders shared by the playbook tests: customers from compact data, and the test playbook."""

from __future__ import annotations

from datetime import date
from typing import Any

from connector.model import Customer, LineItem, Product, Purchase
from playbooks import load_playbook
from playbooks.schema import Playbook

# Guards that depend on hashing or the calendar are off unless a test turns them on.
TEST_BASE: dict[str, Any] = {
    "guards": {"holdout": {"enabled": False}, "quiet": {"weekdays": [], "dates": []}},
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def playbook(overrides: dict | None = None, *, lang: str = "ru") -> Playbook:
    return load_playbook(lang=lang, overrides=merge(TEST_BASE, overrides or {}))


def d(text: str | date | None) -> date | None:
    if text is None or isinstance(text, date):
        return text
    return date.fromisoformat(text)


def purchase(cid: str, pid: str, day: str | date, amount: float = 1000.0, *, currency: str = "RUB",
             items: list[dict] | None = None, manager_id: str | None = None,
             fields: dict | None = None, nps: int | None = None, referral_code: str = "",
             promo: str = "") -> Purchase:
    return Purchase(id=pid, customer_id=cid, date=d(day), amount=float(amount), currency=currency,
                    fields={k: str(v) for k, v in fields.items()} if fields else None, nps=nps,
                    referral_code=referral_code,
                    items=tuple(LineItem(product_id=i.get("product_id"), name=i.get("name", i.get("product_id", "")),
                                         quantity=float(i.get("quantity", 1)), price=float(i.get("price", 0)),
                                         category=i.get("category"), discount=float(i.get("discount", 0)))
                                for i in (items or [])),
                    manager_id=manager_id, promo=promo)


def customer(data: dict) -> Customer:
    """A customer from a TOML/JSON table (as in the case files)."""
    cid = str(data["id"])
    return Customer(
        id=cid, name=data.get("name", f"Customer {cid}"),
        emails=tuple(data.get("emails", ["c@example.com"])), phones=tuple(data.get("phones", ["+70000000000"])),
        birthday=d(data.get("birthday")), manager_id=data.get("manager_id"),
        tags=frozenset(data.get("tags", [])), fields=dict(data.get("fields", {})),
        last_contact_activity=d(data.get("last_contact_activity")), created=d(data.get("created")),
        purchases=tuple(purchase(cid, str(p["id"]), p["date"], p.get("amount", 1000), currency=p.get("currency", "RUB"),
                                 items=p.get("items"), manager_id=p.get("manager_id"), fields=p.get("fields"),
                                 nps=p.get("nps"), referral_code=p.get("referral_code", ""),
                                 promo=p.get("promo", ""))
                        for p in data.get("purchases", [])),
    )


def catalogue(rows: list[dict] | None) -> list[Product] | None:
    """A case file's `[[catalogue]]` products (id, name, category, price, cycle_days, term_days)."""
    if rows is None:
        return None
    return [Product(str(p["id"]), p.get("name", str(p["id"])), p.get("category"), price=p.get("price"),
                    cycle_days=p.get("cycle_days"), term_days=p.get("term_days")) for p in rows]


def simple(cid: str, *days: str, amount: float = 1000.0, **kw: Any) -> Customer:
    """A customer with one purchase per date, ids `<cid>-1`, `<cid>-2`, ..."""
    return customer({"id": cid, **kw, "purchases": [{"id": f"{cid}-{i}", "date": day, "amount": amount}
                                                    for i, day in enumerate(days, start=1)]})


def synthetic_shop(customers: int, seed: int, today: date) -> tuple[list[Customer], list[Product]]:
    """The demo's synthetic shop (emulators.shop) as customers with their won deals, and
    its catalogue, whose `cycle_days` marks the consumables."""
    from emulators.shop import generate_shop, referral_code_of

    shop = generate_shop(customers, seed, today)
    catalogue = [Product(str(p.id), p.name, p.category, p.price, p.currency, p.cycle_days) for p in shop.products]
    purchases: dict[int, list[Purchase]] = {}
    for deal in shop.won_deals():
        items = tuple(LineItem(str(ln.product_id), shop.product(ln.product_id).name, ln.quantity, ln.price)
                      for ln in deal.lines)
        purchases.setdefault(deal.customer_id, []).append(
            Purchase(str(deal.id), str(deal.customer_id), deal.closed.date(), deal.amount, deal.currency, items,
                     nps=deal.nps, referral_code=referral_code_of(deal.referred_by) if deal.referred_by else ""))
    people = [Customer(id=str(c.id), name=c.name, emails=c.emails, phones=c.phones, birthday=c.birthday,
                       purchases=tuple(purchases.get(c.id, ()))) for c in shop.customers]
    return people, catalogue
