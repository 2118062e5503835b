"""Benchmark (not a test): `analyze` against lifetimes on the CDNOW master file, same parameters.

lifetimes (0.11.3, with pandas) lives in its own venv (`python3 -m venv /tmp/lt && /tmp/lt/bin/pip
install lifetimes`); its package ships datasets/CDNOW_master.txt (customer, YYYYMMDD, CDs, dollars),
which is turned into a transactions CSV (one purchase a row, no order id). Each side runs in a child
under /usr/bin/time -v, imports included: `analyze --format json`, and lifetimes'
summary_data_from_transaction_data + BetaGeoFitter + GammaGammaFitter + p_alive, expected purchases
over 90 days and expected spend x purchases over 365 days for every customer. The two run in turn;
prints both walls and peaks (medians of --runs), the median CPU ratio (user + system, pair by pair:
the figure to quote on a loaded machine) and the largest relative difference of the seven parameters.
Usage: python benchmarks/cdnow_lifetimes.py [--lifetimes-python /tmp/lt/bin/python] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "1998-06-30"  # the day after the file's last purchase

LIFETIMES = r"""
import json, sys, time
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
path, as_of = sys.argv[1], sys.argv[2]
df = pd.read_csv(path, dtype={"customer_id": str}, parse_dates=["date"])
df = df[df["amount"] > 0]  # what analyze counts as a purchase (README "Definitions"): CDNOW has 80 rows of $0
s = summary_data_from_transaction_data(df, "customer_id", "date", monetary_value_col="amount",
                                       observation_period_end=as_of, freq="D")
s["recency"] /= 7.0
s["T"] /= 7.0
bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
rep = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
alive = bg.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
n90 = bg.conditional_expected_number_of_purchases_up_to_time(90 / 7, s["frequency"], s["recency"], s["T"])
spend = gg.conditional_expected_average_profit(s["frequency"], s["monetary_value"])
n365 = bg.conditional_expected_number_of_purchases_up_to_time(365 / 7, s["frequency"], s["recency"], s["T"])
ltv = spend * n365
p = dict(bg.params_)
p.update({k: float(v) for k, v in gg.params_.items()})
print(json.dumps({"params": {k: float(v) for k, v in p.items()}, "customers": len(s),
                  "mean_p_alive": float(alive.mean()), "mean_n90": float(n90.mean()), "mean_ltv": float(ltv.mean())}))
"""


def cdnow_csv(lifetimes_python: str, out: Path) -> int:
    where = subprocess.run([lifetimes_python, "-c", "import lifetimes, os; print(os.path.dirname(lifetimes.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    rows = 0
    with open(Path(where) / "datasets" / "CDNOW_master.txt", encoding="utf-8") as src, \
            open(out, "w", encoding="utf-8") as dst:
        dst.write("customer_id,date,quantity,amount\n")
        for line in src:
            cid, day, qty, amount = line.split()
            if not day.isdigit():  # the header
                continue
            dst.write(f"{cid},{day[:4]}-{day[4:6]}-{day[6:]},{qty},{amount}\n")
            rows += 1
    return rows


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str, float]:
    """(wall s, peak MB, stdout, cpu s = user + system) of one child."""
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    h, m, s = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr).groups()
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", done.stderr).group(1)) for k in ("User", "System"))
    return int(h or 0) * 3600 + int(m) * 60 + float(s), peak, done.stdout, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetimes-python", default="/tmp/lt/bin/python")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--code", type=Path, default=ROOT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdnow.csv"
        rows = cdnow_csv(args.lifetimes_python, path)
        env = {"PYTHONPATH": str(args.code), "PATH": "/usr/bin:/bin"}
        script = Path(tmp) / "lt.py"
        script.write_text(LIFETIMES, encoding="utf-8")
        ours, theirs = [], []
        for _ in range(args.runs):  # in turn: a loaded machine's drift hits both
            ours.append(timed([sys.executable, "-m", "connector", "analyze", str(path), "--format", "json",
                               "--as-of", AS_OF], args.code, env))
            theirs.append(timed([args.lifetimes_python, str(script), str(path), AS_OF], ROOT, {"PATH": "/usr/bin:/bin"}))
    model = json.loads(ours[0][2])["model"]
    mine = {**{k: model["bgnbd"][k] for k in ("r", "alpha", "a", "b")}, **model["gamma_gamma"]}
    lt = json.loads(theirs[0][2])
    diff = {k: abs(mine[k] - lt["params"][k]) / abs(lt["params"][k]) for k in mine}
    a_wall, l_wall = statistics.median(r[0] for r in ours), statistics.median(r[0] for r in theirs)
    print(json.dumps({"bench": "cdnow_lifetimes", "rows": rows, "customers": lt["customers"],
                      "analyze_seconds": round(a_wall, 2), "analyze_peak_mb": round(statistics.median(r[1] for r in ours), 1),
                      "lifetimes_seconds": round(l_wall, 2),
                      "lifetimes_peak_mb": round(statistics.median(r[1] for r in theirs), 1),
                      "ratio": round(a_wall / l_wall, 2),
                      "cpu_ratio_median": round(statistics.median(a[3] / b[3] for a, b in zip(ours, theirs, strict=True)), 2),
                      "analyze_runs": [round(r[0], 2) for r in ours],
                      "lifetimes_runs": [round(r[0], 2) for r in theirs], "params_analyze": mine,
                      "params_lifetimes": {k: round(v, 6) for k, v in lt["params"].items()},
                      "max_relative_param_difference": max(diff.values())}))


if __name__ == "__main__":
    main()
