"""Benchmark: amoCRM's incremental pull with the account's list filters on and off (issue 15, item 7).

Filtering is alpha in amoCRM: where `is_api_filter_enabled` is false the API ignores filters, so an
incremental pull cannot ask for "changed since". It reads `order[updated_at]=desc` until it passes the
cursor instead. For each mode this seeds an emulator in its own process (rate limit on, time-scaled),
takes the cursor a finished full pull would have saved (the account's newest `updated_at`), changes
1% of the won leads through the API, then runs the real adapter's incremental pull and counts its
requests. The target: filters off costs at most 2x the requests of filters on. One JSON line a run.

    python benchmarks/amocrm_filters.py                      # 200,000 customers (~1.08M won leads)
    python benchmarks/amocrm_filters.py --customers 20000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_crm import AMOCRM_RPS, ROOT, Emulator, change_deals, make_adapter, pull_bound  # noqa: E402

from connector.crm import Cursor  # noqa: E402
from emulators.shop import generate_shop  # noqa: E402

DEFAULT_TODAY = "2026-06-15"  # the shop's history is anchored here (as in the tests)
WITHIN = 2.0  # the target: filters off at most 2x the requests of filters on


def start(customers: int, seed: int, today: str, time_scale: float, api_filter: bool) -> Emulator:
    """`python -m emulators.amocrm ... --api-filter on|off` in its own process; returns once it serves."""
    args = [sys.executable, "-m", "emulators.amocrm", "--customers", str(customers), "--seed", str(seed),
            "--today", today, "--rate-limit", "on", "--requests-per-second", str(AMOCRM_RPS * time_scale),
            "--api-filter", "on" if api_filter else "off"]
    started = time.monotonic()
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    emulator = Emulator("amocrm", process)
    while not all(k in emulator.settings for k in ("AMOCRM_BASE_URL", "AMOCRM_ACCESS_TOKEN")):
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited with {process.wait()} before printing its settings")
        name, _, value = line.strip().partition("=")
        emulator.settings[name] = value
    emulator.started_seconds = round(time.monotonic() - started, 1)
    return emulator


def newest_change(adapter) -> int:
    """The cursor a finished full pull leaves: the newest `updated_at` of the contacts and the leads."""
    newest = 0
    for path, key in (("/api/v4/contacts", "contacts"), ("/api/v4/leads", "leads")):
        body = adapter.client.request("GET", path, params={"order[updated_at]": "desc", "limit": 1}) or {}
        rows = (body.get("_embedded") or {}).get(key) or []
        newest = max([newest, *(int(r.get("updated_at") or 0) for r in rows)])
    return newest


def bench_mode(args: argparse.Namespace, api_filter: bool, changed: list[str]) -> dict:
    emulator = start(args.customers, args.seed, args.today, args.time_scale, api_filter)
    try:
        adapter = make_adapter(emulator, args.time_scale)
        try:
            cursor = Cursor(str(newest_change(adapter)))
            change_requests = change_deals(emulator, changed, args.time_scale)
            emulator.reset_stats()
            counts = {"customers": 0, "purchases": 0, "removed": 0, "products": 0}
            seen: set[str] = set()
            before = adapter.request_count()
            started = time.monotonic()
            for page in adapter.pull(cursor):
                counts["customers"] += len(page.customers)
                counts["purchases"] += len(page.purchases)
                counts["removed"] += len(page.removed_purchase_ids)
                counts["products"] += len(page.products)
                seen.update(p.id for p in page.purchases)
            wall = round(time.monotonic() - started, 1)
            requests = adapter.request_count() - before
        finally:
            adapter.close()
        stats = emulator.stats()
    finally:
        emulator.stop()
    items, bound = pull_bound("amocrm", counts)
    return {"bench": "amocrm_filters", "run": "incremental", "api_filter": "on" if api_filter else "off",
            "customers": args.customers, "changed_leads": len(changed), "change_requests": change_requests,
            "items": items, "every_change_read": set(changed) <= seen, "requests": requests,
            "lower_bound_requests": bound, "requests_by_method": stats["requests"],
            # what reading the whole account would take: the cost of trusting a filter that is ignored
            "whole_account_pages": -(-stats["objects"]["lead"] // 250) - (-stats["objects"]["contact"] // 250),
            "wall_seconds": wall,
            "api_seconds": round(requests / AMOCRM_RPS, 1), "time_scale": args.time_scale,
            "emulator_start_seconds": emulator.started_seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--today", default=DEFAULT_TODAY)
    ap.add_argument("--time-scale", type=float, default=4.0, help="the rate limit runs this many times faster")
    ap.add_argument("--changed", type=float, default=0.01, help="share of won leads changed before the pull")
    args = ap.parse_args()
    shop = generate_shop(args.customers, args.seed, date.fromisoformat(args.today))
    won = sorted(d.id for d in shop.deals if d.won)
    step = max(1, round(1 / args.changed))
    changed = [str(i) for i in won[step - 1::step]]
    del shop, won
    lines = {}
    for api_filter in (True, False):
        lines[api_filter] = bench_mode(args, api_filter, changed)
        print(json.dumps(lines[api_filter], ensure_ascii=False), flush=True)
    on, off = lines[True]["requests"], lines[False]["requests"]
    print(json.dumps({"bench": "amocrm_filters", "run": "off_vs_on", "requests_on": on, "requests_off": off,
                      "ratio": round(off / on, 3), "within_target": off <= WITHIN * on}), flush=True)


if __name__ == "__main__":
    main()
