"""`repeat-sales report`: what the local state says about repeat sales, as data, HTML or text.

    build_report(state, account, today, playbook) -> dict   every figure, JSON-ready
    render_html(report) -> str                              one self-contained page (inline CSS/SVG)
    render_text(report) -> str                              the terminal summary
    run_report(args) -> int                                 the CLI command (args.as_of, args.html)
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from connector.errors import InputError
from connector.report.data import (
    MIGRATION_DAYS,
    cohorts,
    evaluation_as_of,
    lifetime_view,
    metric_trend,
    migration,
    repeat_by_first_product,
    rfm_grid,
    segment_sizes,
)
from connector.report.director import director_view
from connector.report.html import CHART_NAMES, render_html
from connector.report.text import render_text
from connector.report.uplift import WINDOW_DAYS, rule_uplift
from connector.state import State
from connector.store import engine, snapshot
from playbooks import PlanHistory, evaluate
from playbooks.words import names_for

__all__ = ["CHART_NAMES", "build_report", "latest_account", "render_html", "render_text", "run_report"]

WRITTEN = {"en": "report written to {path} ({customers:,} customers, as of {day})",
           "ru": "отчёт записан в {path} (клиентов: {customers}, на {day})"}
NO_SYNC = "no sync has run yet: run `repeat-sales sync` first"


def build_report(state: State, account: str, today: date, playbook, *, window_days: int = WINDOW_DAYS,
                 secret: str = "") -> dict:
    """Every figure of the report as of `today` for one account of the state.

    Purchases and ledger entries dated after `today` are ignored, so `--as-of` in the past shows
    the shop as it was then.
    """
    started = time.monotonic()
    from connector.feedback import answers_of, with_answers

    customers = list(with_answers(state.customers(account, lean=True), answers_of(state, account)))
    catalogue = state.products(account)
    applied = {k: d for k, d in state.applied_dates(account).items() if d <= today}
    current = evaluate(customers, today, playbook, history=PlanHistory(applied), catalogue=catalogue.values(),
                       prospects=state.prospect_count(account), secret=secret)
    before = evaluation_as_of(customers, today - timedelta(days=MIGRATION_DAYS), playbook)
    runs = [r for r in state.last_runs(50) if r["account"] == account and r["finished"]]
    last_sync = (datetime.fromtimestamp(runs[0]["finished"], UTC).strftime("%Y-%m-%d %H:%M UTC")
                 if runs else None)
    report = {
        "as_of": today.isoformat(),
        "meta": {"account": account, "customers": current.metrics.get("customers", 0),
                 "purchases": current.metrics.get("purchases", 0), "ledger": state.ledger_counts(account),
                 "last_sync": last_sync},
        "metrics": dict(current.metrics),
        "trend": metric_trend(customers, today, playbook),
        "segments": segment_sizes(current, playbook),
        "migration": migration(before, current, playbook),
        "rfm": rfm_grid(current),
        "cohorts": cohorts(customers, today),
        "first_product": repeat_by_first_product(customers, today),
        "uplift": rule_uplift(customers, applied, today, playbook, catalogue=catalogue, window_days=window_days),
        "lifetime": lifetime_view(current, playbook, {c.id: c for c in customers}, account),
        # the playbook's language and its names for codes: what the HTML and text pages show
        "lang": playbook.lang,
        "names": names_for(playbook).as_dict(),
        "holdout_percent": playbook.guards.holdout.percent if playbook.guards.holdout.enabled else 0.0,
        "director": director_view(current.metrics, playbook.lang, names_for(playbook)),
    }
    report["meta"]["seconds"] = round(time.monotonic() - started, 2)
    return report


def latest_account(state: State) -> str:
    """The account of the latest run, else the only account in the ledger or snapshot."""
    for run in state.last_runs(100):
        if run["account"]:
            return run["account"]
    accounts = snapshot.accounts(state.db)
    if not accounts:
        raise InputError(NO_SYNC)
    if len(accounts) > 1:
        raise InputError(f"the state holds several accounts ({', '.join(accounts)}) and no run says which is "
                         "current", hint="run `repeat-sales sync` once for the account you want")
    return accounts[0]


def run_report(*, as_of: date | None = None, html: str | None = None, tenant: str | None = None) -> int:
    """`repeat-sales report [--as-of DATE] [--html FILE] [--tenant ID]`: the page to FILE, else a text summary;
    a tenant's from its own state, settings and saved playbook."""
    from connector import clock, tenants
    from connector.settings import load_settings, secret_text
    from connector.webapp.pages.versions import latest_playbook
    from playbooks import load_playbook

    settings = load_settings()
    if tenant is not None and tenant != tenants.DEFAULT:
        found = tenants.find(settings, tenants.check_id(tenant))
        if not tenants.state_exists(settings, found.id):
            raise InputError(NO_SYNC, hint=f"tenant {found.id} has no state yet: "
                                           f"run `repeat-sales sync --tenant {found.id}` first")
        settings = tenants.settings_for(settings, found.id, found.crm)
    if not engine.exists(settings.state_target):
        raise InputError(NO_SYNC, hint=f"no state file at {settings.state_path} (STATE_URL)")
    saved = latest_playbook(settings.state_target) if tenant not in (None, tenants.DEFAULT) else None
    playbook = saved[1] if saved else load_playbook(settings.PLAYBOOK, lang=settings.PLAYBOOK_LANG)
    today = as_of or clock.today(settings.TIMEZONE)
    state = State(settings.state_target, writable=False)  # a report only reads: a read-only file will do
    try:
        account = latest_account(state)
        if not state.counts(account)["purchases"]:
            raise InputError(f"the state holds no purchases for {account}: nothing to report",
                             hint="run `repeat-sales sync` first")
        report = build_report(state, account, today, playbook, secret=secret_text(settings.REFERRAL_SECRET))
    finally:
        state.close()
    if html:
        path = Path(html)
        try:
            path.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--html: cannot write {path}: {exc.strerror or exc}") from None
        said = WRITTEN.get(playbook.lang, WRITTEN["en"])
        print(said.format(path=path, customers=report["meta"]["customers"], day=report["as_of"]))
    else:
        print(render_text(report))
    return 0
