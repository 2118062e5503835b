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

from connector.cli import render_sync, today_in
from connector.tables import table

ITEMS_PER_REQUEST = 2500  # Doc: settings/how-to-call-rest-api/batch.md - 50 commands x 50 rows


def lower_bound(counts: dict[str, int]) -> int:
    """The fewest requests that can carry these list items: each list needs ceil(n / 2,500)."""
    return sum(max(1, math.ceil(n / ITEMS_PER_REQUEST)) for n in counts.values())


def run_demo(*, crm: str, customers: int, seed: int, as_of: date | None, fmt: str) -> int:
    if crm != "bitrix":
        print("error: the amoCRM emulator is not built yet; use --crm bitrix", file=sys.stderr)
        return 2
    from connector.bitrix import BitrixAdapter
    from connector.bitrix.emulator import BitrixEmulator
    from connector.redact import setup_logging
    from connector.state import State
    from connector.sync import run_sync
    from playbooks import load_playbook

    setup_logging("WARNING")
    today = as_of or today_in(None)
    playbook = load_playbook()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="repeat-sales-demo-") as tmp, \
            BitrixEmulator(customers=customers, seed=seed, today=today, rate_limit=True) as emu:
        say(f"Bitrix24 portal emulator at {emu.base_url} ({customers} customers, seed {seed}, rate limit on)")
        state = State(Path(tmp) / "state.db")
        runs = []
        for n in (1, 2):
            adapter = BitrixAdapter(emu.webhook_url)
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
        items = {"contacts": portal["objects"].get("contact", 0),
                 "won deals": pulled.get("purchases", 0),
                 "product rows": pulled.get("line_items", 0),
                 "products": pulled.get("products", 0)}
        bound = lower_bound(items)
        summary = {
            "first_run": {"requests": first.stats["requests"], "written": first.stats["written"],
                          "planned": first.stats["planned"]},
            "second_run": {"requests": second.stats["requests"], "written": second.stats["written"],
                           "skipped": second.stats["skipped"]},
            "pull_items": items, "pull_lower_bound_requests": bound,
            "tasks_in_portal": portal["objects"].get("task", 0),
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
                  + ", ".join(f"{v} {k}" for k, v in items.items()) + " (2,500 list items per request)")
            print(f"Tasks now in the portal: {summary['tasks_in_portal']}")
            verdict = "wrote nothing" if second.stats["written"] == 0 else "WROTE AGAIN (bug)"
            print(f"The second run {verdict}: every action key was already applied.")
        return 0 if second.stats["written"] == 0 and not first.failed else 1

