"""Benchmark: read a 1,000,000-row transactions CSV and evaluate the default playbook, in-process.

Prints one JSON line: {"bench": "analyze_csv", "rows", "customers", "seconds", "peak_rss_mb", ...}.
The file is generated deterministically (seeded) in a temporary directory and removed after.
Usage: python benchmarks/analyze_csv.py [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.transactions_csv import read_transactions  # noqa: E402
from playbooks import evaluate, load_playbook  # noqa: E402

AS_OF = date(2026, 6, 30)


def generate(path: Path, rows: int, seed: int) -> None:
    """~10 rows per customer; orders of 1-3 rows; 300 products in 20 categories; 3 years of history."""
    rng = random.Random(seed)
    customers = max(1, rows // 10)
    products = [(f"SKU-{i:04d}", f"cat-{i % 20}", round(rng.uniform(100, 5000), 2)) for i in range(300)]
    start = AS_OF - timedelta(days=3 * 365)
    written = 0
    order_no = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "date", "amount", "product", "quantity", "order_id", "category", "channel"])
        while written < rows:
            cid = f"C{rng.randrange(customers):06d}"
            day = start + timedelta(days=rng.randrange(3 * 365))
            order_no += 1
            for _ in range(min(rng.choice((1, 1, 2, 3)), rows - written)):
                sku, cat, price = rng.choice(products)
                qty = rng.choice((1, 1, 1, 2, 3))
                amount = -price if rng.random() < 0.01 else price * qty
                out.writerow([cid, day.isoformat(), f"{amount:.2f}", sku, qty, f"O{order_no}", cat, "web"])
                written += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transactions.csv"
        generate(path, args.rows, args.seed)
        playbook = load_playbook()
        t0 = time.perf_counter()
        customers = read_transactions(path)
        t1 = time.perf_counter()
        ev = evaluate(customers, AS_OF, playbook)
        t2 = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"bench": "analyze_csv", "rows": args.rows, "customers": len(customers),
                      "seconds": round(t2 - t0, 2), "read_seconds": round(t1 - t0, 2),
                      "evaluate_seconds": round(t2 - t1, 2), "planned": len(ev.plan),
                      "peak_rss_mb": round(peak_kb / 1024, 1)}))


if __name__ == "__main__":
    main()
