"""One self-contained HTML page from the report dict: inline CSS and inline SVG, no script, no URL
but the links to the top customers' CRM cards. Words, names and numbers in the report's language
(`report["lang"]`, the playbook's: Russian by default)."""

from __future__ import annotations

from datetime import date
from html import escape

from connector.report.charts import bar_chart, empty_chart, fmt, forest_plot, hbar_chart, heatmap, line_chart
from connector.report.phrases import METHOD_RU, MONTHS, MONTHS_SINCE, phrases
from playbooks import numbers
from playbooks.words import Names

# trend charts shown, in order (keys of data.TREND_METRICS)
TREND_CHARTS = ("repeat_rate", "churn_rate", "crr_12m", "aov", "ltv", "customers", "purchase_frequency",
                "new_customers_12m")
# every chart the page draws (svg data-chart names), for readers and tests
CHART_NAMES = (*(f"trend-{k}" for k in TREND_CHARTS), "segments", "lifecycle", "migration", "rfm", "cohorts",
               "first-product", "rule-conversion", "rule-uplift", "p-alive", "ltv-segment")
# headline cards: metric, its name (playbooks.words) unless the page words name it, unit
KPIS = (("customers", "", "count"), ("repeat_rate", "", "share"), ("aov", "", "money"),
        ("ltv", "kpi_ltv", "money"), ("churn_rate", "", "share"), ("crr_12m", "kpi_retention", "share"))
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
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px;margin-top:18px}
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
HIDDEN = {"model_note", "currency"}


def metric_unit(key: str) -> str:
    return "money" if key in MONEY else "share" if key in SHARES else "number" if key in NUMBERS else "count"


class Words:
    """The page's language: sentences (`w`), names of codes (`names`), numbers and money."""

    def __init__(self, report: dict) -> None:
        self.lang = report.get("lang", "en")
        self.w = phrases(self.lang)
        self.names = Names(self.lang, report.get("names"))
        self.currency = str(report["metrics"].get("currency", ""))
        self.currency_shown = numbers.currency_symbol(self.currency) if self.lang == "ru" else self.currency

    def __call__(self, key: str, **fields: object) -> str:
        return self.w[key].format(**fields) if fields else self.w[key]

    def fmt(self, value: float | None, unit: str = "number") -> str:
        return fmt(value, unit, self.lang)

    def money(self, value: float | None) -> str:
        if not numbers.finite(value):
            return "–"
        return numbers.money(value, self.currency, self.lang)

    def count(self, value: int) -> str:
        return numbers.number(value, self.lang)

    def month(self, day: date, *, year: bool = False, since: bool = False) -> str:
        """"июн", or "июня 2025" after "с" (since)."""
        names = MONTHS_SINCE if since and self.lang == "ru" else MONTHS[self.lang]
        return names[day.month - 1] + (f" {day.year}" if year else "")

    def group(self, name: str) -> str:
        """First-product groups: the catch-all groups in the page's words."""
        return {"other": self("other"), "(no line items)": self("no_items"),
                "(unnamed product)": self("unnamed")}.get(name, name)


def month_labels(points: list[str], w: Words) -> list[str]:
    """"Jun" per month end, "15 Jun" for today's point in a running month; the year under the first and January."""
    out = []
    for i, text in enumerate(points):
        d = date.fromisoformat(text)
        running = i == len(points) - 1 and date.fromordinal(d.toordinal() + 1).month == d.month
        label = f"{d.day} {w.month(d)}" if running else w.month(d)
        out.append(label + (f"\n{d.year}" if i == 0 or d.month == 1 else ""))
    return out


def _table(headers: list[str], rows: list[list[object]], numeric: set[int] | None = None, *, w: Words,
           raw: set[int] | None = None) -> str:
    """A table; cells in `raw` columns are HTML built here (escaped already), the rest are escaped."""
    numeric, raw = numeric or set(), raw or set()
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">'
                                    f'{v if i in raw else escape(str(v))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(headers)}">{escape(w("none_yet"))}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, lead: str, *parts: str) -> str:
    return (f'<section id="{anchor}"><h2>{escape(title)}</h2><p class="lead">{escape(lead)}</p>'
            + "".join(parts) + "</section>")


def _charts(*svgs: str) -> str:
    return '<div class="charts">' + "".join(svgs) + "</div>"


def _card(label: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
            + (f'<div class="delta">{sub}</div>' if sub else "") + "</div>")


def _cards(report: dict, w: Words) -> str:
    """Headline figures; a card speaks of one horizon only (today, 12 months ahead, 90 days ahead)."""
    metrics, trend = report["metrics"], report["trend"]
    since = date.fromisoformat(trend["months"][0])
    cards = []
    for key, own, unit in KPIS:
        now = metrics.get(key)
        series = trend["series"].get(key) or []
        then = series[0] if series else None
        sub = ""
        if numbers.finite(now) and numbers.finite(then):
            diff = now - then
            better = -diff if key in LOWER_IS_BETTER else diff
            cls = "up" if better > 0 else "down" if better < 0 else ""
            shown = w.fmt(diff, "pp") if unit == "share" else ("+" if diff >= 0 else "") + w.fmt(diff, "count")
            sub = (f'<span class="{cls}">{escape(shown)}</span> '
                   f'{escape(w("since", month=w.month(since, year=True, since=True)))}')
        label = w(own) if own else w.names.metric(key)
        cards.append(_card(label, w.money(now) if unit == "money" else w.fmt(now, unit), sub))
    life = report["lifetime"]
    if life.get("model"):
        modelled = sum(b["customers"] for b in life["p_alive_bins"]) + life.get("one_time_buyers", 0) or 1
        cards.append(_card(w("card_predicted"), w.money(life["total_predicted_ltv"]),
                           escape(w("card_predicted_sub", value=w.money(life["total_predicted_ltv"] / modelled)))))
        cards.append(_card(w("card_expected"), w.fmt(life["total_expected_purchases_90d"], "number"),
                           escape(w("card_expected_sub", value=w.fmt(life["total_expected_purchases_90d"]
                                                                      / modelled, "number")))))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _trend(report: dict, w: Words) -> str:
    trend = report["trend"]
    points = month_labels(trend["months"], w)
    axis = {"share": w("axis_share"), "money": w.currency_shown, "count": w("axis_count"), "number": w("axis_number")}
    svgs = []
    for key in TREND_CHARTS:
        unit, label = trend["labels"][key]["unit"], w.names.metric(key)
        svgs.append(line_chart(f"trend-{key}", label, points, [(label, trend["series"][key])], unit=unit,
                               y_label=axis[unit], x_label=w("axis_month"), lang=w.lang))
    rows = [[w.names.metric(k), w.money(v) if metric_unit(k) == "money" else
             w.fmt(v, metric_unit(k)) if numbers.finite(v) else v]
            for k, v in report["metrics"].items() if v is not None and k not in HIDDEN]
    return _section("trend", w("sec_trend"), w("lead_trend", day=report["as_of"]), _charts(*svgs),
                    _table([w("metric"), w("value")], rows, {1}, w=w))


def _segments(report: dict, w: Words) -> str:
    seg, mig = report["segments"], report["migration"]
    total = sum(r["customers"] for r in seg["segments"]) or 1
    seg_svg = hbar_chart("segments", w("ch_segments"), [w.names.segment(r["segment"]) for r in seg["segments"]],
                         [r["customers"] for r in seg["segments"]], x_label=w("axis_count"),
                         notes=[f"({w.fmt(r['customers'] / total, 'share')})" for r in seg["segments"]], lang=w.lang)
    life_svg = bar_chart("lifecycle", w("ch_lifecycle"), [w.names.lifecycle(r["stage"]) for r in seg["lifecycle"]],
                         [(w("axis_count"), [r["customers"] for r in seg["lifecycle"]])], x_label=w("ax_lifecycle"),
                         y_label=w("axis_count"), lang=w.lang)
    names = [w.names.segment(s) for s in mig["segments"]]
    mig_svg = heatmap("migration", w("ch_migration", start=mig["from_date"], end=mig["to_date"]), names, names,
                      [[v or None for v in row] for row in mig["matrix"]], x_label=w("ax_to"), y_label=w("ax_from"),
                      width=1090, cell_h=30, legend_label=w("axis_count"),
                      subtitle=w("migration_sub", moved=mig["moved"], total=mig["total"],
                                 none=w.names.segment("none"), nop=w.names.segment("no_purchases")), lang=w.lang)
    lead = w("lead_segments", customers=w.count(sum(r["customers"] for r in seg["segments"])),
             holdout=w.count(seg["holdout"]), share=w.fmt(report.get("holdout_percent", 0) / 100, "share"))
    return _section("segments", w("sec_segments"), lead, _charts(seg_svg, life_svg, mig_svg))


def _rfm_cohorts(report: dict, w: Words) -> str:
    rfm = report["rfm"]
    cells = rfm["cells"]
    rfm_svg = heatmap("rfm", w("ch_rfm"), [f"R{r}" for r in rfm["r"]], [f"F{f}" for f in rfm["f"]],
                      [[c["customers"] or None for c in row] for row in cells],
                      second=[[w("avg", value=w.fmt(c["avg_monetary"], "money")) if c["avg_monetary"] is not None
                               else "" for c in row] for row in cells],
                      x_label=w("ax_f"), y_label=w("ax_r"), legend_label=w("legend_rfm"), cell_h=44, lang=w.lang)
    co = report["cohorts"]
    rows = co["rows"]
    co_svg = heatmap("cohorts", w("ch_cohorts"), [f"{r['cohort']} (n={r['customers']})" for r in rows],
                     [f"+{k}" for k in co["offsets"]], [r["retention"] for r in rows], unit="share",
                     x_label=w("ax_cohort_x"), y_label=w("ax_cohort_y"), width=1090, cell_h=28,
                     legend_label=w("legend_cohort"), lang=w.lang)
    return (_section("rfm", w("sec_rfm"), w("lead_rfm"), _charts(rfm_svg))
            + _section("cohorts", w("sec_cohorts"), w("lead_cohorts"), _charts(co_svg)))


def _first_product(report: dict, w: Words) -> str:
    fp = report["first_product"]
    rows, days = fp["rows"], fp["window_days"]
    svg = bar_chart("first-product", w("ch_first"), [w.group(r["group"]) for r in rows],
                    [(w("s_ever"), [r["repeat_rate"] for r in rows]),
                     (w("s_within", days=days), [r["repeat_90d"] for r in rows])],
                    unit="share", y_label=w("axis_share"), x_label=w("ax_first"),
                    width=1090, height=360, notes=[f"n={r['customers']}" for r in rows], lang=w.lang)
    table = _table([w("h_first"), w("h_customers"), w("h_repeat_rate"), w("h_aged", days=days),
                    w("h_repeat_within", days=days)],
                   [[w.group(r["group"]), r["customers"], w.fmt(r["repeat_rate"], "share"), r["aged_customers"],
                     w.fmt(r["repeat_90d"], "share")] for r in rows], {1, 2, 3, 4}, w=w)
    return _section("first-product", w("sec_first"), w("lead_first", days=days), _charts(svg), table)


def verdict(row: dict, w: Words) -> tuple[str, str]:
    """The rule's uplift as a sentence and a verdict, in the page's language."""
    if row.get("uplift") is None:
        if w.lang != "ru":
            return row["statement"], row["verdict"]
        return f"мало данных: {row['treated']} с касанием, {row['holdout']} в контроле", "мало данных"
    if w.lang != "ru":
        return row["statement"], row["verdict"]
    lo, hi = row["ci_low"], row["ci_high"]
    said = ("покупают больше контрольной группы" if lo > 0 else
            "покупают меньше контрольной группы" if hi < 0 else "явной разницы нет")
    return (f"прирост {w.fmt(row['uplift'], 'pp')} (95 % ДИ от {w.fmt(lo, 'pp')} до {w.fmt(hi, 'pp')})", said)


def _rules(report: dict, w: Words) -> str:
    up = report["uplift"]
    rows, days = up["rules"], up["window_days"]
    names = [w.names.rule(r["rule"]) for r in rows]
    said = [verdict(r, w) for r in rows]
    conv = bar_chart("rule-conversion", w("ch_conv", days=days), names,
                     [(w("s_treated"), [r["treated_rate"] for r in rows]),
                      (w("s_holdout"), [r["holdout_rate"] for r in rows])],
                     unit="share", y_label=w("ax_conv_y"), x_label=w("ax_conv_x"),
                     notes=[f"{r['treated']} / {r['holdout']}" for r in rows], lang=w.lang)
    forest = forest_plot("rule-uplift", w("ch_uplift"), names, [r["uplift"] for r in rows],
                         [r["ci_low"] for r in rows], [r["ci_high"] for r in rows],
                         notes=[s for s, _v in said], x_label=w("ax_uplift"), lang=w.lang)
    table = _table([w("h_rule"), w("h_written"), w("h_treated"), w("h_converted"), w("h_held"), w("h_converted"),
                    w("h_waiting"), w("h_uplift"), w("h_verdict")],
                   [[n, r["actions_written"], r["treated"], w.fmt(r["treated_rate"], "share"), r["holdout"],
                     w.fmt(r["holdout_rate"], "share"), r["waiting"], s, v]
                    for n, r, (s, v) in zip(names, rows, said, strict=True)], {1, 2, 3, 4, 5, 6}, w=w)
    span = (w("span", first=up["first_day"], last=up["last_day"], days=up["replayed_days"]) if up["first_day"]
            else w("no_span", days=days))
    method = METHOD_RU if w.lang == "ru" else up["method"]
    items = '<ul class="method">' + "".join(f"<li>{escape(m)}</li>" for m in method) + "</ul>"
    return _section("rules", w("sec_rules"), w("lead_rules", days=days, span=span, min=up["min_group"]),
                    _charts(conv, forest), table, items)


def _customer_cell(c: dict) -> str:
    """The customer's name linking to the CRM card (the id when the card has no name)."""
    shown = escape(c.get("name") or f"#{c['customer_id']}")
    url = c.get("url")
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{escape(url)}" target="_blank" rel="noopener">{shown}</a>'
    return shown


def _lifetime(report: dict, w: Words) -> str:
    life = report["lifetime"]
    lead = w("lead_lifetime")
    if not life.get("model"):
        msg = life.get("note") or w("no_model")
        why = w("no_model_why")
        return _section("lifetime", w("sec_lifetime"), lead, f'<div class="note">{escape(msg)}</div>',
                        _charts(empty_chart("p-alive", w("ch_palive"), why),
                                empty_chart("ltv-segment", w("ch_ltv_seg"), why)))
    bins = life["p_alive_bins"]
    one_time = w("one_time", n=w.count(life.get("one_time_buyers", 0)))
    p_svg = bar_chart("p-alive", w("ch_palive"),
                      [f"{w.fmt(b['from'] * 100, 'count')}–{w.fmt(b['to'] * 100, 'count')} %" for b in bins],
                      [(w("axis_count"), [b["customers"] for b in bins])],
                      x_label=w("ax_palive"), y_label=w("axis_count"), lang=w.lang)
    segs = life["segments"]
    ltv_svg = hbar_chart("ltv-segment", w("ch_ltv_seg"), [w.names.segment(s["segment"]) for s in segs],
                         [s["predicted_ltv_per_customer"] for s in segs], unit="money",
                         x_label=w("ax_ltv_seg", currency=w.currency_shown),
                         notes=[w("p_alive_note", value=w.fmt(s["mean_p_alive"], "share")) for s in segs], lang=w.lang)
    bg, gg = life["model"]["bgnbd"], life["model"]["gamma_gamma"]
    params = _table([w("h_model"), w("h_params")], [
        ["BG/NBD", f"r={bg['r']:.4g}, alpha={bg['alpha']:.4g}, a={bg['a']:.4g}, b={bg['b']:.4g} "
                   f"({w('time_unit')}: {bg['time_unit']})"],
        ["Gamma-Gamma", f"p={gg['p']:.4g}, q={gg['q']:.4g}, v={gg['v']:.4g}"]], w=w)
    top = _table([w("h_customer"), w("h_manager"), w("h_segment"), w("h_purchases"), w("h_spend"), w("h_palive"),
                  w("h_exp90"), w("h_pltv")],
                 [[_customer_cell(c), w("manager_id", id=c["manager_id"]) if c.get("manager_id") else "–",
                   w.names.segment(c["segment"]), c["purchases"], w.money(c["monetary"]),
                   w.fmt(c["p_alive"], "share") if c["purchases"] >= 2 else w("one_purchase"),
                   w.fmt(c["expected_purchases_90d"], "number"), w.money(c["predicted_ltv"])]
                  for c in life["top_customers"]], {3, 4, 5, 6, 7}, w=w, raw={0})
    return _section("lifetime", w("sec_lifetime"), lead, f'<div class="note">{escape(one_time)}</div>',
                    _charts(p_svg, ltv_svg), params, f"<h3>{escape(w('top_title'))}</h3>", top)


def render_html(report: dict) -> str:
    """The whole page; every figure comes from `report` (see build_report), the words from its language."""
    w = Words(report)
    meta = report["meta"]
    ledger = ", ".join(f"{w.w.get('st_' + k, k)} {w.count(v)}" for k, v in sorted(meta["ledger"].items())) or w("none")
    sub = " · ".join([meta["account"], w("as_of", day=report["as_of"]),
                      w("customers_purchases", customers=w.count(meta["customers"]),
                        purchases=w.count(meta["purchases"])),
                      w("amounts_in", currency=w.currency_shown)])
    title = f"{w('title')}: {meta['account']}, {report['as_of']}"
    return (f"<!DOCTYPE html><html lang=\"{escape(w.lang)}\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body><main><header><h1>{escape(w('title'))}</h1>"
            f"<p>{escape(sub)}</p></header>{_cards(report, w)}{_trend(report, w)}{_segments(report, w)}"
            f"{_rfm_cohorts(report, w)}{_first_product(report, w)}{_rules(report, w)}{_lifetime(report, w)}"
            f"<footer>{escape(w('footer', ledger=ledger, sync=meta.get('last_sync') or w('unknown')))}</footer>"
            "</main></body></html>")
