"""Benchmark: a big portal synced at the API's limit, in bounded memory, measured.

Seeds an emulator (its own process, rate limit on, time-scaled) with the synthetic shop, runs a
full sync (pull -> evaluate -> write the plan), changes 1% of the won deals through the API, runs
an incremental sync, then compares the pull with the straightforward fast-bitrix24 script on a
sample portal. Each sync runs in a child process, so its peak RSS is its own. One JSON line a run.

    python benchmarks/scale_sync.py                       # Bitrix24, 200,000 customers (~1.2M deals), ~22 min
    python benchmarks/scale_sync.py --crm amocrm --naive-customers 0     # amoCRM, same 200,000 customers
    python benchmarks/scale_sync.py --naive-customers 0 --offset-reading # + the old start+50 paging, same portal

Bitrix24 runs under the emulator's real cost model by default (`--cost-model real`): every call is
billed the portal's operating time, a method past 480 s in 10 minutes is refused, a request past
60 s is cut; each sync line then says the highest 10-minute sum any method reached.

Lines: {"run": "setup"|"full"|"incremental"|"offset_reading"|"naive_vs_ours", "crm", "items", "requests",
"lower_bound_requests", "ratio", "wall_seconds", "api_seconds" (requests at the real limit),
"peak_rss_mb", "operating_peak_seconds", ...}; see BENCHMARKS.md for the fields and the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_crm import (  # noqa: E402
    AMOCRM_RPS,
    BITRIX_RPS,
    ROOT,
    Emulator,
    make_adapter,
    naive_bitrix_pull,
    offset_bitrix_read,
    pull_bound,
    start_emulator,
)
from scale_crm import change_deals as change_deals_via_api  # noqa: E402

DEFAULT_TODAY = "2026-06-15"  # the shop's history is anchored here (as in the tests): same figures every run


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- the sync, in a child process ------------------------------------------------------------------

def sync_child(args: argparse.Namespace) -> None:
    """One `run_sync` against the emulator, its phases timed; prints one JSON object."""
    import connector.sync as sync
    from connector.redact import setup_logging
    from connector.state import State
    from playbooks import load_playbook

    setup_logging("WARNING")
    marks: dict[str, float] = {}
    real_pull, real_evaluate = sync.pull_into_state, sync.evaluate_snapshot

    def pull_into_state(*a, **kw):
        t = time.perf_counter()
        out = real_pull(*a, **kw)
        marks.update(pull_seconds=time.perf_counter() - t, rss_after_pull_mb=_peak_mb())
        return out

    def evaluate(*a, **kw):
        t = time.perf_counter()
        out = real_evaluate(*a, **kw)
        marks.update(evaluate_seconds=time.perf_counter() - t, rss_after_evaluate_mb=_peak_mb())
        return out

    sync.pull_into_state, sync.evaluate_snapshot = pull_into_state, evaluate
    emulator = Emulator(args.crm, process=None, settings=json.loads(args.settings))  # type: ignore[arg-type]
    adapter = make_adapter(emulator, args.time_scale)
    state = State(args.state)
    started = time.perf_counter()
    try:
        report = sync.run_sync(adapter, state, load_playbook(), today=date.fromisoformat(args.today),
                               full=args.mode == "full")
    finally:
        adapter.close()
        state.close()
    stats = report.stats
    budget = getattr(getattr(adapter, "client", None), "budget", None)
    out = {"mode": args.mode, "pulled": stats.get("pulled", {}), "requests": stats.get("requests", 0),
           "waited_for_operating_seconds": round(budget.waited, 1) if budget is not None else None,
           "planned": stats.get("planned", 0), "written": stats.get("written", 0), "failed": stats.get("failed", 0),
           "skipped": stats.get("skipped", 0), "customers_evaluated": len(report.evaluation.customers),
           "seconds": round(time.perf_counter() - started, 1),
           **{k: round(v, 1) for k, v in marks.items()}, "peak_rss_mb": _peak_mb()}
    print(json.dumps(out))


def run_child(crm: str, emulator, mode: str, state: Path, today: str, time_scale: float) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--crm", crm, "--state", str(state), "--today", today,
               "--time-scale", str(time_scale), "--settings", json.dumps(emulator.settings)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the {mode} sync failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the runs ----------------------------------------------------------------------------------------

def report_sync(crm: str, emulator, result: dict, time_scale: float, *, changed: int | None = None) -> dict:
    """The JSON line of one sync: the pull against its lower bound, evaluate, and the write-back."""
    stats = emulator.stats()
    pulled = result["pulled"]
    items, bound = pull_bound(crm, pulled)
    pull_requests = pulled.get("requests", 0)
    write_requests = stats["requests_total"] - pull_requests
    line = {"bench": "scale_sync", "run": result["mode"], "crm": crm, "items": items, "requests": pull_requests,
            "lower_bound_requests": bound, "ratio": round(pull_requests / bound, 3) if bound else None,
            "wall_seconds": result.get("pull_seconds"),
            "api_seconds": round(pull_requests / (BITRIX_RPS if crm == "bitrix" else AMOCRM_RPS)),
            "time_scale": time_scale, "peak_rss_mb": result["peak_rss_mb"],
            "rss_after_pull_mb": result.get("rss_after_pull_mb"),
            "evaluate": {"customers": result["customers_evaluated"], "seconds": result.get("evaluate_seconds"),
                         "peak_rss_mb": result.get("rss_after_evaluate_mb")},
            "write": {"planned": result["planned"], "written": result["written"], "failed": result["failed"],
                      "skipped": result["skipped"], "requests": write_requests,
                      "requests_per_written_action": round(write_requests / result["written"], 4)
                      if result["written"] else None},
            "sync_seconds": result["seconds"], "emulator_requests_total": stats["requests_total"]}
    if changed is not None:
        line["changed_deals"] = changed
        line["overlap_rereads"] = max(0, pulled.get("purchases", 0) + pulled.get("removed", 0) - changed)
    if crm == "bitrix":  # pages per list against ceil(items / 50): product rows never cost a call per deal
        commands, lists = stats.get("commands", {}), stats.get("list_calls", {})
        pages = {"customers": "crm.contact.list", "deals": "crm.deal.list", "product_rows": "crm.item.productrow.list"}
        line["commands"] = {k: {"sent": commands.get(m, 0), "pages_needed": max(1, math.ceil(items[k] / 50)),
                                "past_the_end": lists.get(m, {}).get("unresolved", 0),
                                "counted_or_offset": lists.get(m, {}).get("counted", 0) + lists.get(m, {}).get("offset", 0)}
                            for k, m in pages.items()}
        operating = stats.get("operating", {})
        line["operating_peak_seconds"] = {m: v["peak"] for m, v in sorted(operating.items(), key=lambda x: -x[1]["peak"])[:6]}
        line["operating_limit_seconds"] = 480
        line["refused"] = stats.get("refused", {})
        line["waited_for_operating_seconds"] = result.get("waited_for_operating_seconds")
    return line


def won_deal_sample(state: Path, crm: str, share: float) -> list[str]:
    """Every (1/share)-th won deal of the snapshot, by id: the deals users will change."""
    db = sqlite3.connect(str(state))
    try:
        ids = [r[0] for r in db.execute("SELECT id FROM purchases ORDER BY CAST(id AS INTEGER)")]
    finally:
        db.close()
    step = max(1, round(1 / share))
    return ids[step - 1::step]


def bench_crm(args: argparse.Namespace) -> None:
    emit = lambda line: print(json.dumps(line, ensure_ascii=False), flush=True)  # noqa: E731
    emulator = start_emulator(args.crm, args.customers, args.seed, args.today, args.time_scale, args.cost_model)
    try:
        stats = emulator.stats()
        emit({"bench": "scale_sync", "run": "setup", "crm": args.crm, "customers": args.customers,
              "objects": stats["objects"], "time_scale": args.time_scale, "seed": args.seed, "today": args.today,
              "cost_model": args.cost_model if args.crm == "bitrix" else None,
              "emulator_start_seconds": emulator.started_seconds, "emulator_peak_rss_mb": emulator.rss_mb()})
        with tempfile.TemporaryDirectory(prefix="rs-scale-") as tmp:
            state = Path(tmp) / "state.db"
            emulator.reset_stats()
            full = run_child(args.crm, emulator, "full", state, args.today, args.time_scale)
            emit(report_sync(args.crm, emulator, full, args.time_scale))
            sample = won_deal_sample(state, args.crm, args.changed)
            started = time.monotonic()
            change_requests = change_deals_via_api(emulator, sample, args.time_scale)
            emit({"bench": "scale_sync", "run": "change", "crm": args.crm, "changed_deals": len(sample),
                  "requests": change_requests, "wall_seconds": round(time.monotonic() - started, 1)})
            emulator.reset_stats()
            incremental = run_child(args.crm, emulator, "incremental", state, args.today, args.time_scale)
            emit(report_sync(args.crm, emulator, incremental, args.time_scale, changed=len(sample)))
        if args.crm == "bitrix" and args.offset_reading:
            emit(offset_reading(emulator, args))
    finally:
        emulator.stop()
    if args.crm == "bitrix" and args.naive_customers:
        emit(naive_vs_ours(args))


def offset_reading(emulator, args: argparse.Namespace) -> dict:
    """The same big portal read the old way (start = 0, 50, 100...), its operating time fresh."""
    emulator.reset_stats()
    read = offset_bitrix_read(emulator, args.time_scale)
    stats = emulator.stats()
    lists = stats.get("list_calls", {}).get("crm.deal.list", {})
    return {"bench": "scale_sync", "run": "offset_reading", "crm": "bitrix", "cost_model": args.cost_model,
            "time_scale": args.time_scale, **read, "requests": stats["requests_total"],
            "deal_list_calls": {k: lists.get(k, 0) for k in ("counted", "offset", "keyset")},
            "operating_peak_seconds": {m: v["peak"] for m, v in stats.get("operating", {}).items()},
            "refused": stats.get("refused", {})}


def naive_vs_ours(args: argparse.Namespace) -> dict:
    """The same portal pulled twice: our adapter, then fast-bitrix24 get_all + one productrows.get per deal.

    A count of requests, so the portal bills no operating time (`--cost-model off`): under the real
    model the naive script's offset pages are cut at 60 s (see the offset_reading line)."""
    emulator = start_emulator("bitrix", args.naive_customers, args.seed, args.today, args.time_scale, "off")
    try:
        emulator.reset_stats()
        adapter = make_adapter(emulator, args.time_scale)
        started = time.monotonic()
        counts = {"customers": 0, "purchases": 0, "line_items": 0, "products": 0}
        try:
            for page in adapter.pull(None):
                counts["customers"] += len(page.customers)
                counts["purchases"] += len(page.purchases)
                counts["line_items"] += sum(len(p.items) for p in page.purchases)
                counts["products"] += len(page.products)
        finally:
            adapter.close()
        ours = {**counts, "requests": emulator.stats()["requests_total"], "seconds": round(time.monotonic() - started, 1)}
        emulator.reset_stats()
        naive = naive_bitrix_pull(emulator, args.time_scale)
        naive["requests"] = emulator.stats()["requests_total"]
    finally:
        emulator.stop()
    items, bound = pull_bound("bitrix", ours)
    return {"bench": "scale_sync", "run": "naive_vs_ours", "crm": "bitrix", "customers": args.naive_customers,
            "time_scale": args.time_scale, "items": items, "lower_bound_requests": bound, "ours": ours, "naive": naive,
            "requests_ratio": round(naive["requests"] / ours["requests"], 1),
            "wall_ratio": round(naive["seconds"] / ours["seconds"], 1) if ours["seconds"] else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crm", choices=("bitrix", "amocrm"), default="bitrix")
    ap.add_argument("--customers", type=int, default=200_000, help="shop size (200,000 -> ~1.2M deals)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--today", default=DEFAULT_TODAY)
    ap.add_argument("--time-scale", type=float, default=None,
                    help="rate limits run this many times faster (default: 3 for Bitrix24, 4 for amoCRM)")
    ap.add_argument("--changed", type=float, default=0.01, help="share of won deals changed before the incremental")
    ap.add_argument("--cost-model", choices=("real", "off"), default="real",
                    help="Bitrix24 emulator: bill the portal's operating time (real) or a fixed time (off)")
    ap.add_argument("--offset-reading", action="store_true",
                    help="Bitrix24: also read the won deals the old way (start+50, fast-bitrix24 get_all) on the same portal")
    ap.add_argument("--naive-customers", type=int, default=20_000,
                    help="portal size for the fast-bitrix24 comparison (0: skip; it costs one command per deal)")
    ap.add_argument("--child", choices=("full", "incremental"), help=argparse.SUPPRESS)
    ap.add_argument("--state", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.time_scale is None:
        args.time_scale = 3.0 if args.crm == "bitrix" else 4.0
    if args.child:
        args.mode = args.child
        sync_child(args)
    else:
        bench_crm(args)


if __name__ == "__main__":
    main()
