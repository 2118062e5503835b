"""`repeat-sales tenants list|show|set|unset|remove` and `sync --tenant ID | --all-tenants`: the portals a hosted app
serves, seen and synced from the command line (tables for people, `--format json` for machines)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from connector import clock, registry
from connector.errors import InputError, RepeatSalesError
from connector.tables import table

if TYPE_CHECKING:
    from connector import tenants


def add_parsers(sub) -> None:
    t = sub.add_parser("tenants", help="the portals and accounts the app serves: list, show one, remove one")
    t_sub = t.add_subparsers(dest="tenants_command", required=True)
    ls = t_sub.add_parser("list", help="every tenant: id, CRM, portal, when installed")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    show = t_sub.add_parser("show", help="one tenant: its install, state and last runs")
    show.add_argument("id")
    show.add_argument("--format", choices=["table", "json"], default="table")
    st = t_sub.add_parser("set", help="override settings for one tenant (TIMEZONE, PLAYBOOK_LANG, ...)")
    st.add_argument("id")
    st.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    un = t_sub.add_parser("unset", help="drop a tenant's override: the .env's value applies again")
    un.add_argument("id")
    un.add_argument("key")
    rm = t_sub.add_parser("remove", help="delete a tenant's tokens and state (asks for --yes)")
    rm.add_argument("id")
    rm.add_argument("--yes", action="store_true", help="yes, delete this tenant's tokens and state")
    rm.add_argument("--format", choices=["table", "json"], default="table")


def add_sync_flags(s) -> None:
    which = s.add_mutually_exclusive_group()
    which.add_argument("--tenant", metavar="ID", help="sync this tenant (`repeat-sales tenants list`); with "
                       "QUEUE_URL queued for the workers")
    which.add_argument("--all-tenants", action="store_true", help="sync every tenant, one after another; with "
                       "QUEUE_URL a sync of each queued for the workers")


def cmd_tenants(args) -> int:
    from connector import tenants
    from connector.settings import load_settings

    settings = load_settings()
    if args.tenants_command == "list":
        return _list(settings, args.format)
    tenants.check_id(args.id)
    if args.tenants_command == "show":
        return _show(settings, tenants.find(settings, args.id), args.format)
    if args.tenants_command in ("set", "unset"):
        return _override(settings, args)
    if not args.yes:
        raise InputError(f"removing tenant {args.id} deletes its tokens and state for good",
                         hint=f"run `repeat-sales tenants remove {args.id} --yes` to go ahead")
    gone = tenants.forget(settings, args.id)
    if args.format == "json":
        print(json.dumps({"tenant": args.id, "removed": gone}, ensure_ascii=False, indent=1))
    else:
        print(f"tenant {args.id} removed: {', '.join(gone) or 'nothing was stored'}")
    return 0


def _override(settings, args) -> int:
    """`tenants set ID KEY=VALUE...` / `tenants unset ID KEY` (connector/tenant_settings.py)."""
    from connector import tenant_settings, tenants

    if args.id == tenants.DEFAULT:
        raise InputError("the tenant default's settings are the .env's", hint="change them in the .env")
    tenants.find(settings, args.id)
    installs = tenants.registry(settings)
    if args.tenants_command == "set":
        done = tenant_settings.set_values(settings, installs, args.id, args.pairs)
        print(f"tenant {args.id}: " + ", ".join(f"{k}={v}" for k, v in done.items()))
    elif tenant_settings.unset(settings, installs, args.id, args.key):
        print(f"tenant {args.id}: {args.key.strip()} is the .env's again")
    else:
        print(f"tenant {args.id}: {args.key.strip()} was not overridden")
    return 0


def _iso(ts) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _list(settings, fmt: str) -> int:
    from connector import tenants

    found = tenants.known(settings)
    if fmt == "json":
        print(json.dumps({"tenants": [{"tenant": t.id, "crm": t.crm, "portal": t.portal, "ref": t.ref,
                                       "installed_at": _iso(t.installed_at)} for t in found]},
                         ensure_ascii=False, indent=1))
        return 0
    rows = [(t.id, t.crm, t.portal or "-", _iso(t.installed_at) or "-") for t in found]
    print(table(["tenant", "crm", "portal", "installed"], rows, title=f"Tenants: {len(found)}"))
    return 0


def _show(settings, tenant: tenants.Tenant, fmt: str) -> int:
    from connector import tenant_settings, tenants
    from connector.state import State
    from connector.webapp.pages.versions import latest

    stored = tenants.registry(settings).for_tenant(tenant.id).get(tenant.crm) or {}
    runs, version = [], None
    if tenants.state_exists(settings, tenant.id):
        state = State(tenants.state_target(settings, tenant.id))
        try:
            runs = state.last_runs(5)
            saved = latest(state)
            version = saved[0] if saved else None
        finally:
            state.close()
    shown = {"tenant": tenant.id, "crm": tenant.crm, "portal": tenant.portal, "ref": tenant.ref,
             "installed_at": _iso(tenant.installed_at), "state": tenants.where(settings, tenant.id), "playbook_version": version,
             "events": stored.get("events", []), "robots": stored.get("robots", []),
             "fields": len(stored.get("fields", [])), "missing": stored.get("missing", []),
             "settings": tenant_settings.shown(settings, tenants.registry(settings), tenant.id),
             "runs": [{"id": r["id"], "kind": r["kind"], "started": _iso(r["started"]),
                       "finished": _iso(r["finished"]), "written": (r.get("stats") or {}).get("written"),
                       "error": r.get("error")} for r in runs]}
    if fmt == "json":
        print(json.dumps(shown, ensure_ascii=False, indent=1))
        return 0
    about = [(k, _cell(shown[k])) for k in ("crm", "portal", "ref", "installed_at", "state", "playbook_version",
                                            "events", "robots", "fields", "missing")]
    print(table(["", "value"], about, title=f"Tenant {tenant.id}"))
    if shown["settings"]:
        print(table(["setting", "value"], list(shown["settings"].items()), title="\nOwn settings (the .env's else)"))
    print(table(["run", "kind", "started", "written", "error"],
                [(r["id"], r["kind"], r["started"], r["written"], r["error"] or "") for r in shown["runs"]],
                title="\nLast runs") if runs else "\nNo runs yet")
    return 0


def _cell(value) -> str:
    if value is None or value == [] or value == "":
        return "-"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def tenant_install(settings, tenant_id: str):
    """`install --tenant ID`: the tenant's settings and installs, for preparing its portal or account again (an
    admin deleted a field; the app's fields grew) on its own tokens."""
    from connector import tenants

    tenant = tenants.find(settings, tenants.check_id(tenant_id))
    own = tenants.settings_for(settings, tenant.id, None if tenant.id == tenants.DEFAULT else tenant.crm)
    return own, tenants.registry(settings).for_tenant(tenant.id)


def prepare_app_install(settings, installs):
    """`install --tenant ID` of a portal that installed the app: prepared again as its install did (events,
    robots, tabs, card fields, the SMS trigger) and what its install keeps refreshed (the field list `tenants
    show` counts). The card fields' InstallReport, robots and tabs in its `created`/`existing`; None when
    the tenant is no Bitrix24 app install (amoCRM, a webhook's portal: the adapter's install prepares it)."""
    from connector.bitrix.app import prepare_installed
    from connector.bitrix.app_auth import AppGrant

    stored = (installs.get("bitrix") or {}) if installs is not None and settings.CRM == "bitrix" else {}
    public_url = str(stored.get("public_url") or settings.APP_PUBLIC_URL or "").rstrip("/")
    if not stored.get("member_id") or not public_url:
        return None
    done = prepare_installed(settings, installs, public_url, AppGrant.from_json(stored).user_id)
    report = done["report"]
    for robot in done["robots"]:
        (report.created if robot in done["robots_added"] else report.existing).append(f"robot {robot}")
    return report


def rotate_key(settings) -> dict[str, int]:
    """`state rotate-key`: every tenant's secrets sealed with STATE_KEY's first key - the installs and the
    settings overrides (all in the registry) and the amoCRM token pairs in each tenant's own state."""
    from connector import tenant_settings, tenants
    from connector.amocrm.tokens import reseal_tokens

    sealer = settings.sealer()
    installs = tenants.registry(settings)
    done = {"installs": installs.reseal(), "settings": tenant_settings.reseal(installs), "tokens": 0, "states": 0}
    ids = {tenants.DEFAULT, *tenants.stored_tenants(settings), *(t.id for t in tenants.known(settings, installs))}
    for tenant in sorted(ids, key=lambda t: (t != tenants.DEFAULT, t)):
        if not tenants.state_exists(settings, tenant):
            continue
        done["tokens"] += reseal_tokens(tenants.state_target(settings, tenant), sealer)
        done["states"] += 1
    return done


# --- sync ------------------------------------------------------------------------------------------


HERE_ONLY = ("dry_run", "full", "as_of", "write_as_of", "allow_blank_cards")  # what a queued sync cannot carry


def cmd_sync_tenants(args, written_day, progress) -> int:
    """`sync --tenant ID` / `--all-tenants`: each tenant's sync with its own tokens, state and playbook; a
    failing tenant is reported and the others still run (exit 1 if any failed). With QUEUE_URL each sync is
    queued for the workers (one at a time per tenant, the portal's budget shared) and the command returns;
    a preview or a one-off (--dry-run, --full, --as-of, --allow-blank-cards) still runs here."""
    from connector import tenants
    from connector.redact import setup_logging
    from connector.render import render_sync
    from connector.settings import load_settings
    from playbooks.words import names_for

    settings = load_settings()
    setup_logging("WARNING" if args.format == "json" else settings.LOG_LEVEL)
    chosen = tenants.known(settings) if args.all_tenants else [tenants.find(settings, tenants.check_id(args.tenant))]
    if args.crm:
        chosen = [t for t in chosen if t.crm == args.crm]
    if settings.QUEUE_URL is not None and not any(getattr(args, flag, None) for flag in HERE_ONLY):
        return queue_syncs(settings, chosen, args.format)
    done, failed = [], False
    for tenant in chosen:
        try:
            report, crm_id, playbook, dry_run = sync_tenant(settings, tenant, args, written_day, progress)
        except RepeatSalesError as exc:  # this tenant's CRM or state failed: say so, go on with the next
            if not args.all_tenants:
                raise
            failed = True
            done.append({"tenant": tenant.id, "crm": tenant.crm, "portal": tenant.portal, "error": str(exc)})
            if args.format != "json":
                print(f"\ntenant {tenant.id} ({tenant.portal or tenant.crm}): error: {exc}")
            continue
        failed = failed or bool(report.error or report.failed)
        done.append({"tenant": tenant.id, "crm": tenant.crm, "portal": tenant.portal, **report.to_json(crm_id)})
        if args.format != "json":
            print(f"\ntenant {tenant.id} ({tenant.portal or tenant.crm})")
            print(render_sync(report, dry_run=dry_run, names=names_for(playbook)))
        if report.error:
            print(f"error: tenant {tenant.id}: {report.error}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"tenants": done}, ensure_ascii=False, indent=1))
    return 1 if failed else 0


def queue_syncs(settings, chosen: list[tenants.Tenant], fmt: str) -> int:
    """A sync of each tenant kept in the inbox and queued for `repeat-sales worker`; what was queued. A queue
    away now only delays it: the inbox has it and the workers' sweep queues it (exit 0 either way)."""
    from connector.jobs.broker import JOBS, JobQueue

    queue = JobQueue(settings)
    done = []
    for tenant in chosen:
        entry, new = queue.inbox.put_sync(tenant.id, {"reason": "cli", "tenant_crm": tenant.crm})
        status = "joins a sync already waiting for a worker"
        if new:
            status = "queued" if queue.send(entry, tenant.id, "sync", JOBS) else "kept; the workers' sweep queues it"
        done.append({"tenant": tenant.id, "crm": tenant.crm, "portal": tenant.portal, "queued": True, "job": entry,
                     "status": status})
    if fmt == "json":
        print(json.dumps({"tenants": done}, ensure_ascii=False, indent=1))
    else:
        rows = [(d["tenant"], d["crm"], d["portal"] or "-", d["job"], d["status"]) for d in done]
        print(table(["tenant", "crm", "portal", "job", "status"], rows,
                    title=f"Syncs queued for the workers: {len(done)}"))
    return 0


def sync_tenant(settings, tenant: tenants.Tenant, args, written_day, progress):
    """One tenant's sync, now, in this process (the call a job queue re-points to queue it instead)."""
    from connector import tenants
    from connector.settings import secret_text
    from connector.state import State
    from connector.sync import run_sync
    from connector.webapp.pages.versions import latest_playbook
    from playbooks import load_playbook

    own = tenants.settings_for(settings, tenant.id, None if tenant.id == tenants.DEFAULT else tenant.crm)
    saved = latest_playbook(own.state_target)  # what the tenant's admin saved on the settings page wins
    playbook = saved[1] if saved else load_playbook(own.PLAYBOOK, lang=own.PLAYBOOK_LANG)
    dry_run = args.dry_run or own.DRY_RUN
    today = written_day(args.as_of, clock.today(own.TIMEZONE), dry_run=dry_run, write_as_of=args.write_as_of)
    state = State(own.state_target)
    adapter = registry.make_adapter(own, tenants.registry(settings).for_tenant(tenant.id))
    try:
        report = run_sync(adapter, state, playbook, today=today, dry_run=dry_run, full=args.full,
                          progress=progress(args.format), allow_blank_cards=args.allow_blank_cards,
                          referral_secret=secret_text(own.REFERRAL_SECRET))
    finally:
        adapter.close()
        state.close()
    return report, adapter.crm_id, playbook, dry_run
