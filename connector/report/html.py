"""One self-contained HTML page from the report dict: inline CSS and inline SVG, no script, no URL."""

from __future__ import annotations

from datetime import date
from html import escape

from connector.report.charts import bar_chart, empty_chart, fmt, forest_plot, hbar_chart, heatmap, line_chart
from connector.report.director import director_html

# trend charts shown, in order (keys of data.TREND_METRICS)
TREND_CHARTS = ("repeat_rate", "churn_rate", "crr_12m", "aov", "ltv", "customers", "purchase_frequency",
                "new_customers_12m")
# every chart the page draws (svg data-chart names), for readers and tests
CHART_NAMES = (*(f"trend-{k}" for k in TREND_CHARTS), "segments", "lifecycle", "migration", "rfm", "cohorts",
               "first-product", "rule-conversion", "rule-uplift", "p-alive", "ltv-segment")
KPIS = (("customers", "Customers", "count"), ("repeat_rate", "Repeat rate", "share"),
        ("aov", "Average order value", "money"), ("ltv", "Historic LTV", "money"),
        ("churn_rate", "Churn rate", "share"), ("crr_12m", "Retention, 12 months", "share"))
LOWER_IS_BETTER = {"churn_rate"}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2937;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
header h1{font-size:26px;margin:0 0 4px}
header p{margin:0;color:#6b7280}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:18px 20px;margin-top:22px}
section h2{font-size:19px;margin:0 0 4px}
section p.lead{margin:0 0 14px;color:#4b5563}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-top:18px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:12px 14px}
.card .label{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:24px;font-weight:650;margin-top:2px}
.card .delta{font-size:12px;color:#6b7280}
.up{color:#15803d}.down{color:#b91c1c}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.charts svg{border:1px solid #f0f1f3;border-radius:6px;max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;margin-top:12px;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #eef0f2;text-align:left}
th{background:#f9fafb;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:10px 12px;margin:10px 0}
ul.method{color:#4b5563;font-size:13px;padding-left:20px}
footer{color:#9ca3af;font-size:12px;margin-top:24px}
"""


MONEY = {"revenue", "aov", "aov_new", "aov_returning", "ltv", "ltv_3f", "cac"}
SHARES = {"repeat_rate", "churn_rate", "crr_12m"}
NUMBERS = {"purchase_frequency", "purchases_per_year", "ltv_cac", "lifespan_years"}
AXIS = {"share": "share of customers", "money": "{currency}", "count": "customers", "number": "purchases"}


def metric_unit(key: str) -> str:
    return "money" if key in MONEY else "share" if key in SHARES else "number" if key in NUMBERS else "count"


def month_labels(month_ends: list[str]) -> list[str]:
    """"Jun" per month, with the year under the first month and every January."""
    out = []
    for i, text in enumerate(month_ends):
        d = date.fromisoformat(text)
        out.append(d.strftime("%b") + (f"\n{d.year}" if i == 0 or d.month == 1 else ""))
    return out


def _table(headers: list[str], rows: list[list[object]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{escape(str(v))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">(none yet)</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, lead: str, *parts: str) -> str:
    return (f'<section id="{anchor}"><h2>{escape(title)}</h2><p class="lead">{escape(lead)}</p>'
            + "".join(parts) + "</section>")


def _charts(*svgs: str) -> str:
    return '<div class="charts">' + "".join(svgs) + "</div>"


def compact(value: float | None, unit: str) -> str:
    """A card's big number: millions as "23.46 M", so a card stays narrow."""
    if unit in ("money", "count") and isinstance(value, int | float) and abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.2f} M"
    return fmt(value, unit)


def _cards(report: dict) -> str:
    metrics, trend = report["metrics"], report["trend"]
    cards = []
    for key, label, unit in KPIS:
        now = metrics.get(key)
        series = trend["series"].get(key) or []
        then = series[0] if series else None
        delta = ""
        if isinstance(now, int | float) and isinstance(then, int | float):
            diff = now - then
            better = -diff if key in LOWER_IS_BETTER else diff
            cls = "up" if better > 0 else "down" if better < 0 else ""
            shown = fmt(diff, "pp") if unit == "share" else f"{diff:+,.0f}"
            since = date.fromisoformat(trend["months"][0]).strftime("%b %Y")
            delta = f'<div class="delta"><span class="{cls}">{escape(shown)}</span> since {since}</div>'
        cards.append(f'<div class="card"><div class="label">{escape(label)}</div>'
                     f'<div class="value">{escape(compact(now, unit))}</div>{delta}</div>')
    life = report["lifetime"]
    if life.get("model"):
        cards.append('<div class="card"><div class="label">Predicted revenue, 12 months</div>'
                     f'<div class="value">{escape(compact(life["total_predicted_ltv"], "money"))}</div>'
                     f'<div class="delta">{escape(fmt(life["total_expected_purchases_90d"], "number"))} '
                     'purchases expected in 90 days</div></div>')
    return '<div class="cards">' + "".join(cards) + "</div>"


def _trend(report: dict) -> str:
    trend = report["trend"]
    months = month_labels(trend["months"])
    svgs = []
    for key in TREND_CHARTS:
        meta = trend["labels"][key]
        axis = AXIS[meta["unit"]].format(currency=report["metrics"].get("currency", ""))
        svgs.append(line_chart(f"trend-{key}", meta["label"], months, [(meta["label"], trend["series"][key])],
                               unit=meta["unit"], y_label=axis, x_label="month end"))
    rows = [[k, fmt(v, metric_unit(k)) if isinstance(v, int | float) else v]
            for k, v in report["metrics"].items() if v is not None and k != "model_note"]
    return _section("trend", "Metrics and their trend",
                    "Each point is the metric as of that month end (README, Definitions); the table holds "
                    f"today's values ({report['as_of']}).", _charts(*svgs), _table(["metric", "value"], rows, {1}))


def _segments(report: dict) -> str:
    seg, mig = report["segments"], report["migration"]
    total = sum(r["customers"] for r in seg["segments"]) or 1
    seg_svg = hbar_chart("segments", "Customers per segment", [r["segment"] for r in seg["segments"]],
                         [r["customers"] for r in seg["segments"]], x_label="customers",
                         notes=[f"({r['customers'] / total:.0%})" for r in seg["segments"]])
    life_svg = bar_chart("lifecycle", "Customers per lifecycle stage", [r["stage"] for r in seg["lifecycle"]],
                         [("customers", [r["customers"] for r in seg["lifecycle"]])], x_label="lifecycle stage",
                         y_label="customers")
    names = mig["segments"]
    mig_svg = heatmap("migration", f"Segment migration, {mig['from_date']} to {mig['to_date']}", names, names,
                      [[v or None for v in row] for row in mig["matrix"]], x_label="segment today (to)",
                      y_label="segment 90 days ago (from)", width=1090, cell_h=30, legend_label="customers",
                      subtitle=f"{mig['moved']} of {mig['total']} customers changed segment; "
                               "'none' / 'no_purchases': not a customer yet")
    return _section("segments", "Segments and migration",
                    f"Named RFM segments today; {seg['holdout']} customers are in the hold-out group.",
                    _charts(seg_svg, life_svg, mig_svg))


def _rfm_cohorts(report: dict) -> str:
    rfm = report["rfm"]
    cells = rfm["cells"]
    rfm_svg = heatmap("rfm", "RFM grid: recency x frequency", [f"R{r}" for r in rfm["r"]], [f"F{f}" for f in rfm["f"]],
                      [[c["customers"] or None for c in row] for row in cells],
                      second=[["avg " + fmt(c["avg_monetary"], "money") if c["avg_monetary"] is not None else ""
                               for c in row] for row in cells],
                      x_label="frequency score (F5 = most purchases)", y_label="recency score (R5 = most recent)",
                      legend_label="customers; second line: average spend", cell_h=44)
    co = report["cohorts"]
    rows = co["rows"]
    co_svg = heatmap("cohorts", "Monthly cohort retention", [f"{r['cohort']} (n={r['customers']})" for r in rows],
                     [f"+{k}" for k in co["offsets"]], [r["retention"] for r in rows], unit="share",
                     x_label="months after the first purchase", y_label="cohort: month of first purchase",
                     width=1090, cell_h=28, legend_label="share of the cohort buying that month")
    return (_section("rfm", "RFM grid", "Customers by recency and frequency score (quintiles unless the playbook "
                     "fixes edges); each cell shows how many and their average spend.", _charts(rfm_svg))
            + _section("cohorts", "Cohort retention", "Cohort = month of the first purchase; a cell is the share of "
                       "the cohort buying in month +k (+0 is 100% by definition; the current month is partial).",
                       _charts(co_svg)))


def _first_product(report: dict) -> str:
    fp = report["first_product"]
    rows = fp["rows"]
    svg = bar_chart("first-product", "Repeat rate by category of the first purchase", [r["group"] for r in rows],
                    [("bought again (ever)", [r["repeat_rate"] for r in rows]),
                     (f"bought again within {fp['window_days']} days", [r["repeat_90d"] for r in rows])],
                    unit="share", y_label="share of customers", x_label="category of the first purchase",
                    width=1090, height=360, notes=[f"n={r['customers']}" for r in rows])
    table = _table(["first purchase", "customers", "repeat rate", f"customers {fp['window_days']}+ days old",
                    f"repeat within {fp['window_days']} days"],
                   [[r["group"], r["customers"], fmt(r["repeat_rate"], "share"), r["aged_customers"],
                     fmt(r["repeat_90d"], "share")] for r in rows], {1, 2, 3, 4})
    return _section("first-product", "Repeat rate by first product",
                    "Grouped by the category (or product) of the biggest line of the first purchase. The 90-day "
                    "rate counts only customers whose first purchase is at least 90 days old.", _charts(svg), table)


def _rules(report: dict) -> str:
    up = report["uplift"]
    rows = up["rules"]
    names = [r["rule"] for r in rows]
    conv = bar_chart("rule-conversion", f"Bought within {up['window_days']} days: treated vs hold-out", names,
                     [("treated", [r["treated_rate"] for r in rows]), ("hold-out", [r["holdout_rate"] for r in rows])],
                     unit="share", y_label="bought within the window", x_label="rule (episodes: treated / held out)",
                     notes=[f"{r['treated']} / {r['holdout']}" for r in rows])
    forest = forest_plot("rule-uplift", "Uplift with 95% interval", names, [r["uplift"] for r in rows],
                         [r["ci_low"] for r in rows], [r["ci_high"] for r in rows],
                         notes=[r["statement"] for r in rows], x_label="treated minus hold-out, percentage points")
    table = _table(["rule", "actions written", "episodes treated", "converted", "hold-out episodes", "converted",
                    "window not over", "uplift (95% CI)", "verdict"],
                   [[r["rule"], r["actions_written"], r["treated"], fmt(r["treated_rate"], "share"), r["holdout"],
                     fmt(r["holdout_rate"], "share"), r["waiting"], r["statement"], r["verdict"]] for r in rows],
                   {1, 2, 3, 4, 5, 6})
    span = (f"Exposure days {up['first_day']} to {up['last_day']} ({up['replayed_days']} sync days replayed)"
            if up["first_day"] else f"No action has finished its {up['window_days']}-day window yet")
    method = '<ul class="method">' + "".join(f"<li>{escape(m)}</li>" for m in up["method"]) + "</ul>"
    return _section("rules", "Did the rules sell?",
                    f"Actions written by each rule (ledger) and purchases within {up['window_days']} days, against "
                    f"the hold-out group. {span}; with fewer than {up['min_group']} episodes in a group there is "
                    "no verdict.", _charts(conv, forest), table, method)


def _lifetime(report: dict) -> str:
    life = report["lifetime"]
    lead = ("BG/NBD (Fader, Hardie & Lee 2005) for the chance a customer is still buying and the purchases to "
            "expect; Gamma-Gamma for the spend per purchase; predicted LTV = expected spend x expected purchases "
            "over the next 365 days, not discounted. One-time buyers have p_alive 1 in BG/NBD (nobody drops out "
            "before a repeat purchase); their expected purchases still fall as their silence grows.")
    if not life.get("model"):
        msg = life.get("note") or "no lifetime model"
        why = "no lifetime model: see the note above"
        return _section("lifetime", "Predicted customer lifetime", lead, f'<div class="note">{escape(msg)}</div>',
                        _charts(empty_chart("p-alive", "Probability still a customer", why),
                                empty_chart("ltv-segment", "Predicted LTV per segment", why)))
    bins = life["p_alive_bins"]
    p_svg = bar_chart("p-alive", "Probability still a customer (p_alive)",
                      [f"{b['from']:.1f}-{b['to']:.1f}" for b in bins], [("customers", [b["customers"] for b in bins])],
                      x_label="p_alive", y_label="customers")
    segs = life["segments"]
    ltv_svg = hbar_chart("ltv-segment", "Predicted LTV per customer, by segment", [s["segment"] for s in segs],
                         [s["predicted_ltv_per_customer"] for s in segs], unit="money",
                         x_label=f"expected spend in the next 365 days ({report['metrics'].get('currency', '')})",
                         notes=[f"p_alive {s['mean_p_alive']:.2f}" for s in segs])
    bg, gg = life["model"]["bgnbd"], life["model"]["gamma_gamma"]
    params = _table(["model", "parameters"], [
        ["BG/NBD", f"r={bg['r']:.4g}, alpha={bg['alpha']:.4g}, a={bg['a']:.4g}, b={bg['b']:.4g} "
                   f"(time unit: {bg['time_unit']})"],
        ["Gamma-Gamma", f"p={gg['p']:.4g}, q={gg['q']:.4g}, v={gg['v']:.4g}"]])
    top = _table(["customer", "segment", "purchases", "spend", "p_alive", "purchases in 90 days", "predicted LTV"],
                 [[c["customer_id"], c["segment"], c["purchases"], fmt(c["monetary"], "money"), f"{c['p_alive']:.2f}",
                   f"{c['expected_purchases_90d']:.2f}", fmt(c["predicted_ltv"], "money")]
                  for c in life["top_customers"]], {2, 3, 4, 5, 6})
    return _section("lifetime", "Predicted customer lifetime", lead, _charts(p_svg, ltv_svg), params,
                    "<h3>Top customers by predicted LTV</h3>", top)


def render_html(report: dict) -> str:
    """The whole page; every figure comes from `report` (see build_report)."""
    meta = report["meta"]
    title = f"Repeat sales report: {meta['account']}, {report['as_of']}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><main><header><h1>Repeat sales report</h1>"
            f"<p>{escape(meta['account'])} · as of {escape(report['as_of'])} · {meta['customers']:,} customers, "
            f"{meta['purchases']:,} purchases · amounts in {escape(str(report['metrics'].get('currency', '')))}"
            f"</p></header>{_cards(report)}{_trend(report)}{_segments(report)}{_rfm_cohorts(report)}"
            f"{_first_product(report)}{_rules(report)}{_lifetime(report)}"
            f"{director_html(report['director']) if report.get('director') else ''}"
            f"<footer>repeat-sales report · actions in the ledger: "
            f"{escape(', '.join(f'{k} {v:,}' for k, v in sorted(meta['ledger'].items())) or 'none')} · last sync: "
            f"{escape(str(meta.get('last_sync') or 'unknown'))}</footer></main></body></html>")
