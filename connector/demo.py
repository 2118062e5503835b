"""`repeat-sales demo`: the built-in portal emulator, the real adapter over HTTP, two full cycles.

The second cycle must write nothing: that is the exactly-once promise, shown to the user.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from datetime import date
from pathlib import Path

from connector import clock, registry
from connector.render import render_sync
from connector.tables import table
from playbooks.words import names_for

ITEMS_PER_REQUEST = {crm.name: crm.items_per_request for crm in registry.CRMS.values()}


def lower_bound(counts: dict[str, int], per_request: int) -> int:
    """The fewest requests that can carry these list items: each list needs ceil(n / per_request)."""
    return sum(max(1, math.ceil(n / per_request)) for n in counts.values())


def automation_templates(playbook) -> list[str]:
    """The automations the playbook's rules start, which an admin builds in the CRM by hand."""
    return sorted(set(_templates(playbook.rules)))


def _templates(node) -> list[str]:
    """Every `template` a playbook's rules name, wherever in the rule's config it sits."""
    if isinstance(node, dict):
        return [t for v in node.values() for t in _templates(v)]
    if isinstance(node, list | tuple):
        return [t for v in node for t in _templates(v)]
    if hasattr(node, "__dataclass_fields__"):
        found = [str(node.template)] if getattr(node, "template", None) else []
        return found + [t for name in node.__dataclass_fields__ for t in _templates(getattr(node, name))]
    return []


def run_demo(*, crm: str, customers: int, seed: int, as_of: date | None, fmt: str) -> int:
    from connector.redact import setup_logging
    from connector.state import State
    from connector.sync import run_sync
    from emulators.shop import DEMO_REFERRAL_SECRET
    from playbooks import load_playbook

    setup_logging("WARNING")
    today = as_of or clock.today()
    from emulators.shop_extras import PLAYBOOK

    playbook = load_playbook(PLAYBOOK)  # the default one, naming the demo shop's ladders, seasons and sales

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    entry = registry.crm(crm)
    connect = entry.emulated
    with tempfile.TemporaryDirectory(prefix="repeat-sales-demo-") as tmp, \
            entry.emulator_type()(customers=customers, seed=seed, today=today, rate_limit=True) as emu:
        say(f"{entry.title} emulator at {emu.base_url} ({customers} customers, seed {seed}, rate limit on)")
        state = State(Path(tmp) / "state.db")
        prepared = entry.prepare_emulator(emu, automation_templates(playbook))
        if prepared:
            say(prepared)
        installer = connect(emu)
        try:  # prepare the CRM as `repeat-sales install` does: card fields, repeat deals, automation
            made = installer.install()
        finally:
            installer.close()
        say(f"install: {len(made.created)} fields created, {len(made.existing)} already there")
        tasks_before = emu.stats()["objects"].get("task", 0)  # managers' own tasks, there before us
        runs = []
        for n in (1, 2):
            adapter = connect(emu)
            try:
                say(f"\n== run {n}: pull -> evaluate -> plan -> write ==")
                report = run_sync(adapter, state, playbook, today=today,
                                  progress=lambda msg: say(f"  .. {msg}"), referral_secret=DEMO_REFERRAL_SECRET)
            finally:
                adapter.close()
            runs.append(report)
            if fmt == "table":
                print(f"\n=== Run {n} ===")
                print(render_sync(report, dry_run=False, brief=n == 2, names=names_for(playbook)))
        state.close()
        portal = emu.stats()
        first, second = runs
        pulled = first.stats["pulled"]
        items = {"contacts": pulled.get("customers", 0), "won deals": pulled.get("purchases", 0),
                 "product rows": pulled.get("line_items", 0), "products": pulled.get("products", 0)}
        if not entry.line_items_apart:  # the CRM sends a purchase's products inside it
            items.pop("product rows")
        bound = lower_bound(items, entry.items_per_request)
        summary = {
            "first_run": {"requests": first.stats["requests"], "written": first.stats["written"],
                          "planned": first.stats["planned"], "written_by_kind": first.stats.get("written_by_kind", {})},
            "second_run": {"requests": second.stats["requests"], "written": second.stats["written"],
                           "skipped": second.stats["skipped"]},
            "pull_items": items, "pull_lower_bound_requests": bound, "pull_requests": pulled.get("requests", 0),
            "tasks_created": portal["objects"].get("task", 0) - tasks_before,
            "rules_cannot_run": first.stats.get("rules_cannot_run", []),
        }
        if fmt == "json":
            print(json.dumps(summary, ensure_ascii=False, indent=1))
        else:
            print("\n=== Summary ===")
            print(table(["", "run 1", "run 2"], [
                ("HTTP requests", first.stats["requests"], second.stats["requests"]),
                ("actions planned", first.stats["planned"], second.stats["planned"]),
                ("actions written", first.stats["written"], second.stats["written"]),
                ("already applied", first.stats["skipped"], second.stats["skipped"]),
            ]))
            print(f"\nPull lower bound: {bound} requests for "
                  + ", ".join(f"{v} {k}" for k, v in items.items())
                  + f" ({entry.items_per_request:,} list items per request); the pull used "
                  + f"{pulled.get('requests', 0)}")
            print(f"Tasks repeat-sales created in the CRM: {summary['tasks_created']} (each marked rs:<key>)")
            verdict = "wrote nothing" if second.stats["written"] == 0 else "WROTE AGAIN (bug)"
            print(f"The second run {verdict}: every action key was already applied.")
        return 0 if second.stats["written"] == 0 and not first.failed else 1

