"""The report as plain text for a terminal: the same figures as the HTML page, fewer of them."""

from __future__ import annotations

from connector.report.charts import fmt
from connector.report.director import director_text
from connector.tables import table

SHARE_METRICS = {"repeat_rate", "churn_rate", "crr_12m"}
TEXT_METRICS = ("customers", "purchases", "revenue", "repeat_rate", "purchase_frequency", "aov", "ltv",
                "purchases_per_year", "ltv_3f", "churn_rate", "crr_12m", "new_customers_12m")
TOP_MOVES = 10


def _value(key: str, value: object) -> object:
    if key in SHARE_METRICS and isinstance(value, int | float):
        return fmt(value, "share")
    return value


def render_text(report: dict) -> str:
    meta, metrics, trend = report["meta"], report["metrics"], report["trend"]
    out = [f"Repeat sales report: {meta['account']}, as of {report['as_of']}: {meta['customers']:,} customers, "
           f"{meta['purchases']:,} purchases (amounts in {metrics.get('currency', '')})"]
    first = trend["months"][0]
    rows = []
    for key in TEXT_METRICS:
        series = trend["series"].get(key)
        rows.append((key, _value(key, metrics.get(key)), _value(key, series[0]) if series else ""))
    out.append(table(["metric", "today", f"as of {first}"], rows, title="\nMetrics"))
    seg = report["segments"]
    out.append(table(["segment", "customers"], [(r["segment"], r["customers"]) for r in seg["segments"]],
                     title="\nSegments"))
    mig = report["migration"]
    names = mig["segments"]
    moves = sorted(((names[i], names[j], n) for i, row in enumerate(mig["matrix"]) for j, n in enumerate(row)
                    if i != j and n), key=lambda m: -m[2])[:TOP_MOVES]
    out.append(table(["from", "to", "customers"], moves,
                     title=f"\nBiggest segment moves, {mig['from_date']} to {mig['to_date']}"))
    up = report["uplift"]
    out.append(table(["rule", "actions", "treated", "conv.", "held out", "conv.", "uplift"],
                     [(r["rule"], r["actions_written"], r["treated"], fmt(r["treated_rate"], "share"), r["holdout"],
                       fmt(r["holdout_rate"], "share"), r["statement"]) for r in up["rules"]],
                     title=f"\nDid the rules sell? Purchases within {up['window_days']} days, treated vs hold-out"))
    life = report["lifetime"]
    if life.get("model"):
        bg, gg = life["model"]["bgnbd"], life["model"]["gamma_gamma"]
        out.append(f"\nPredicted lifetime (BG/NBD r={bg['r']:.3g} alpha={bg['alpha']:.3g} a={bg['a']:.3g} "
                   f"b={bg['b']:.3g} per {bg['time_unit'][:-1]}; Gamma-Gamma p={gg['p']:.3g} q={gg['q']:.3g} "
                   f"v={gg['v']:.4g}): {fmt(life['total_expected_purchases_90d'], 'number')} purchases expected "
                   f"in 90 days, {fmt(life['total_predicted_ltv'], 'money')} predicted revenue in 365 days")
        out.append(table(["segment", "customers", "mean p_alive", "predicted LTV per customer"],
                         [(s["segment"], s["customers"], round(s["mean_p_alive"], 2), s["predicted_ltv_per_customer"])
                          for s in life["segments"]]))
    else:
        out.append(f"\nPredicted lifetime: {life.get('note')}")
    if report.get("director"):
        out.append(director_text(report["director"]))
    out.append("\nFor charts (trends, migration, RFM grid, cohorts, first product): repeat-sales report --html FILE")
    return "\n".join(out)
