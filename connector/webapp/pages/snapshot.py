"""What the pages show, computed once per sync: the playbook over the local snapshot (with the lifetime
model), the ledger's week, the report's segment/RFM/lifetime figures. A page then only renders.

The view is keyed by the account, today, the last finished run and the playbook in force, so a sync, a new
day or a saved playbook gives a fresh one; until then every page answer reuses it (the 300 ms target of
issue 18 at 20,000 customers is only reachable this way - one evaluation takes seconds).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from connector.model import Action, Customer
from connector.report.data import lifetime_view, rfm_grid, segment_sizes
from connector.report.uplift import rule_uplift
from connector.state import State, action_from_json
from connector.store import ledger
from connector.webapp.classify import classification
from connector.webapp.pages.task_states import recent_task_ids
from playbooks import PlanHistory, evaluate
from playbooks.api import CustomerReport

log = logging.getLogger(__name__)

CALL_CHANNELS = ("call", "task")
TOP_CALLS = 40


@dataclass
class View:
    key: tuple
    today: date
    customers: dict[str, Customer]
    reports: dict[str, CustomerReport]
    plan_by_customer: dict[str, list[Action]]
    calls: list[Action]  # due today or overdue, for a manager to ring
    tomorrow: Counter  # (rule, channel) -> actions
    week: dict
    returning: dict
    segments: dict
    rfm: dict
    lifetime: dict
    metrics: dict
    extra: dict = field(default_factory=dict)


class Views:
    """The newest View; when a sync, a new day or a saved playbook makes it stale, the stale one keeps
    answering while one background thread builds the next (a build takes a minute at 20,000 customers).
    Only the very first view is waited for."""

    def __init__(self, open_state: Callable[[], State], tasks: Callable[[list[str], date], dict] | None = None) -> None:
        self.open_state = open_state
        self.tasks = tasks  # task ids -> manager -> Counter(done, overdue, open), read from the CRM
        self._lock = threading.Lock()
        self._view: View | None = None
        self._building: threading.Thread | None = None
        self.builds = 0

    def get(self, state: State, account: str, today: date, playbook, version: int) -> View:
        key = view_key(state, account, today, playbook, version)
        with self._lock:
            view, building = self._view, self._building
        if view is None and building is not None:
            building.join()  # the first view is on its way: wait for it rather than build it twice
        with self._lock:
            view, building = self._view, self._building
            if view is not None and (view.key == key or building is not None):
                return view
            if view is not None:  # stale: answer with it, rebuild behind it
                self._building = threading.Thread(target=self._rebuild, args=(account, today, playbook, version),
                                                  name="repeat-sales-pages-view", daemon=True)
                self._building.start()
                return view
            self._view = build_view(state, account, today, playbook, key, self.tasks)
            self.builds += 1
            return self._view

    def warm(self, account: str, today: date, playbook, version: int) -> None:
        """Build in the background now (at start, after a save) so no visitor waits for it."""
        with self._lock:
            if self._building is None:
                self._building = threading.Thread(target=self._rebuild, args=(account, today, playbook, version),
                                                  name="repeat-sales-pages-view", daemon=True)
                self._building.start()

    def _rebuild(self, account: str, today: date, playbook, version: int) -> None:
        try:
            state = self.open_state()
            try:
                key = view_key(state, account, today, playbook, version)
                fresh = build_view(state, account, today, playbook, key, self.tasks)
            finally:
                state.close()
            with self._lock:
                self._view = fresh
                self.builds += 1
        except Exception:
            log.exception("pages: building the view failed")
        finally:
            with self._lock:
                self._building = None


def view_key(state: State, account: str, today: date, playbook, version: int) -> tuple:
    runs = [r["id"] for r in state.last_runs(20) if r["finished"] and r["account"] == account]
    return (account, today, runs[0] if runs else 0, version, id(playbook))


def build_view(state: State, account: str, today: date, playbook, key: tuple, tasks=None) -> View:
    customers = {c.id: c for c in state.customers(account, lean=True)}
    applied = {k: d for k, d in state.applied_dates(account).items() if d <= today}
    ev = evaluate(customers.values(), today, playbook, history=PlanHistory(applied),
                  catalogue=state.products(account).values(), prospects=state.prospect_count(account))
    reports = {c.customer_id: c for c in ev.customers}
    uplift = rule_uplift(list(customers.values()), applied, today, playbook, catalogue=state.products(account))
    status = state.ledger_status(account, (a.key for a in ev.plan))
    open_plan = [a for a in ev.plan if status.get(a.key) != "done"]
    by_customer: dict[str, list[Action]] = defaultdict(list)
    for a in open_plan:
        by_customer[a.customer_id].append(a)
    calls = sorted([*written_today(state, account, today),
                    *(a for a in open_plan if a.due <= today and a.channel.value in CALL_CHANNELS)],
                   key=lambda a: (a.due, a.rule, a.customer_id))[:TOP_CALLS]
    tomorrow = tomorrow_plan(customers, today, playbook, applied, state, account)
    return View(key=key, today=today, customers=customers, reports=reports, plan_by_customer=dict(by_customer),
                calls=calls, tomorrow=tomorrow, week=week_summary(state, account, today, customers),
                returning=returning_share(customers.values(), today), segments=segment_sizes(ev, playbook),
                rfm=rfm_grid(ev), lifetime=lifetime_view(ev, playbook), metrics=dict(ev.metrics),
                extra={"uplift": uplift, "tasks": tasks(recent_task_ids(state, account, today), today) if tasks else {}})


def tomorrow_plan(customers: dict[str, Customer], today: date, playbook, applied: dict, state: State,
                  account: str) -> Counter:
    """What the next run would plan tomorrow, by rule and channel: a dry run as of tomorrow (no model fit);
    what today's run already wrote is not planned again."""
    tomorrow = today + timedelta(days=1)
    ev = evaluate(customers.values(), tomorrow, playbook, history=PlanHistory(applied),
                  catalogue=state.products(account).values(), predict=False)
    done = state.ledger_status(account, (a.key for a in ev.plan))
    return Counter((a.rule, a.channel.value) for a in ev.plan if done.get(a.key) != "done" and a.due <= tomorrow)


def written_today(state: State, account: str, today: date) -> list[Action]:
    """Calls and tasks the plugin set today: the managers' list for the day."""
    out = []
    for text in ledger.applied_on_day(state.db, account, today.isoformat()):
        action = action_from_json(text)
        if action.channel.value in CALL_CHANNELS:
            out.append(action)
    return out


def week_summary(state: State, account: str, today: date, customers: dict[str, Customer]) -> dict:
    """What the plugin wrote in the last seven days, by rule, channel and manager, and its repeat deals:
    created (all time), won (their deal is a purchase now) and the revenue of those."""
    since = (today - timedelta(days=6)).isoformat()
    by_rule: Counter = Counter()
    by_channel: Counter = Counter()
    by_manager: Counter = Counter()
    tasks_by_manager: Counter = Counter()
    for rule, action, kind in ledger.applied_between(state.db, account, since, today.isoformat()):
        data = json.loads(action or "{}") if action and action != "{}" else {}
        channel = data.get("channel") or kind
        manager = str(data.get("manager_id") or "")
        by_rule[rule or data.get("rule", "")] += 1
        by_channel[channel] += 1
        by_manager[manager] += 1
        if kind == "task":
            tasks_by_manager[manager] += 1
    deal_ids = ledger.done_crm_ids(state.db, account, "deal")
    bought = {p.id: p.amount for c in customers.values() for p in c.purchases}
    won = [bought[d] for d in deal_ids if d in bought]
    return {"since": since, "rules": by_rule, "channels": by_channel, "managers": by_manager,
            "tasks": tasks_by_manager, "deals_created": len(deal_ids), "deals_won": len(won),
            "deals_revenue": sum(won), "total": sum(by_rule.values())}


def returning_share(customers, today: date) -> dict:
    """Of the last 365 days' orders and revenue, the share that came from customers who had bought before."""
    year_ago = today - timedelta(days=365)
    orders = returning_orders = 0
    revenue = returning_revenue = 0.0
    for c in customers:
        bought = sorted((p for p in c.purchases if p.amount > 0 and p.date <= today), key=lambda p: p.date)
        for i, p in enumerate(bought):
            if p.date <= year_ago:
                continue
            orders += 1
            revenue += p.amount
            if i > 0:
                returning_orders += 1
                returning_revenue += p.amount
    return {"orders": returning_orders / orders if orders else None,
            "revenue": returning_revenue / revenue if revenue else None}


def next_purchase(view: View, customer_id: str) -> str:
    from playbooks import Evaluation

    single = Evaluation(as_of=view.today, customers=[view.reports[customer_id]], plan=[], segments={}, metrics={})
    return classification(single, customer_id)["next_purchase_date"]
