"""Benchmark: jobs per second through Redis with 1 and 2 `repeat-sales worker` processes (issue 19, part 3).

One emulated Bitrix24 portal with the app installed through the queue, then a backlog of N robot calls
(each reads its customer from the portal and answers through bizproc.event.send; robots need no tenant
lock, so they are the jobs that scale with workers) queued while no worker runs. Then W workers start;
jobs/s = N / (last done - first started), from the inbox, so worker start-up is not counted. With
`--rate-limit` the portal's leaky bucket is on (50 burst, `--drain` per second) and the workers share
it through Redis; the emulator's count of 503 answers is reported. One JSON line per run.

    python benchmarks/queue_jobs.py                        # 1 and 2 workers, 60 robot calls, no rate limit
    python benchmarks/queue_jobs.py --rate-limit --drain 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "queue"))

from queue_support import (  # noqa: E402
    CUSTOMERS,
    SEED,
    TODAY,
    RedisServer,
    Workers,
    all_done,
    bitrix_app_values,
    inbox_rows,
    wait_for,
)

from connector.settings import load_settings  # noqa: E402
from connector.webapp import WebApp  # noqa: E402
from emulators.bitrix import BitrixEmulator  # noqa: E402


def run(workers: int, calls: int, rate_limit: bool, drain: float, tmp: Path) -> dict:
    redis = RedisServer(tmp / "redis").start()
    emu = BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, rate_limit=rate_limit, drain_per_second=drain)
    emu.start()
    budget = {"BITRIX_REQUESTS_PER_SECOND": drain, "BITRIX_REQUEST_POOL": 50} if rate_limit else {}
    values = bitrix_app_values(emu, tmp, LOG_LEVEL="WARNING", QUEUE_REDELIVER_SECONDS=600, **budget)
    db = Path(values["STATE_URL"].removeprefix("sqlite:///"))
    group = Workers(values, tmp)
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    try:
        first = group.start()
        assert emu.app.install(app.url + "/bitrix/install") == 200
        wait_for(lambda: all_done(db) and len(inbox_rows(db)) >= 2, 300)
        group.stop(first)
        emu.reset_stats()
        contacts = sorted(emu.store.contacts.rows)
        tokens = []
        for i in range(calls):
            deal = emu.add_deal(contacts[i % len(contacts)], won=True, amount=1000 + i, closed=datetime(2026, 6, 13))
            tokens.append(emu.app.run_robot("rs_classify_customer", f"DEAL_{deal}"))
        assert emu.app.outbound.wait_idle(120)
        for _ in range(workers):
            group.start()
        wait_for(lambda: all_done(db), 900, step=0.2)
        robots = [r for r in inbox_rows(db) if r["lane"] == "robots" and r["done_at"]]
        span = max(r["done_at"] for r in robots) - min(r["started_at"] for r in robots)
        answered = sum(1 for t in tokens if emu.app.returned(t))
        stats = emu.stats()
        return {"workers": workers, "robot_calls": calls, "answered": answered, "seconds": round(span, 2),
                "jobs_per_second": round(len(robots) / span, 2), "rate_limit": rate_limit,
                "drain_per_second": drain if rate_limit else None, "requests": stats["requests_total"],
                "answers_503": stats["rate_limited"]}
    finally:
        app.stop(timeout=30)
        group.stop()
        emu.stop()
        redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate-limit", action="store_true")
    parser.add_argument("--drain", type=float, default=2.0)
    args = parser.parse_args()
    for n in args.workers:
        with tempfile.TemporaryDirectory(prefix="rs-queue-bench-") as tmp:
            print(json.dumps(run(n, args.calls, args.rate_limit, args.drain, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
