"""A local State built from `emulators.shop`, as if weekly syncs had run for months.

No emulator: customers and purchases go straight into the snapshot with `State.absorb`, and each
replayed sync evaluates the playbook as of its day and records the plan in the ledger
(`mark_pending` + `mark_done`), so the ledger holds real rule names, keys and `applied_on` dates.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from connector.crm import CrmRef, PullPage
from connector.model import Customer, LineItem, Product, Purchase
from connector.state import State
from emulators.shop import generate_shop
from playbooks import PlanHistory, evaluate, load_playbook

TODAY = date(2026, 6, 15)
ACCOUNT = "shop.example"


def shop_page(customers: int, seed: int, today: date) -> PullPage:
    """The shop's won deals as CRM-neutral customers, purchases and products."""
    shop = generate_shop(customers, seed, today)
    products = {p.id: p for p in shop.products}
    page = PullPage(products=[Product(str(p.id), p.name, p.category, p.price, p.currency, p.cycle_days)
                              for p in shop.products])
    for c in shop.customers:
        page.customers.append(Customer(
            id=str(c.id), name=c.name, kind="company" if c.kind == "company" else "contact",
            emails=c.emails, phones=c.phones, birthday=c.birthday, manager_id=str(c.manager_id),
            fields={"no_marketing": "Y"} if c.no_marketing else {}))
    for deal in (d for d in shop.deals if d.won):  # the purchases
        items = tuple(LineItem(str(ln.product_id), products[ln.product_id].name, ln.quantity, ln.price,
                               products[ln.product_id].category) for ln in deal.lines)
        page.purchases.append(Purchase(str(deal.id), str(deal.customer_id), deal.closed.date(), deal.amount,
                                       deal.currency, items, str(deal.manager_id), f"Deal {deal.id}"))
    return page


def shop_state(path: Path, *, customers: int = 600, seed: int = 7, today: date = TODAY,
               syncs: int = 26, every_days: int = 7, playbook=None, account: str = ACCOUNT) -> State:
    """A State holding the shop and the ledger of `syncs` syncs, the last one on `today`."""
    playbook = playbook or load_playbook(lang="en")
    state = State(path)
    run_id = state.start_run(account, "sync", False)
    state.absorb(account, shop_page(customers, seed, today), run_id)
    state.finish_run(run_id, {})
    catalogue = list(state.products(account).values())
    for k in range(syncs - 1, -1, -1):
        day = today - timedelta(days=k * every_days)
        run_id = state.start_run(account, "sync", False)
        ev = evaluate(state.customers(account), day, playbook, history=PlanHistory(state.applied_dates(account)),
                      catalogue=catalogue, predict=False)
        status = state.ledger_status(account, (a.key for a in ev.plan))
        todo = [a for a in ev.plan if a.due <= day and status.get(a.key) != "done"]
        state.mark_pending(account, todo)
        state.mark_done(account, {a.key: CrmRef("task", f"t{i}") for i, a in enumerate(todo)}, day)
        state.finish_run(run_id, {"written": len(todo)})
    return state
