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

from connector import clock
from connector.cli import render_sync
from connector.tables import table

# Bitrix24: 50 commands x 50 rows per batch (Doc: settings/how-to-call-rest-api/batch.md);
# amoCRM: 250 per page (Doc: amoCRM API v4, limitations)
ITEMS_PER_REQUEST = {"bitrix": 2500, "amocrm": 250}


def lower_bound(counts: dict[str, int], per_request: int) -> int:
    """The fewest requests that can carry these list items: each list needs ceil(n / per_request)."""
    return sum(max(1, math.ceil(n / per_request)) for n in counts.values())


def emulator_and_adapter(crm: str):
    """The built-in emulator class for a CRM, and how to point that CRM's real adapter at it."""
    if crm == "amocrm":
        from connector.amocrm import AmoAdapter
        from emulators.amocrm import AmoEmulator
        from emulators.amocrm.seed import GENDER_FIELD_ID

        # the account's "Пол" field, as an admin names it in AMOCRM_GENDER_FIELD
        return AmoEmulator, lambda emu: AmoAdapter(emu.base_url, access_token=emu.access_token,
                                                   gender_field=str(GENDER_FIELD_ID))
    from connector.bitrix import BitrixAdapter
    from emulators.bitrix import BitrixEmulator

    return BitrixEmulator, lambda emu: BitrixAdapter(emu.webhook_url)


def automation_templates(emu, playbook) -> int:
    """Stand in for an admin who built the playbook's automations in the portal's designer."""
    from emulators.bitrix.writeback_methods import add_workflow_template

    names = sorted(set(_templates(playbook.rules)))
    for name in names:
        add_workflow_template(emu.store, name)
    return len(names)


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
    from playbooks import load_playbook

    setup_logging("WARNING")
    today = as_of or clock.today()
    playbook = load_playbook()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    emulator_class, connect = emulator_and_adapter(crm)
    crm_name = "amoCRM account" if crm == "amocrm" else "Bitrix24 portal"
    with tempfile.TemporaryDirectory(prefix="repeat-sales-demo-") as tmp, \
            emulator_class(customers=customers, seed=seed, today=today, rate_limit=True) as emu:
        say(f"{crm_name} emulator at {emu.base_url} ({customers} customers, seed {seed}, rate limit on)")
        state = State(Path(tmp) / "state.db")
        if crm == "bitrix":
            made_templates = automation_templates(emu, playbook)
            say(f"the portal's admin saved {made_templates} business-process templates the playbook starts")
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
                                  progress=lambda msg: say(f"  .. {msg}"))
            finally:
                adapter.close()
            runs.append(report)
            if fmt == "table":
                print(f"\n=== Run {n} ===")
                print(render_sync(report, dry_run=False, brief=n == 2))
        state.close()
        portal = emu.stats()
        first, second = runs
        pulled = first.stats["pulled"]
        items = {"contacts": pulled.get("customers", 0), "won deals": pulled.get("purchases", 0),
                 "product rows": pulled.get("line_items", 0), "products": pulled.get("products", 0)}
        if crm == "amocrm":  # amoCRM sends a lead's products inside the lead (with=catalog_elements)
            items.pop("product rows")
        bound = lower_bound(items, ITEMS_PER_REQUEST[crm])
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
                  + f" ({ITEMS_PER_REQUEST[crm]:,} list items per request); the pull used "
                  + f"{pulled.get('requests', 0)}")
            print(f"Tasks repeat-sales created in the CRM: {summary['tasks_created']} (each marked rs:<key>)")
            verdict = "wrote nothing" if second.stats["written"] == 0 else "WROTE AGAIN (bug)"
            print(f"The second run {verdict}: every action key was already applied.")
        return 0 if second.stats["written"] == 0 and not first.failed else 1

