"""Benchmark (not a test): `analyze` of two checkouts and the polars yardstick in turn on one file, N times.

    python benchmarks/analyze_pairs.py FILE --as-of 1998-06-30 --a /work/main --b . --runs 5

Each run is a child under /usr/bin/time -v (analyze_scale.run); printed: each side's CPU (user + system),
wall and peak, the CPU ratio to polars as the median of the triplets, and B / A as the median of the pairs
(on a shared machine the paired ratio is steadier than either side's absolute time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import analyze_scale  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", type=Path)
    ap.add_argument("--as-of", default="1998-06-30")
    ap.add_argument("--a", type=Path, required=True, help="checkout A (e.g. main)")
    ap.add_argument("--b", type=Path, default=Path("."), help="checkout B (e.g. this branch)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    res: dict[str, list] = {"a": [], "b": [], "polars": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rfm_polars.py"
        script.write_text(analyze_scale.POLARS, encoding="utf-8")
        for _ in range(args.runs):
            res["a"].append(analyze_scale.run(args.a.resolve(), args.file, args.as_of))
            res["b"].append(analyze_scale.run(args.b.resolve(), args.file, args.as_of))
            res["polars"].append(analyze_scale.run(args.a.resolve(), args.file, args.as_of, script))
    for k, v in res.items():
        print(k, "wall", [round(r[0], 2) for r in v], "cpu", [round(r[2], 2) for r in v],
              "peak", [round(r[1]) for r in v])
    for k in ("a", "b"):
        print(k, "cpu median", round(statistics.median(r[2] for r in res[k]), 2),
              "peak median", round(statistics.median(r[1] for r in res[k])),
              "cpu ratio to polars", _median_ratio(res[k], res["polars"], 2),
              "wall ratio", _median_ratio(res[k], res["polars"], 0))
    print("b / a cpu, median of pairs", _median_ratio(res["b"], res["a"], 2, 3))


def _median_ratio(xs: list, ys: list, k: int, digits: int = 2) -> float:
    return round(statistics.median(x[k] / y[k] for x, y in zip(xs, ys, strict=True)), digits)


if __name__ == "__main__":
    main()
