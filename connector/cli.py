"""The `repeat-sales` command line: argparse, exit codes, tables for people, JSON for machines.

Exit status: 0 ok, 1 runtime failure (CRM unreachable, auth refused), 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
from datetime import date

from connector import clock, registry, tenant_commands
from connector.errors import InputError, RepeatSalesError
from connector.render import render_segments, render_sync
from connector.tables import table
from playbooks.words import names_for


def _as_of(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--as-of must be YYYY-MM-DD, got {value!r}") from None


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, got {value!r}")
    return port


def _part_rows(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a number of rows (0: the whole file at once), got {value!r}")
    return int(value)


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"must be a number of processes from 1 to 64, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repeat-sales", description="Turn one-time buyers into returning "
                                "customers, inside " + " and ".join(c.brand for c in registry.CRMS.values()) + ".")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="start the built-in CRM emulator and run the full cycle twice")
    d.add_argument("--crm", choices=registry.NAMES, default=registry.DEFAULT)
    d.add_argument("--customers", type=int, default=300)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--as-of", type=_as_of)
    d.add_argument("--format", choices=["table", "json"], default="table")

    s = sub.add_parser("sync", help="pull, evaluate the playbook and write the plan into the CRM")
    s.add_argument("--crm", choices=registry.NAMES)
    s.add_argument("--dry-run", action="store_true", help="show the plan; write nothing, move no cursor")
    s.add_argument("--full", action="store_true", help="re-read everything instead of what changed")
    s.add_argument("--as-of", type=_as_of, help="evaluate as if today were this date (writes only with "
                   "--write-as-of; otherwise add --dry-run)")
    s.add_argument("--write-as-of", action="store_true",
                   help="write the plan of the --as-of day into the CRM (cards, tasks, deals)")
    s.add_argument("--allow-blank-cards", action="store_true",
                   help="write even when the plan would clear the values on most customer cards")
    s.add_argument("--format", choices=["table", "json"], default="table")
    tenant_commands.add_sync_flags(s)
    tenant_commands.add_parsers(sub)

    a = sub.add_parser("analyze", help="segments and metrics from a CSV of transactions, no CRM needed")
    a.add_argument("file")
    a.add_argument("--as-of", type=_as_of)
    a.add_argument("--format", choices=["table", "json"], default="table")
    a.add_argument("--part-rows", type=_part_rows, default=None, metavar="N",
                   help="a file of more rows is read a range of customers at a time, about N rows each "
                        "(default 2,000,000; 0 reads the whole file at once)")

    r = sub.add_parser("report", help="metrics, segments, cohorts and rule uplift from the last sync")
    r.add_argument("--as-of", type=_as_of)
    r.add_argument("--html", help="write one self-contained HTML file here")
    r.add_argument("--tenant", metavar="ID", help="report this tenant (`repeat-sales tenants list`); default: default")

    pb = sub.add_parser("playbook", help="playbook tools")
    pb_sub = pb.add_subparsers(dest="playbook_command", required=True)
    check = pb_sub.add_parser("check", help="validate a playbook file")
    check.add_argument("file")

    sv = sub.add_parser("serve", help="the webhook app: install callbacks, CRM events, robots, OAuth redirect")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_port, default=8080, help="0-65535; 0 picks a free port")
    sv.add_argument("--workers", type=_workers, default=1,
                    help="processes serving the port (uvicorn), each with its own job worker; default 1")

    sc = sub.add_parser("schedule", help="run the full cycle now and then every N minutes, one run at a time")
    sc.add_argument("--every", type=float, metavar="MINUTES", help="default: SCHEDULE_EVERY_MINUTES (60)")

    wk = sub.add_parser("worker", help="run queued jobs (QUEUE_URL=redis://...): events, robots, installs and "
                        "syncs of every tenant; start any number, on any machines sharing the state",
                        description="A Celery worker on QUEUE_URL. Robots' answers are taken before other jobs; "
                        "one sync per tenant at a time across all workers; every portal's request budget shared. "
                        "--beat also keeps the one schedule of all tenants (each tenant's SCHEDULE_EVERY_MINUTES "
                        "and SCHEDULE_QUIET_HOURS): run it in one worker (a second only queues nothing twice).")
    wk.add_argument("--concurrency", type=int, default=1, metavar="N", help="jobs at once in this process (default 1)")
    wk.add_argument("--beat", action="store_true", help="also queue each tenant's scheduled syncs")

    i = sub.add_parser("install", help="prepare the CRM once (idempotent): the fields for card values and "
                       "repeat-deal markers")
    i.add_argument("--crm", choices=registry.NAMES)
    i.add_argument("--uninstall", action="store_true", help="remove what install created, and only that")
    i.add_argument("--tenant", metavar="ID", help="prepare this tenant's portal or account (`repeat-sales tenants "
                   "list`) on its own tokens; default: the .env's")
    i.add_argument("--format", choices=["table", "json"], default="table")

    am = sub.add_parser("amocrm", help="amoCRM tools")
    am_sub = am.add_subparsers(dest="amocrm_command", required=True)
    w = am_sub.add_parser("widget", help="build the widget archive (card panel and settings page)")
    w.add_argument("--out", default="repeat-sales-widget.zip", help="the archive to write")
    w.add_argument("--url", help="the public address of `serve` (default: APP_PUBLIC_URL)")

    st = sub.add_parser("state", help="the state file's keys: make one, seal the tokens anew with the first")
    st_sub = st.add_subparsers(dest="state_command", required=True)
    st_sub.add_parser("new-key", help="print a new key for STATE_KEY")
    st_sub.add_parser("rotate-key", help="seal every stored token with STATE_KEY's first key")

    e = sub.add_parser("emulator", help="run a CRM emulator standalone (prints its settings first)")
    e.add_argument("crm", choices=registry.NAMES)
    e.add_argument("rest", nargs=argparse.REMAINDER,
                   help="--host --port --customers --seed --latency-ms --faults --rate-limit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RepeatSalesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `analyze | head`: the reader has what it wanted; no traceback, no error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the state file failed mid-run (a damaged page, a full disk): the fix, no traceback
        sqlite3 = sys.modules.get("sqlite3")  # not imported by commands without a state (analyze): none raised
        if sqlite3 is None or not isinstance(exc, sqlite3.Error):
            raise
        from connector.state import state_failure

        error = state_failure(None, exc)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1


def cmd_sync(args) -> int:
    from connector.redact import setup_logging
    from connector.settings import load_settings, secret_text
    from connector.state import State
    from connector.sync import run_sync
    from playbooks import load_playbook

    if args.tenant or args.all_tenants:
        return tenant_commands.cmd_sync_tenants(args, written_day, progress_printer)
    settings = load_settings(**({"CRM": args.crm} if args.crm else {}))
    setup_logging("WARNING" if args.format == "json" else settings.LOG_LEVEL)
    playbook = load_playbook(settings.PLAYBOOK, lang=settings.PLAYBOOK_LANG)
    dry_run = args.dry_run or settings.DRY_RUN
    today = written_day(args.as_of, clock.today(settings.TIMEZONE), dry_run=dry_run, write_as_of=args.write_as_of)
    state = State(settings.state_target)  # first: a damaged or read-only file stops the run before any request
    adapter = registry.make_adapter(settings)
    try:
        report = run_sync(adapter, state, playbook, today=today, dry_run=dry_run, full=args.full,
                          progress=progress_printer(args.format), allow_blank_cards=args.allow_blank_cards,
                          referral_secret=secret_text(settings.REFERRAL_SECRET),
                          processes=settings.SYNC_PROCESSES)
    finally:
        adapter.close()
        state.close()
    if args.format == "json":
        print(json.dumps(report.to_json(adapter.crm_id), ensure_ascii=False, indent=1))
    else:
        print(render_sync(report, dry_run=dry_run, names=names_for(playbook)))
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
    return 1 if report.error or report.failed else 0


def written_day(as_of: date | None, today: date, *, dry_run: bool, write_as_of: bool) -> date:
    """The day a sync plans for: another day than today is previewed, and written only when asked.

    A plan of a past day would overwrite every live card with that day's values (customers who
    bought since look like prospects), so `--as-of` alone never writes.
    """
    if as_of is None or as_of == today:
        return today
    if not dry_run and not write_as_of:
        raise InputError(f"--as-of {as_of.isoformat()} is not today ({today.isoformat()}) and would write that "
                         "day's plan into the CRM",
                         hint="add --dry-run to preview it, or --write-as-of to write it anyway")
    return as_of


def progress_printer(fmt: str):
    def show(message: str) -> None:
        print(f"  .. {message}", file=sys.stderr, flush=True)
    return show


def cmd_demo(args) -> int:
    from connector.demo import run_demo

    return run_demo(crm=args.crm, customers=args.customers, seed=args.seed, as_of=args.as_of, fmt=args.format)


def cmd_analyze(args) -> int:
    """Read the CSV with the playbook of PLAYBOOK / PLAYBOOK_LANG (its currency, its CAC); no CRM setting.

    Segments and metrics come from the columnar evaluation (playbooks.columnar, the same answer as
    playbooks.engine); the plan is only counted, and the JSON is written customer by customer.
    """
    from types import SimpleNamespace

    from connector import forked
    from connector.transactions_parts import read_purchases
    from playbooks import load_playbook
    from playbooks.columnar_json import report_texts
    from playbooks.columnar_plan import evaluate_purchases

    signal.signal(signal.SIGTERM, _interrupt)  # a kill ends as Ctrl-C does: a big file's part files removed
    settings = analyze_settings()
    playbook = load_playbook(settings.PLAYBOOK, lang=settings.PLAYBOOK_LANG)
    purchases = read_purchases(args.file, as_of=args.as_of, currency=playbook.currency, rates=playbook.rates,
                               paid_field=playbook.bonuses.paid_field if playbook.bonuses_on else None,
                               part_rows=args.part_rows, today=clock.today(), holdout=playbook.guards.holdout)
    today = purchases.today
    read = {**purchases.summary.to_json(), "purchases_after_as_of": purchases.after_as_of}
    big = len(purchases.cols.ids) >= forked.APART_FROM  # the model fitted by a child meanwhile
    segmented, segments, metrics = evaluate_purchases(purchases.cols, purchases.customers, today, playbook,
                                                      with_items=purchases.with_items, birthdays=False, scored=False,
                                                      bare=True, alongside=forked.alongside if big else None,
                                                      holdout=purchases.holdout)
    del purchases
    if args.format == "json":
        write_json_stream(sys.stdout, today, report_texts(segmented), segments, metrics, segmented.model, read)
        return 0
    w = ANALYZE_WORDS.get(playbook.lang, ANALYZE_WORDS["en"])
    out = [w["as_of"].format(day=today.isoformat(), n=len(segmented.cols.ids))]
    out.append(table([w["input"], w["value"]], [(w[k], read[k]) for k in INPUT_SHOWN], title=f"\n{w['file']}"))
    names = names_for(playbook)
    out += render_segments(SimpleNamespace(segments=segments), names)
    shown = [(names.metric(k), v) for k, v in metrics.items() if isinstance(v, int | float)]
    out.append(table([w["metric"], w["value"]], shown, title=f"\n{w['metrics']}"))
    print("\n".join(out))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def analyze_settings():
    """PLAYBOOK and PLAYBOOK_LANG: straight from the environment when no .env can add to it and both are
    plainly valid (pydantic-settings costs 0.15 s to import, a tenth of a CDNOW analyze), else
    settings.load_playbook_settings() reads them and words any error."""
    import os
    from pathlib import Path
    from types import SimpleNamespace

    book, lang = os.environ.get("PLAYBOOK") or None, os.environ.get("PLAYBOOK_LANG", "ru")
    if not Path(".env").exists() and lang in ("ru", "en") and (book is None or Path(book).is_file()):
        return SimpleNamespace(PLAYBOOK=book, PLAYBOOK_LANG=lang)
    from connector.settings import load_playbook_settings

    return load_playbook_settings()


def write_json_stream(out, today, customers, segments, metrics, model, read) -> None:
    """The `analyze --format json` object of design.md, written 1,000 customers at a time (strict JSON):
    one json.dumps per batch costs a fraction of one per customer, and the text is the same. A customer
    may come as its JSON text already (playbooks.columnar_json)."""
    out.write(f'{{"as_of": {strict_json(today.isoformat())}, "customers": [')
    batch: list = []
    sep = ""
    for c in itertools.chain(customers, [None]):
        if c is not None:
            batch.append(c)
        if batch and (c is None or len(batch) == 1000):
            texts = isinstance(batch[0], str)
            out.write(sep + (", ".join(batch) if texts else strict_json(batch)[1:-1]))
            sep, batch = ", ", []
    out.write(f'], "segments": {strict_json(segments)}, "metrics": {strict_json(metrics)}')
    if model is not None:
        out.write(f', "model": {strict_json(model)}')
    out.write(f', "input": {strict_json(read)}}}\n')
    out.flush()


INPUT_SHOWN = ("rows_read", "rows_rejected", "refunds_applied", "refunds_unmatched", "zero_amount_rows",
               "purchases_after_as_of")
ANALYZE_WORDS = {
    "ru": {"as_of": "На {day}: клиентов {n}", "file": "Файл", "input": "строки", "value": "значение",
           "metrics": "Метрики", "metric": "метрика", "rows_read": "строк прочитано",
           "rows_rejected": "строк отклонено", "refunds_applied": "возвратов учтено",
           "refunds_unmatched": "возвратов без покупки (не учтены)", "zero_amount_rows": "строк с суммой 0",
           "purchases_after_as_of": "покупок позже даты отчёта (не учтены)"},
    "en": {"as_of": "As of {day}: {n} customers", "file": "Input", "input": "rows", "value": "value",
           "metrics": "Metrics", "metric": "metric", "rows_read": "rows read", "rows_rejected": "rows rejected",
           "refunds_applied": "refunds applied", "refunds_unmatched": "refunds with no purchase (dropped)",
           "zero_amount_rows": "rows with amount 0", "purchases_after_as_of": "purchases after the date (left out)"},
}


def strict_json(obj) -> str:
    """JSON that every parser reads: a NaN or infinity (a model that did not fit) becomes null."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def cmd_playbook(args) -> int:
    from playbooks import load_playbook

    playbook = load_playbook(args.file)
    rows = [(kind, priority, ", ".join(parts)) for kind, priority, parts in playbook.rule_summary()]
    print(f"ok: {args.file} (lang {playbook.lang}, currency {playbook.currency})")
    print(table(["rule", "priority", "steps"], rows, title="Active rules, in priority order"))
    print("Not active: " + (", ".join(playbook.inactive_rules()) or "none"))
    return 0


def cmd_emulator(args) -> int:
    return registry.crm(args.crm).run_emulator(args.rest)


def cmd_serve(args) -> int:
    from connector.webapp import run_serve

    return run_serve(args.host, args.port, args.workers)


def cmd_schedule(args) -> int:
    from connector.schedule import run_schedule

    if args.every is not None and args.every <= 0:
        raise InputError("--every must be a positive number of minutes")
    return run_schedule(args.every)


def cmd_worker(args) -> int:
    from connector.jobs.worker import run_worker

    if args.concurrency < 1:
        raise InputError("--concurrency must be 1 or more")
    return run_worker(args.concurrency, args.beat)


def cmd_install(args) -> int:
    """Create (or with --uninstall remove) what the plugin needs in the CRM; print what it did."""
    from connector.redact import setup_logging
    from connector.settings import load_settings

    settings = load_settings(**({"CRM": args.crm} if args.crm else {}))
    setup_logging("WARNING")
    settings, installs = tenant_commands.tenant_install(settings, args.tenant) if args.tenant else (settings, None)
    report = None if args.uninstall else tenant_commands.prepare_app_install(settings, installs)
    if report is None:
        adapter = registry.make_adapter(settings, installs)
        try:
            report = adapter.install(uninstall=args.uninstall)
        finally:
            adapter.close()
    rows = [(what, status) for status, items in (("created", report.created), ("already there", report.existing),
                                                 ("removed", report.removed), ("skipped", report.missing))
            for what in items]
    if args.format == "json":
        print(json.dumps({"crm": settings.CRM, "uninstall": args.uninstall, "created": report.created,
                          "existing": report.existing, "removed": report.removed, "missing": report.missing,
                          "admin_steps": report.admin_steps},
                         ensure_ascii=False, indent=1))
    else:
        title = f"\n{settings.CRM}: " + ("uninstall" if args.uninstall else "install")
        print(table(["object", "status"], rows, title=title) if rows else f"{title.strip()}: nothing to do")
        if report.admin_steps:
            print("\n" + "\n".join(report.admin_steps))
    return 0


def cmd_amocrm(args) -> int:
    from connector.amocrm.widget import run_widget

    return run_widget(args.out, args.url)


def cmd_report(args) -> int:
    from connector.report import run_report

    return run_report(as_of=args.as_of, html=args.html, tenant=args.tenant)


def cmd_state(args) -> int:
    from connector import sealing

    if args.state_command == "new-key":
        print(sealing.new_key())
        return 0
    from connector.settings import load_settings

    settings = load_settings()
    if settings.STATE_KEY is None:
        settings.require("STATE_KEY")
    done = tenant_commands.rotate_key(settings)
    print(f"sealed with the first key of STATE_KEY: {done['installs']} app install(s), {done['tokens']} amoCRM "
          f"token pair(s), {done['settings']} secret tenant setting(s) in {done['states']} tenant state(s); "
          "older keys may now be dropped from STATE_KEY")
    return 0


COMMANDS = {"install": cmd_install, "serve": cmd_serve, "schedule": cmd_schedule, "worker": cmd_worker, "report": cmd_report, "sync": cmd_sync, "demo": cmd_demo, "analyze": cmd_analyze, "playbook": cmd_playbook,
            "emulator": cmd_emulator, "state": cmd_state, "amocrm": cmd_amocrm,
            "tenants": tenant_commands.cmd_tenants}

__all__ = ["main", "InputError"]
