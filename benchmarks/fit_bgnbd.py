"""Benchmark: fit BG/NBD + Gamma-Gamma to 100,000 simulated customers, in-process.

Prints one JSON line: {"bench": "fit_bgnbd", "customers", "seconds", "peak_rss_mb", ...}.
`seconds` is the fit of both models on the customers' (x, t_x, T) and spend summaries;
`predict_seconds` is the whole engine path (`playbooks.predict.predict` from purchase dates:
summaries, both fits and every customer's p_alive, 90-day purchases and LTV).
Customers follow a known BG/NBD process (CDNOW parameters, per week) over 78 weeks, on whole days.
Usage: python benchmarks/fit_bgnbd.py [--customers N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playbooks.predict import fit_bgnbd, fit_gamma_gamma, predict, summarise  # noqa: E402

R, ALPHA, A, B = 0.243, 4.414, 0.793, 2.426
P, Q, V = 6.25, 3.74, 15.44
WEEKS = 78
START = date(2024, 1, 1)


def simulate(customers: int, seed: int) -> dict[str, list[tuple[date, float]]]:
    """Purchase days and amounts per customer: first purchase in weeks 0-12, then BG/NBD."""
    rng = np.random.default_rng(seed)
    lam, drop = rng.gamma(R, 1 / ALPHA, customers), rng.beta(A, B, customers)
    nu = rng.gamma(Q, 1 / V, customers)
    birth = rng.uniform(0, 12, customers)
    out: dict[str, list[tuple[date, float]]] = {}
    for i in range(customers):
        times, t = [birth[i]], birth[i]
        while True:
            t += rng.exponential(1 / lam[i])
            if t > WEEKS:
                break
            times.append(t)
            if rng.random() < drop[i]:
                break
        spend = rng.gamma(P, 1 / nu[i], len(times)) * 100
        out[f"C{i:06d}"] = [(START + timedelta(days=int(w * 7)), float(s)) for w, s in zip(times, spend, strict=True)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    histories = simulate(args.customers, args.seed)
    today = START + timedelta(days=WEEKS * 7)
    x, t_x, T, sx, sm = [], [], [], [], []
    for rows in histories.values():
        xi, ti, Ti = summarise([d for d, _a in rows], today)
        x.append(xi)
        t_x.append(ti)
        T.append(Ti)
        per_day: dict[date, float] = {}
        for d, a in rows:
            per_day[d] = per_day.get(d, 0.0) + a
        repeat = [v for d, v in per_day.items() if d != rows[0][0]]
        sx.append(len(repeat))
        sm.append(sum(repeat) / len(repeat) if repeat else 0.0)
    t0 = time.perf_counter()
    bg = fit_bgnbd(x, t_x, T)
    t1 = time.perf_counter()
    gg = fit_gamma_gamma(sx, sm)
    t2 = time.perf_counter()
    result = predict(histories, today)
    t3 = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"bench": "fit_bgnbd", "customers": args.customers, "seconds": round(t2 - t0, 2),
                      "bgnbd_seconds": round(t1 - t0, 2), "gamma_gamma_seconds": round(t2 - t1, 2),
                      "predict_seconds": round(t3 - t2, 2), "repeaters": int(np.count_nonzero(x)),
                      "r": round(bg.params.r, 4), "alpha": round(bg.params.alpha, 4), "a": round(bg.params.a, 4),
                      "b": round(bg.params.b, 4), "p": round(gg.params.p, 4), "q": round(gg.params.q, 4),
                      "v": round(gg.params.v / 100, 4), "model_note": result.note,
                      "peak_rss_mb": round(peak_kb / 1024, 1)}))


if __name__ == "__main__":
    main()
