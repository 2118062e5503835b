"""The report's "money the way a director counts it" block: returning customers' share, NPS, profit per
customer, CAC and LTV:CAC against its benchmark, referrals - in the playbook's language."""

from __future__ import annotations

from html import escape

from connector.report.charts import fmt
from connector.tables import table

WORDS = {
    "ru": {"title": "Деньги глазами директора", "metric": "показатель", "value": "значение",
           "returning_revenue_share": "Доля выручки от повторных покупок",
           "returning_orders_share": "Доля повторных заказов", "nps": "NPS (промоутеры − критики, %)",
           "nps_answers": "Ответов на вопрос 0-10", "ltv_profit": "Прибыль на клиента (LTV по марже)",
           "cac": "Стоимость привлечения клиента (CAC)", "ltv_cac": "LTV:CAC",
           "referrals": "Клиентов по рекомендации", "referral_revenue": "Выручка клиентов по рекомендации",
           "healthy": "выше ориентира {mark}:1", "unhealthy": "ниже ориентира {mark}:1",
           "by_month": "NPS по месяцам покупки", "by_segment": "NPS по сегментам", "month": "месяц",
           "segment": "сегмент"},
    "en": {"title": "Money the way a director counts it", "metric": "metric", "value": "value",
           "returning_revenue_share": "Revenue share of returning purchases",
           "returning_orders_share": "Share of returning orders", "nps": "NPS (promoters - detractors, %)",
           "nps_answers": "Answers to the 0-10 question", "ltv_profit": "Profit per customer (margin LTV)",
           "cac": "Customer acquisition cost (CAC)", "ltv_cac": "LTV:CAC",
           "referrals": "Customers brought by referral", "referral_revenue": "Revenue of referred customers",
           "healthy": "above the {mark}:1 mark", "unhealthy": "below the {mark}:1 mark",
           "by_month": "NPS by month of purchase", "by_segment": "NPS by segment", "month": "month",
           "segment": "segment"},
}
UNITS = {"returning_revenue_share": "share", "returning_orders_share": "share", "nps": "number",
         "nps_answers": "count", "ltv_profit": "money", "cac": "money", "ltv_cac": "number", "referrals": "count",
         "referral_revenue": "money"}


def director_view(metrics: dict, lang: str, names=None) -> dict:
    """The rows (label, shown value) of the metrics this run has, and NPS by month and segment."""
    w = WORDS.get(lang, WORDS["en"])
    rows = []
    for key, unit in UNITS.items():
        if key not in metrics:
            continue
        shown = fmt(metrics[key], unit, lang)
        if key == "ltv_cac" and metrics.get("ltv_cac") is not None:
            mark = metrics.get("ltv_cac_benchmark", 3)
            note = w["healthy" if metrics.get("ltv_cac_healthy") else "unhealthy"].format(mark=f"{mark:g}")
            shown = f"{shown} ({note})"
        rows.append({"metric": key, "label": w[key], "value": shown})
    return {"title": w["title"], "headers": [w["metric"], w["value"]], "rows": rows,
            "by_month": {"title": w["by_month"], "headers": [w["month"], "NPS"],
                         "rows": [[m, fmt(v, "number", lang)] for m, v in (metrics.get("nps_by_month") or {}).items()]},
            "by_segment": {"title": w["by_segment"], "headers": [w["segment"], "NPS"],
                           "rows": [[names.segment(s) if names is not None else s, fmt(v, "number", lang)]
                                    for s, v in (metrics.get("nps_by_segment") or {}).items()]}}


def director_text(view: dict) -> str:
    out = [table(view["headers"], [(r["label"], r["value"]) for r in view["rows"]], title=f"\n{view['title']}")]
    for part in (view["by_month"], view["by_segment"]):
        if part["rows"]:
            out.append(table(part["headers"], [tuple(r) for r in part["rows"]], title=f"\n{part['title']}"))
    return "\n".join(out)


def director_html(view: dict) -> str:
    def tab(headers, rows) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = [tab(view["headers"], [(r["label"], r["value"]) for r in view["rows"]])]
    for part in (view["by_month"], view["by_segment"]):
        if part["rows"]:
            parts.append(f"<h3>{escape(part['title'])}</h3>" + tab(part["headers"], part["rows"]))
    return f'<section id="director"><h2>{escape(view["title"])}</h2>{"".join(parts)}</section>'
