"""Benchmark (not a test): `repeat-sales analyze --format json` at growing row counts, time and peak memory.

The rows come from cloning a base CSV (default: benchmarks/analyze_csv.py's generator, 100,000 rows):
clone k renames every customer (`<id>~k`) and order (`<order>~k`), so each clone adds customers, never
longer histories. Each size runs `analyze` in a child under /usr/bin/time -v (peak RSS of its own) a few
times; the median is printed with the growth exponents of time and memory in rows (log-log slope
between the smallest and the largest size). `--code DIR` runs another checkout (e.g. /work/main) for
a paired before/after.
Usage: python benchmarks/analyze_scale.py [--rows 100000 1000000] [--runs 3] [--base FILE] [--code DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analyze_csv import AS_OF, generate  # noqa: E402


def clone(base: Path, out: Path, rows: int) -> None:
    """`rows` rows from copies of `base` with renamed customers and orders."""
    with open(base, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    cid, oid = header.index("customer_id"), header.index("order_id") if "order_id" in header else None
    written, k = 0, 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        while written < rows:
            for row in body[:rows - written]:
                if k:
                    row = list(row)
                    row[cid] = f"{row[cid]}~{k}"
                    if oid is not None and row[oid]:
                        row[oid] = f"{row[oid]}~{k}"
                w.writerow(row)
            written += min(len(body), rows - written)
            k += 1


def run(code: Path, path: Path, as_of: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one `analyze --format json` in a child."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "connector", "analyze", str(path), "--format", "json",
           "--as-of", as_of]
    done = subprocess.run(cmd, cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base", type=Path, help="a transactions CSV to clone (default: 100,000 generated rows)")
    ap.add_argument("--as-of", default=AS_OF.isoformat())
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.base
        if base is None:
            base = Path(tmp) / "base.csv"
            generate(base, 100_000, 7)
        for rows in args.rows:
            path = Path(tmp) / f"rows_{rows}.csv"
            clone(base, path, rows)
            runs = [run(args.code, path, args.as_of) for _ in range(args.runs)]
            line = {"bench": "analyze_scale", "code": str(args.code), "rows": rows, "runs": len(runs),
                    "seconds_median": round(statistics.median(r[0] for r in runs), 2),
                    "peak_rss_mb_median": round(statistics.median(r[1] for r in runs), 1),
                    "seconds": [round(r[0], 2) for r in runs]}
            results.append(line)
            print(json.dumps(line), flush=True)
            path.unlink()
    if len(results) >= 2:
        a, b = results[0], results[-1]
        scale = math.log(b["rows"] / a["rows"])
        print(json.dumps({"bench": "analyze_scale", "growth_exponent_time":
                          round(math.log(b["seconds_median"] / a["seconds_median"]) / scale, 3),
                          "growth_exponent_memory": round(math.log(b["peak_rss_mb_median"] /
                                                                   a["peak_rss_mb_median"]) / scale, 3)}))


if __name__ == "__main__":
    main()
