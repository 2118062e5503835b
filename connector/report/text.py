"""The report as plain text for a terminal: the same figures as the HTML page, fewer of them, in the
report's language."""

from __future__ import annotations

from connector.report.html import Words, metric_unit, verdict
from connector.tables import table

TEXT_METRICS = ("customers", "purchases", "revenue", "repeat_rate", "purchase_frequency", "aov", "ltv",
                "purchases_per_year", "ltv_3f", "churn_rate", "crr_12m", "new_customers_12m")
TOP_MOVES = 10
TOP_SHOWN = 5


def _value(w: Words, key: str, value: object) -> object:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "" if value is None else value
    unit = metric_unit(key)
    return w.money(value) if unit == "money" else w.fmt(value, unit)


def render_text(report: dict) -> str:
    w = Words(report)
    meta, metrics, trend = report["meta"], report["metrics"], report["trend"]
    out = [w("t_head", account=meta["account"], day=report["as_of"], customers=w.count(meta["customers"]),
             purchases=w.count(meta["purchases"]), currency=w.currency_shown)]
    first = trend["months"][0]
    rows = []
    for key in TEXT_METRICS:
        series = trend["series"].get(key)
        rows.append((w.names.metric(key), _value(w, key, metrics.get(key)), _value(w, key, series[0]) if series else ""))
    out.append(table([w("metric"), w("t_now"), w("t_then", day=first)], rows, title=f"\n{w('t_metrics')}"))
    seg = report["segments"]
    out.append(table([w("h_segment"), w("h_customers")],
                     [(w.names.segment(r["segment"]), r["customers"]) for r in seg["segments"]],
                     title=f"\n{w('t_segments')}"))
    out.append(w("t_holdout", n=w.count(seg["holdout"])))
    mig = report["migration"]
    names = [w.names.segment(s) for s in mig["segments"]]
    moves = sorted(((names[i], names[j], n) for i, row in enumerate(mig["matrix"]) for j, n in enumerate(row)
                    if i != j and n), key=lambda m: -m[2])[:TOP_MOVES]
    out.append(table([w("t_from"), w("t_to"), w("h_customers")], moves,
                     title=f"\n{w('t_moves', start=mig['from_date'], end=mig['to_date'])}"))
    up = report["uplift"]
    out.append(table([w("h_rule"), w("t_actions"), w("s_treated"), w("t_conv"), w("t_held"), w("t_conv"),
                      w("t_uplift")],
                     [(w.names.rule(r["rule"]), r["actions_written"], r["treated"], w.fmt(r["treated_rate"], "share"),
                       r["holdout"], w.fmt(r["holdout_rate"], "share"), verdict(r, w)[0]) for r in up["rules"]],
                     title=f"\n{w('t_rules', days=up['window_days'])}"))
    life = report["lifetime"]
    if life.get("model"):
        out.append("\n" + w("t_lifetime", purchases=w.fmt(life["total_expected_purchases_90d"], "number"),
                            revenue=w.money(life["total_predicted_ltv"])))
        out.append(table([w("h_segment"), w("h_customers"), w("t_mean_palive"), w("t_ltv_per")],
                         [(w.names.segment(s["segment"]), s["customers"], w.fmt(s["mean_p_alive"], "share"),
                           w.money(s["predicted_ltv_per_customer"])) for s in life["segments"]]))
        out.append(w("one_time", n=w.count(life.get("one_time_buyers", 0))))
        out.append(table([w("h_customer"), w("h_manager"), w("h_segment"), w("h_pltv"), "CRM"],
                         [(c.get("name") or f"#{c['customer_id']}", c.get("manager_id") or "–",
                           w.names.segment(c["segment"]), w.money(c["predicted_ltv"]), c.get("url") or "")
                          for c in life["top_customers"][:TOP_SHOWN]], title=f"\n{w('t_top')}"))
    else:
        out.append("\n" + w("t_no_model", note=life.get("note")))
    out.append("\n" + w("t_charts"))
    return "\n".join(out)
