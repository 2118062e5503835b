"""Benchmark: the pull's database side - the synthetic shop's purchases absorbed into a new state in
pages of 1,000, as the sync absorbs a CRM's pages (State.absorb: the purchase rows, their indexes,
their line items). No HTTP: the CRM's own time is elsewhere (benchmarks/scale_sync.py).

    PYTHONPATH=<checkout> python benchmarks/absorb_pages.py --customers 20000 --state /tmp/absorb.db

One JSON line: {"purchases", "cpu_seconds", "seconds", "file_mb"}. The state file is made anew.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: the code measured comes first

ACCOUNT = "shop.example"
PAGE = 1000


def main() -> None:
    from connector.crm import PullPage
    from connector.state import State
    from tests.report_browser.shop_state import shop_page

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="the state file to make (removed first)")
    ap.add_argument("--customers", type=int, default=20_000)
    args = ap.parse_args()
    path = Path(args.state)
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    purchases = shop_page(args.customers, 11, date(2026, 6, 15)).purchases
    state = State(path)
    run = state.start_run(ACCOUNT, "sync", False)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(purchases), PAGE):
        state.absorb(ACCOUNT, PullPage(purchases=purchases[i:i + PAGE]), run)
    out = {"purchases": len(purchases), "cpu_seconds": round(time.process_time() - cpu, 2),
           "seconds": round(time.perf_counter() - wall, 2)}
    state.close()
    out["file_mb"] = round(path.stat().st_size / 1e6, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
