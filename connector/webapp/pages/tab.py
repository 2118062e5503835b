"""The customer's tab in a contact or company card: who they are to us and what we do about them.

Segment, RFM, lifecycle, tier, the bonus balance when the card holds one, the chance of return and the
predicted value with one plain line, the next expected purchase, and the touches planned and done.
"""

from __future__ import annotations

import json

from connector.state import State
from connector.store import ledger
from connector.webapp.pages.snapshot import View, next_purchase
from connector.webapp.pages.view import esc, table
from connector.webapp.pages.words import Words

BONUS_FIELDS = ("bonus_balance", "bonus", "bonuses")
TOUCHES_SHOWN = 30


def explain(report, w: Words) -> str:
    """One line a manager can repeat: what the chance of return rests on (never 100 % for one purchase)."""
    if report.purchases < 2:
        return w["explain_one"]
    p = report.extra.get("p_alive")
    return w["explain"].format(n=report.purchases, days=report.recency_days, p=w.share(float(p)) if p is not None
                               else "—")


def last_purchase(customer, w: Words) -> str:
    """The date and what was bought: the products a manager talks about."""
    bought = [p for p in (customer.purchases if customer else ()) if p.amount > 0]
    if not bought:
        return "—"
    last = max(bought, key=lambda p: p.date)
    names = ", ".join(dict.fromkeys(i.name for i in last.items if i.name))
    return f"{w.day(last.date.isoformat())}" + (f" — {names}" if names else "")


def touches(state: State, account: str, customer_id: str, view: View, w: Words) -> list[list[str]]:
    rows = []
    for a in sorted(view.plan_by_customer.get(customer_id, []), key=lambda a: a.due):
        rows.append([w.day(a.due.isoformat()), w.rule(a.rule), w.channel(a.channel.value), a.title, w["planned"]])
    done = ledger.customer_rows(state.db, account, customer_id, TOUCHES_SHOWN)
    for rule, kind, action, status, applied_on, _reason in done:
        data = json.loads(action) if action and action != "{}" else {}
        rows.append([w.day(applied_on or data.get("due")), w.rule(rule or data.get("rule", "")),
                     w.channel(data.get("channel") or kind), data.get("title", ""), w.status(status)])
    return rows


def render_tab(view: View, w: Words, state: State, account: str, customer_id: str) -> str:
    c = view.customers.get(customer_id)
    report = view.reports.get(customer_id)
    name = c.name if c and c.name else f"#{customer_id}"
    head = f'<h1>{esc(name)}</h1>'
    if report is None or report.purchases == 0:
        return head + f'<section><p class="muted">{esc(w["no_customer"])}</p></section>'
    items = [(w["segment"], w.segment(report.segment)), (w["rfm"], report.rfm),
             (w["lifecycle"], w.lifecycle(report.lifecycle)), (w["tier"], w.tier(report.tier)),
             (w["value"], w.value(report.value)), (w["purchases"], w.number(report.purchases)),
             (w["spent"], w.money(report.monetary)), (w["last_purchase"], last_purchase(c, w))]
    if report.extra.get("bonus_balance") is not None:  # the playbook keeps bonus accounts (playbooks.bonus)
        expires = report.extra.get("bonus_expires")
        items.append((w["bonus"], w.money(float(report.extra["bonus_balance"]))
                      + (f" (→ {w.day(str(expires))})" if expires else "")))
    else:
        bonus = next((c.fields[k] for k in BONUS_FIELDS if c and k in c.fields), None)
        if bonus not in (None, ""):
            items.append((w["bonus"], str(bonus)))
    p_alive, ltv = report.extra.get("p_alive"), report.extra.get("predicted_ltv")
    if report.purchases >= 2 and p_alive is not None:
        items.append((w["chance"], w.share(float(p_alive))))
    if ltv is not None:
        items.append((w["predicted"], w.money(float(ltv))))
    expected = next_purchase(view, customer_id)
    items.append((w["next_purchase"], w.day(expected) if expected else "—"))
    cards = '<div class="cards">' + "".join(f'<div class="card"><div class="label">{esc(k)}</div>'
                                            f'<div class="value">{esc(v)}</div></div>' for k, v in items) + "</div>"
    rows = touches(state, account, customer_id, view, w)
    return (head + f'<section>{cards}<p>{esc(explain(report, w))}</p></section>'
            f'<section><h2>{esc(w["touches"])}</h2>'
            + table([w["due"], w["rule"], w["channel"], w["step"], w["status"]], rows, empty=w["no_touches"])
            + "</section>")
