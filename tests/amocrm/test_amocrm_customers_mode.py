"""amoCRM Customers mode ("Покупатели", issue 16): transactions read as purchases, and the predicted next
purchase written to the customers' `next_date` once per change. Over HTTP against the amoCRM emulator."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from amo_support import TODAY, pull_all, token_adapter

from connector.state import State
from connector.sync import run_sync
from emulators.amocrm import AmoEmulator
from emulators.shop import DEAL_WON
from playbooks import load_playbook
from tests.contract.amocrm_harness import listing

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def account():
    with AmoEmulator(customers=600, seed=7, today=TODAY, customers_mode="periodicity") as emu:
        yield emu


def requests_to(emu, call: str) -> int:
    return emu.stats()["requests"].get(call, 0)


def sync(emu, state, today=TODAY):
    a = token_adapter(emu)
    try:
        return run_sync(a, state, load_playbook(), today=today)
    finally:
        a.close()


def next_dates(emu) -> dict[str, date | None]:
    """Contact id -> the next purchase date its Customers-mode customer holds."""
    out = {}
    for c in listing(emu, "/api/v4/customers", {"with": "contacts"}):
        day = datetime.fromtimestamp(c["next_date"], MOSCOW).date() if c.get("next_date") else None
        out[str(c["_embedded"]["contacts"][0]["id"])] = day
    return out


def card_predictions(emu, ids) -> dict[str, date | None]:
    """Contact id -> the predicted next purchase on its card (RS_NEXT_PURCHASE)."""
    out = {}
    for c in listing(emu, "/api/v4/contacts", {"filter[id][]": sorted(ids, key=int)}):
        values = [cf["values"][0]["value"] for cf in c.get("custom_fields_values") or []
                  if cf["field_code"] == "RS_NEXT_PURCHASE"]
        out[str(c["id"])] = datetime.fromtimestamp(int(values[0]), MOSCOW).date() if values else None
    return out


def test_transactions_are_read_as_purchases_250_a_page(account):
    won = [d for d in account.shop.deals if d.status == DEAL_WON]
    a = token_adapter(account)
    try:
        _customers, purchases, _products, _removed, _cursor = pull_all(a)
    finally:
        a.close()
    assert len(purchases) == len(won)  # every purchase, whether a won lead or a customer's transaction
    deals = {str(d.id): d for d in won}
    moved = [p for pid, p in purchases.items() if pid.startswith("t")]
    assert moved
    for p in moved:
        deal = deals[p.id[1:]]
        assert (p.customer_id, p.date, p.amount) == (str(deal.customer_id), deal.closed.date(), round(deal.amount))
    assert requests_to(account, "GET /api/v4/customers/transactions") == math.ceil(len(moved) / 250)


def test_an_incremental_pull_reads_only_the_new_transactions(account):
    a = token_adapter(account)
    try:
        *_rest, cursor = pull_all(a)
        customer = min(account.store.customers)
        r = requests.post(f"{account.base_url}/api/v4/customers/{customer}/transactions",
                          json=[{"price": 4321, "comment": "Заказ в магазине"}],
                          headers={"Authorization": f"Bearer {account.access_token}"}, timeout=10)
        assert r.status_code == 200, r.text
        new = str(r.json()["_embedded"]["transactions"][0]["id"])
        _c, purchases, _p, _r, _cur = pull_all(a, cursor)
    finally:
        a.close()
    assert purchases["t" + new].amount == 4321
    read = [pid for pid in purchases if pid.startswith("t")]
    assert len(read) < len(account.store.transactions) / 10  # the new ones (and the cursor's lag), not all
    assert purchases["t" + new].customer_id == str(account.store.customers[customer]["contacts"][0])


def test_the_predicted_next_purchase_goes_to_next_date_once_per_change(account, tmp_path):
    a = token_adapter(account)
    a.install()
    a.close()
    state = State(tmp_path / "s.db")
    sync(account, state)
    written = requests_to(account, "PATCH /api/v4/customers")
    held = next_dates(account)
    cards = card_predictions(account, held)
    assert written and any(held.values())
    assert held == {cid: cards[cid] for cid in held}  # each customer holds its card's prediction
    sync(account, state, today=TODAY + timedelta(days=1))
    assert requests_to(account, "PATCH /api/v4/customers") == written  # unchanged: nothing written
    customer = next(c for c in account.store.customers.values() if held[str(c["contacts"][0])])
    contact = str(customer["contacts"][0])
    completed = int(datetime.combine(TODAY + timedelta(days=2), time(12)).replace(tzinfo=MOSCOW).timestamp())
    r = requests.post(f"{account.base_url}/api/v4/customers/{customer['id']}/transactions",
                      json=[{"price": 1000, "completed_at": completed}],
                      headers={"Authorization": f"Bearer {account.access_token}"}, timeout=10)
    assert r.status_code == 200
    sync(account, state, today=TODAY + timedelta(days=2))
    after = next_dates(account)
    assert after[contact] != held[contact] and after[contact] == card_predictions(account, [contact])[contact]
    assert {cid for cid in held if after[cid] != held[cid]} == {contact}  # only the changed one moved


def test_bonus_points_are_brought_to_the_balance_given_however_often_written(account):
    from connector.amocrm.customers import write_bonus_points

    customer = min(account.store.customers)
    a = token_adapter(account)
    try:
        assert write_bonus_points(a.client, customer, 350) == 350
        assert write_bonus_points(a.client, customer, 350) == 350  # again: the same balance
        assert write_bonus_points(a.client, customer, 120) == 120  # a redemption lowers it
        assert write_bonus_points(a.client, customer, 0) == 0
    finally:
        a.close()
    assert account.store.customers[customer]["bonus_points"] == 0


def card_bonuses(emu, ids) -> dict[str, float]:
    """Contact id -> the bonus balance on its card (RS_BONUS; none written reads 0)."""
    out = {}
    for c in listing(emu, "/api/v4/contacts", {"filter[id][]": sorted(ids, key=int)}):
        values = [cf["values"][0]["value"] for cf in c.get("custom_fields_values") or []
                  if cf["field_code"] == "RS_BONUS"]
        out[str(c["id"])] = float(values[0]) if values and values[0] not in ("", None) else 0.0
    return out


def bonus_writes(emu) -> int:
    return sum(n for call, n in emu.stats()["requests"].items() if call.endswith("/bonus_points"))


def test_each_customers_bonus_points_equal_its_cards_balance_and_a_rerun_writes_none(account, tmp_path):
    a = token_adapter(account)
    a.install()
    a.close()
    state = State(tmp_path / "s.db")
    sync(account, state)
    points = {str(c["contacts"][0]): c["bonus_points"] for c in account.store.customers.values()}
    cards = card_bonuses(account, points)
    assert any(cards.values())  # the tiers' cashback accrued somewhere
    assert points == {cid: round(cards[cid]) for cid in points}  # each customer holds its card's balance
    written = bonus_writes(account)
    sync(account, state)
    assert bonus_writes(account) == written  # unchanged: nothing written
