"""Benchmark: the sync's evaluation of a big snapshot (segments, metrics, model, plan), without the CRM.

The state file gets the synthetic shop (emulators.shop, the one the CRM emulators serve) straight into
the snapshot, and one recorded sync's ledger (so reactivation chains and frequency caps have a history);
it is built once and reused. Then `connector.sync.evaluate_snapshot` runs as the sync runs it, as of
the day after that sync. The code measured is whatever `connector` imports: run it with PYTHONPATH
pointing at the checkout to measure (main before, a branch after) to pair two versions.

    python benchmarks/sync_evaluate.py --customers 20000 --state /tmp/s20k.db      # build once, evaluate
    PYTHONPATH=<checkout> /usr/bin/time -v python benchmarks/sync_evaluate.py --state /tmp/s20k.db

One JSON line: {"customers", "purchases", "planned", "seconds", "cpu_seconds", "peak_rss_mb"}; with
`--processes 2` (settings SYNC_PROCESSES) also "child_cpu_seconds" and "child_peak_rss_mb" of the child
that planned part of the due customers (connector.forked; its peak counts the pages it shares with this
process). With `--phases`, "phases" too: the CPU seconds of each step of connector.evaluate_columns in
this process (the plan's own reading of its due customers as objects counted apart, and out of the
plan's figure).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: the code measured comes first

ACCOUNT = "shop.example"
SHOP_DAY = date(2026, 6, 15)  # the shop's history is anchored here (as in the tests)


def build(path: Path, customers: int, seed: int) -> None:
    """The shop in the snapshot and one sync's ledger on SHOP_DAY (what it planned for that day, done)."""
    from connector.crm import CrmRef
    from connector.state import State
    from playbooks import PlanHistory, evaluate, load_playbook
    from tests.report_browser.shop_state import shop_page

    state = State(path)
    run = state.start_run(ACCOUNT, "sync", False)
    state.absorb(ACCOUNT, shop_page(customers, seed, SHOP_DAY), run)
    state.finish_run(run, {})
    run = state.start_run(ACCOUNT, "sync", False)
    ev = evaluate(state.customers(ACCOUNT, lean=True), SHOP_DAY, load_playbook(lang="ru"),
                  history=PlanHistory(state.applied_dates(ACCOUNT)), catalogue=state.products(ACCOUNT).values(),
                  predict=False)
    todo = [a for a in ev.plan if a.due <= SHOP_DAY]
    state.mark_pending(ACCOUNT, todo)
    state.mark_done(ACCOUNT, {a.key: CrmRef("task", f"t{i}") for i, a in enumerate(todo)}, SHOP_DAY)
    state.finish_run(run, {"written": len(todo)})
    state.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="the state file (built when missing)")
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--phases", action="store_true", help="the CPU seconds of each step of the evaluation")
    ap.add_argument("--processes", type=int, choices=(1, 2), default=1,
                    help="settings SYNC_PROCESSES: 2 plans part of the due customers in a forked child")
    args = ap.parse_args()
    path = Path(args.state)
    if not path.exists():
        build(path, args.customers, args.seed)
    from connector import sync
    from connector.state import State
    from playbooks import load_playbook

    phases = timed_phases() if args.phases else None
    state = State(path)
    playbook = load_playbook(lang="ru")
    run = SimpleNamespace(state=state, account=ACCOUNT, today=SHOP_DAY + timedelta(days=1), referral_secret="",
                          processes=args.processes)
    started, cpu = time.perf_counter(), time.process_time()
    evaluation = sync.evaluate_snapshot(run, playbook)
    out = {"customers": len(evaluation.customers), "purchases": evaluation.metrics.get("purchases"),
           "planned": len(evaluation.plan), "seconds": round(time.perf_counter() - started, 2),
           "cpu_seconds": round(time.process_time() - cpu, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.ru_utime + child.ru_stime:  # the plan's child (connector.forked): its CPU, its peak (shared pages too)
        out["child_cpu_seconds"] = round(child.ru_utime + child.ru_stime, 2)
        out["child_peak_rss_mb"] = round(child.ru_maxrss / 1024, 1)
    if phases is not None:
        phases["plan_due"] = phases.get("plan_due", 0.0) - phases.get("read_customers", 0.0)
        out["phases"] = {k: round(v, 2) for k, v in phases.items()}
    state.close()
    print(json.dumps(out))


PHASES = {"connector.evaluate_columns": ("read_purchases", "_line_items", "read_birthdays", "segment", "predict_into",
                                        "metrics", "director_from_columns", "extras", "plan_due", "customer_reports"),
          "connector.snapshot_columns": ("read_customers",)}


def timed_phases() -> dict[str, float]:
    """Wrap the evaluation's steps (module names, as connector.evaluate_columns calls them) to add up
    each one's CPU seconds; the plan is a generator, timed while it runs."""
    import importlib

    spent: dict[str, float] = {}

    def wrap(fn, name):
        def call(*args, **kwargs):
            started = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - started

        def each(*args, **kwargs):
            steps = fn(*args, **kwargs)
            while True:
                started = time.process_time()
                try:
                    item = next(steps)
                except StopIteration:
                    return
                finally:
                    spent[name] = spent.get(name, 0.0) + time.process_time() - started
                yield item

        return each if name == "plan_due" else call

    for module, names in PHASES.items():
        mod = importlib.import_module(module)
        for name in names:
            setattr(mod, name, wrap(getattr(mod, name), name))
    return spent


if __name__ == "__main__":
    main()
