"""Benchmark (not a test): `repeat-sales analyze --format json` at growing row counts, time and peak memory.

The rows come from cloning a base CSV (default: benchmarks/analyze_csv.py's generator, 100,000 rows):
clone k renames every customer (`<id>~k`) and order (`<order>~k`), so each clone adds customers, never
longer histories. Each size runs `analyze` in a child under /usr/bin/time -v (peak RSS of its own) a few
times; the median is printed with the growth exponents of time and memory in rows (log-log slope
between the smallest and the largest size). `--code DIR` runs another checkout (e.g. /work/main) for
a paired before/after. `--polars` runs, in turn with each analyze, the issue's yardstick: a plain
polars script computing only RFM quintiles and the lifecycle per customer (written as JSON lines),
and prints the ratio analyze / polars pair by pair, of the walls and of the CPU times (user + system; polars
runs several threads) (polars: `pip install polars`, the `bench` extra).
Usage: python benchmarks/analyze_scale.py [--rows 100000 1000000] [--runs 3] [--base FILE] [--code DIR]
       [--polars]
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


POLARS = r"""
import sys
from datetime import date
import polars as pl
path, as_of = sys.argv[1], date.fromisoformat(sys.argv[2])
df = pl.read_csv(path, columns=["customer_id", "date", "amount"], schema_overrides={"customer_id": pl.Utf8})
df = df.with_columns(pl.col("date").str.to_date()).filter((pl.col("amount") > 0) & (pl.col("date") <= as_of))
c = df.group_by("customer_id").agg(n=pl.len(), first=pl.col("date").min(), last=pl.col("date").max(),
                                   monetary=pl.col("amount").sum())
c = c.with_columns(recency=(pl.lit(as_of) - pl.col("last")).dt.total_days())
q = lambda col: (pl.col(col).rank("ordinal") - 1) * 5 // pl.len() + 1  # noqa: E731 - quintile 1-5
c = c.with_columns(r=6 - q("recency"), f=q("n"), m=q("monetary"))
c = c.with_columns(lifecycle=pl.when(pl.col("recency") > 365).then(pl.lit("lost"))
                   .when(pl.col("recency") > 180).then(pl.lit("sleeping"))
                   .when((pl.col("n") == 1) & (pl.col("recency") <= 30)).then(pl.lit("new"))
                   .otherwise(pl.lit("active")))
c.sort("customer_id").write_ndjson(sys.stdout)
"""


def run(code: Path, path: Path, as_of: str, script: Path | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds = user + system) of one `analyze --format json` in a child
    (or of the polars script, whose threads' CPU adds up: on a shared machine the CPU ratio is the steadier)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "connector", "analyze", str(path), "--format", "json",
           "--as-of", as_of]
    if script is not None:
        cmd = ["/usr/bin/time", "-v", sys.executable, str(script), str(path), as_of]
    done = subprocess.run(cmd, cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", done.stderr).group(1)) for k in ("User", "System"))
    return seconds, peak, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base", type=Path, help="a transactions CSV to clone (default: 100,000 generated rows)")
    ap.add_argument("--as-of", default=AS_OF.isoformat())
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    ap.add_argument("--polars", action="store_true", help="pair each run with the polars RFM + lifecycle script")
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
            script = Path(tmp) / "rfm_polars.py"
            script.write_text(POLARS, encoding="utf-8")
            runs, yardstick = [], []
            for _ in range(args.runs):  # in turn, so a drift of the machine's speed hits both
                runs.append(run(args.code, path, args.as_of))
                if args.polars:
                    yardstick.append(run(args.code, path, args.as_of, script))
            line = {"bench": "analyze_scale", "code": str(args.code), "rows": rows, "runs": len(runs),
                    "seconds_median": round(statistics.median(r[0] for r in runs), 2),
                    "peak_rss_mb_median": round(statistics.median(r[1] for r in runs), 1),
                    "seconds": [round(r[0], 2) for r in runs],
                    "cpu_seconds_median": round(statistics.median(r[2] for r in runs), 2)}
            if yardstick:
                line.update({"polars_seconds_median": round(statistics.median(r[0] for r in yardstick), 2),
                             "polars_peak_rss_mb_median": round(statistics.median(r[1] for r in yardstick), 1),
                             "ratio_to_polars_median": round(statistics.median(
                                 a[0] / b[0] for a, b in zip(runs, yardstick, strict=True)), 2),
                             "polars_cpu_seconds_median": round(statistics.median(r[2] for r in yardstick), 2),
                             "cpu_ratio_to_polars_median": round(statistics.median(
                                 a[2] / b[2] for a, b in zip(runs, yardstick, strict=True)), 2)})
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
