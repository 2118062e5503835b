"""What a manager needs next to a task: who the customer is, what they bought, what to offer, what was tried.

Built in sync from the action, the customer's history in the local snapshot and the ledger of
what earlier runs applied, then appended to the action's body (task description, deal comment,
automation note). Texts follow the playbook's language.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date

from connector.model import Action, ActionKind, Customer
from connector.state import State
from connector.store import ledger
from playbooks.words import Names

LAST_PURCHASES = 3
LAST_TOUCHES = 5
WORDS = {
    "ru": {"customer": "Клиент", "purchases": "Покупки", "of": "из", "total": "всего",
           "offer": "Что предложить", "tried": "Что уже было", "none_tried": "ничего: это первое касание",
           "segment": "сегмент", "stage": "стадия", "tier": "уровень", "next": "ожидаемая покупка"},
    "en": {"customer": "Customer", "purchases": "Purchases", "of": "of", "total": "in total",
           "offer": "What to offer", "tried": "Already tried", "none_tried": "nothing: this is the first touch",
           "segment": "segment", "stage": "stage", "tier": "tier", "next": "next purchase expected"},
}


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f}".replace(",", "\u00a0") + f" {currency}"


def _qty(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def touches_by_customer(state: State, account: str, customers: set[str]) -> dict[str, list[tuple[date, str, str]]]:
    """(applied on, rule, title) of every action applied to these customers, newest first."""
    out: dict[str, list[tuple[date, str, str]]] = {}
    # by the ledger's customer index: a write batch reads its own rows
    for customer_id, rule, text, applied_on in ledger.touches_of(state.db, account, list(customers)):
        if rule == "segment":
            continue
        try:
            title = str(json.loads(text).get("title") or "")
        except ValueError:
            continue
        out.setdefault(customer_id, []).append((date.fromisoformat(applied_on), rule, title))
    for touches in out.values():
        touches.sort(reverse=True)
    return out


def context(action: Action, customer: Customer | None, report, touches: list[tuple[date, str, str]],
            lang: str, names: Names | None = None) -> str:
    """The block appended to an action's body: segment, stage, tier and rules by name, not by code."""
    w = WORDS.get(lang, WORDS["ru"])
    names = names or Names(lang)
    lines: list[str] = []
    if customer is not None:
        who = customer.name or f"#{customer.id}"
        contacts = ", ".join([*customer.phones[:1], *customer.emails[:1]])
        lines.append(f"{w['customer']}: {who}" + (f" ({contacts})" if contacts else ""))
    if report is not None:
        facts = [f"{w['segment']} {names.segment(report.segment)}", f"RFM {report.rfm}",
                 f"{w['stage']} {names.lifecycle(report.lifecycle)}", f"{w['tier']} {names.tier(report.tier)}"]
        lines.append(", ".join(facts))
    if customer is not None and customer.purchases:
        bought = list(customer.purchases)
        total = sum(p.amount for p in bought if p.currency == bought[-1].currency)
        lines.append(f"{w['purchases']}: {len(bought)}, {w['total']} {_money(total, bought[-1].currency)}")
        for p in reversed(bought[-LAST_PURCHASES:]):
            items = ", ".join(f"{i.name} x{_qty(i.quantity)}" for i in p.items) or p.title
            lines.append(f"  {p.date.isoformat()}: {_money(p.amount, p.currency)}" + (f" - {items}" if items else ""))
    products = action.payload.get("products") if isinstance(action.payload, Mapping) else None
    if products:
        offer = ", ".join(f"{x.get('name')} x{_qty(float(x.get('quantity') or 1))}" for x in products
                          if isinstance(x, Mapping))
        lines.append(f"{w['offer']}: {offer}")
    lines.append(f"{w['tried']}:" + ("" if touches else f" {w['none_tried']}"))
    for when, rule, title in touches[:LAST_TOUCHES]:
        lines.append(f"  {when.isoformat()} [{names.rule(rule)}] {title}")
    return "\n".join(lines)


def with_context(actions: Iterable[Action], customers: Mapping[str, Customer], reports: Mapping[str, object],
                 touches: Mapping[str, list], lang: str, names: Names | None = None) -> list[Action]:
    """Each action (but card fields) with the context block after its own body, and the language
    in its payload for the adapter's own notes."""
    out = []
    for a in actions:
        if a.kind == ActionKind.TAG:
            out.append(a)
            continue
        block = context(a, customers.get(a.customer_id), reports.get(a.customer_id), touches.get(a.customer_id, []),
                        lang, names)
        body = f"{a.body.strip()}\n\n{block}" if a.body.strip() else block
        out.append(replace(a, body=body, payload={**a.payload, "lang": lang}))
    return out
