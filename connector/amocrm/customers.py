"""amoCRM Customers mode ("Покупатели"): purchases kept as customers' transactions, and our predicted
next purchase written to the customer's `next_date`.

An account with Customers on (`customers_mode` periodicity or segments in `/api/v4/account`) records
repeat purchases as transactions of a customer, not as won leads. The pull reads every customer once
(`with=contacts`, 250 a page: whose contact or company it is, and its `next_date`), then the
transactions, 250 a page (Doc: amocrm.ru/developers/content/crm_platform/customers-api). Transactions
are never edited, only added or deleted, so an incremental pull asks for those created since the cursor
(`filter[created_at][from]`; rows older are dropped here should the account ignore the filter); a
deleted transaction leaves the snapshot on the next `--full` pull.

A card action carrying the predicted next purchase (`next_purchase`, connector.fields) sets the linked
customers' `next_date` (midnight of that day in the account's zone) with one `PATCH /api/v4/customers`
per 50, and only where the customer holds another date: a rerun or an unchanged prediction writes
nothing. The card's bonus balance (playbooks.bonus) becomes the customers' bonus points the same way,
when it changed (write_bonus_points).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from connector.amocrm import mapping
from connector.amocrm.batches import send_rounds
from connector.amocrm.client import AmoClient
from connector.amocrm.pull import pages
from connector.crm import CrmRef, WriteOutcome
from connector.errors import CrmError, CrmRecordError
from connector.model import Action, Purchase

log = logging.getLogger(__name__)

ON_MODES = ("periodicity", "segments", "dynamic")  # Doc: developers.kommo.com/reference/account-parameters
PAGE = 250
PURCHASE_PREFIX = "t"  # a transaction's purchase id: "t<id>", apart from the leads' ids


@dataclass
class Book:
    """Each Customers-mode customer: whose it is (contact or company id) and the next date it holds."""

    owner: dict[int, str]
    next_date: dict[int, int | None]

    def of(self, owner_id: str) -> list[int]:
        return [cid for cid, owner in self.owner.items() if owner == owner_id]


def read_book(client: AmoClient, customer_key: str) -> Book:
    owner, next_date = {}, {}
    side = "companies" if customer_key == "company" else "contacts"
    for rows in pages(client, "/api/v4/customers", "customers", {"with": "contacts"}, limit=PAGE):
        for raw in rows:
            links = ((raw.get("_embedded") or {}).get(side) or []) if isinstance(raw.get("_embedded"), dict) else []
            main = next((x for x in links if x.get("is_main")), links[0] if links else None)
            if raw.get("id") and main and main.get("id"):
                owner[int(raw["id"])] = str(main["id"])
                next_date[int(raw["id"])] = int(raw["next_date"]) if raw.get("next_date") else None
    return Book(owner, next_date)


def purchase_from_transaction(raw: dict, book: Book, tz: ZoneInfo, currency: str) -> Purchase:
    tid = mapping.text(raw.get("id"))
    customer = raw.get("customer_id") or ((raw.get("_embedded") or {}).get("customer") or {}).get("id")
    owner = book.owner.get(int(customer)) if customer else None
    if not tid or owner is None:
        raise CrmRecordError(f"transaction {tid or '?'} has no customer with a contact", crm=mapping.CRM)
    day = mapping.local_day(raw.get("completed_at"), tz, field="completed_at") \
        or mapping.local_day(raw.get("created_at"), tz, field="created_at")
    amount = mapping.number(raw.get("price"), field="price")
    if day is None or amount is None:
        raise CrmRecordError(f"transaction {tid} has no date or price", crm=mapping.CRM)
    return Purchase(id=PURCHASE_PREFIX + tid, customer_id=owner, date=day, amount=amount, currency=currency,
                    title=mapping.text(raw.get("comment")))


def midnight(day: str, tz: ZoneInfo) -> int:
    return int(datetime.combine(date.fromisoformat(day), time()).replace(tzinfo=tz).timestamp())


class NextDates:
    """Card writes, and in Customers mode the linked customers' `next_date` from the same prediction."""

    def __init__(self, client: AmoClient, cards, *, customer_key: str, timezone: Callable[[], ZoneInfo],
                 mode: Callable[[], str], book: Callable[[], Book | None]) -> None:
        self.client, self.cards, self.customer_key = client, cards, customer_key
        self.timezone, self.mode, self.book = timezone, mode, book
        self.written = 0  # next_date values changed this run

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes = self.cards.write(actions)
        if self.mode() in ON_MODES:
            done = {o.key for o in outcomes if o.ok}
            try:
                self.set_next_dates([a for a in actions if a.key in done])
            except CrmError as exc:  # the cards hold the prediction; the customers get it next change
                log.warning("amocrm customers next_date not written: %s", exc)
            try:
                self.set_bonus_points([a for a in actions if a.key in done])
            except CrmError as exc:  # the cards hold the balance; the customers get it next change
                log.warning("amocrm customers bonus points not written: %s", exc)
        return outcomes

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        return self.cards.find(keys)

    def set_next_dates(self, actions: Sequence[Action]) -> int:
        wanted = {a.customer_id: str((a.payload.get("fields") or {}).get("next_purchase") or "") for a in actions}
        wanted = {k: v for k, v in wanted.items() if v}
        if not wanted:
            return 0
        book, tz = self.book(), self.timezone()
        if book is None:
            book = read_book(self.client, self.customer_key)
        bodies = []
        for owner, day in sorted(wanted.items()):
            stamp = midnight(day, tz)
            for customer in book.of(owner):
                if book.next_date.get(customer) != stamp:
                    bodies.append((str(customer), {"id": customer, "next_date": stamp}))
        done, refused = send_rounds(self.client, "PATCH", "/api/v4/customers", bodies, key="customers")
        for cid in done:
            book.next_date[int(cid)] = next(b["next_date"] for k, b in bodies if k == cid)
        if refused:
            log.warning("amocrm customers next_date refused for %d customers", len(refused))
        self.written += len(done)
        return len(done)

    def set_bonus_points(self, actions: Sequence[Action]) -> int:
        """The card's bonus balance (RS_BONUS) as the linked customers' bonus points, where it changed.

        Nothing reads the points back, so the card's previous value (`was`, what the card was last
        written with) tells a changed balance from an unchanged one; a card never written held none."""
        wanted = {}
        for a in actions:
            new, old = points(a.payload.get("codes", {}).get("bonus")), points(a.payload.get("was", {}).get("bonus"))
            if new != old:
                wanted[a.customer_id] = new
        if not wanted:
            return 0
        book = self.book() or read_book(self.client, self.customer_key)
        changed = 0
        for owner, balance in sorted(wanted.items()):
            for customer in book.of(owner):
                write_bonus_points(self.client, customer, balance)
                changed += 1
        return changed


def points(value: object) -> int:
    """A card's bonus balance ("53.00", "" when none) as whole bonus points."""
    try:
        return max(0, round(float(str(value or 0))))
    except ValueError:
        return 0



def write_bonus_points(client: AmoClient, customer_id: int, balance: int) -> int:
    """Bring a Customers-mode customer's bonus points to `balance`; returns the balance the account holds.

    amoCRM only earns or redeems (`POST /api/v4/customers/{id}/bonus_points` with `earn` or `redeem`, a
    positive integer) and answers the new balance; nothing reads it. So one point is earned to learn the
    balance, then the difference is earned or redeemed. A run stopped between the two leaves one point too
    many, which the next call corrects; the result is the same however often it is called. The customer
    id is amoCRM's (a contact's customers: `Book.of(contact_id)`).
    """
    if balance < 0:
        raise ValueError("a bonus balance cannot be negative")
    path = f"/api/v4/customers/{int(customer_id)}/bonus_points"
    held = int((client.request("POST", path, json_body={"earn": 1}, kind="write") or {}).get("bonus_points") or 0)
    if held != balance:
        change = {"earn": balance - held} if balance > held else {"redeem": held - balance}
        held = int((client.request("POST", path, json_body=change, kind="write") or {}).get("bonus_points") or 0)
    return held
