"""The app's main page: who to call today and tomorrow's plan; what the plugin did and earned; segments,
lifecycle, predicted value and the report's charts - all from the cached View, in the playbook's language."""

from __future__ import annotations

from connector.report.charts import bar_chart, hbar_chart, heatmap
from connector.webapp.pages.snapshot import View
from connector.webapp.pages.view import esc, hidden, table
from connector.webapp.pages.words import Words


def card_link(portal: str, kind: str, customer_id: str, w: Words, crm: str = "bitrix") -> str:
    """The customer's CRM card, opened over the app (Doc: api-reference/crm/contacts - /crm/contact/details/ID/;
    amoCRM's cards live at /contacts/detail/ID and /companies/detail/ID)."""
    if crm == "amocrm":
        path = f'/{"companies" if kind == "company" else "contacts"}/detail/{customer_id}'
    else:
        path = f'/crm/{"company" if kind == "company" else "contact"}/details/{customer_id}/'
    return (f'<a href="{esc(portal)}{esc(path)}" target="_top" '
            f'rel="noopener">{esc(w["open_card"])}</a>')


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(f'<div class="card"><div class="label">{esc(label)}</div>'
                                           f'<div class="value">{esc(value)}</div></div>'
                                           for label, value in items) + "</div>"


def today_section(view: View, w: Words, portal: str, names: dict[str, str], crm: str = "bitrix") -> str:
    rows = []
    for a in view.calls:
        c = view.customers.get(a.customer_id)
        report = view.reports.get(a.customer_id)
        manager = a.manager_id or (c.manager_id if c else None) or ""
        rows.append([c.name if c and c.name else f"#{a.customer_id}", c.phones[0] if c and c.phones else "—",
                     names.get(str(manager)) or (f"#{manager}" if manager else "—"),
                     f"{w.rule(a.rule)}: {a.title}", w.segment(report.segment) if report else "—",
                     card_link(portal, c.kind if c else "contact", a.customer_id, w, crm)])
    calls = table([w["customer"], w["phone"], w["manager"], w["why"], w["segment"], w["card"]], rows,
                  empty=w["nobody"], raw=[5])
    plan = table([w["rule"], w["channel"], w["count"]],
                 [[w.rule(r), w.channel(ch), w.number(n)] for (r, ch), n in sorted(view.tomorrow.items())],
                 numeric=[2], empty=w["nothing"])
    return (f'<section id="today"><h2>{esc(w["today"])}</h2><h3>{esc(w["call_today"])}</h3>{calls}'
            f'<h3>{esc(w["tomorrow"])}</h3>{plan}</section>')


def did_section(view: View, w: Words, names: dict[str, str]) -> str:
    week = view.week
    cards = _cards([(w["week"], w.number(week["total"])),
                    (f'{w["deals"]}: {w["created"]}', w.number(week["deals_created"])),
                    (f'{w["deals"]}: {w["won"]}', w.number(week["deals_won"])),
                    (f'{w["deals"]}: {w["revenue"]}', w.money(week["deals_revenue"])),
                    (f'{w["returning"]}, {w["returning_orders"]}', w.share(view.returning["orders"])),
                    (f'{w["returning"]}, {w["returning_revenue"]}', w.share(view.returning["revenue"]))])

    def manager(m: str) -> str:
        return names.get(m) or (f"#{m}" if m else "—")

    by_rule = table([w["rule"], w["count"]], [[w.rule(k), w.number(n)] for k, n in week["rules"].most_common()],
                    numeric=[1])
    by_channel = table([w["channel"], w["count"]],
                       [[w.channel(k), w.number(n)] for k, n in week["channels"].most_common()], numeric=[1])
    states = view.extra.get("tasks") or {}
    people = list(dict.fromkeys([k for k, _ in week["managers"].most_common()] + sorted(states)))
    by_manager = table([w["manager"], w["week"], f'{w["tasks"]}: {w["written"]}', f'{w["tasks"]}: {w["done"]}',
                        f'{w["tasks"]}: {w["overdue"]}'],
                       [[manager(k), w.number(week["managers"].get(k, 0)), w.number(week["tasks"].get(k, 0)),
                         w.number(states.get(k, {}).get("done", 0)), w.number(states.get(k, {}).get("overdue", 0))]
                        for k in people], numeric=[1, 2, 3, 4])
    return (f'<section id="did"><h2>{esc(w["did"])}</h2>{cards}<div class="row">'
            f'<div><h3>{esc(w["by_rule"])}</h3>{by_rule}</div><div><h3>{esc(w["by_channel"])}</h3>{by_channel}</div>'
            f'</div><h3>{esc(w["by_manager"])}</h3>{by_manager}{uplift_part(view, w)}</section>')


def uplift_part(view: View, w: Words) -> str:
    """Uplift per rule, shown only for rules with enough treated and held-out customers to mean something."""
    rows = [r for r in (view.extra.get("uplift") or {}).get("rules", []) if r.get("uplift") is not None]
    if not rows:
        return f'<h3>{esc(w["uplift"])}</h3><p class="muted">{esc(w["uplift_wait"])}</p>'
    body = table([w["rule"], w["customers"], "uplift", "95 %"],
                 [[w.rule(r["rule"]), w.number(r["treated"]), f"{r['uplift'] * 100:+.1f} п.п." if w.lang == "ru"
                   else f"{r['uplift'] * 100:+.1f} pp", f"{r['ci_low'] * 100:+.1f} … {r['ci_high'] * 100:+.1f}"]
                  for r in rows], numeric=[1, 2])
    return f'<h3>{esc(w["uplift"])}</h3>{body}'


def segments_section(view: View, w: Words) -> str:
    seg, life = view.segments, view.lifetime
    total = sum(r["customers"] for r in seg["segments"]) or 1
    charts = [hbar_chart("segments", w["segments"], [w.segment(r["segment"]) for r in seg["segments"]],
                         [r["customers"] for r in seg["segments"]], x_label=w["customers"],
                         notes=[w.share(r["customers"] / total) for r in seg["segments"]]),
              bar_chart("lifecycle", w["lifecycle"], [w.lifecycle(r["stage"]) for r in seg["lifecycle"]],
                        [(w["customers"], [r["customers"] for r in seg["lifecycle"]])], y_label=w["customers"])]
    rfm = view.rfm
    charts.append(heatmap("rfm", w["rfm_grid"], [f"R{r}" for r in rfm["r"]], [f"F{f}" for f in rfm["f"]],
                          [[c["customers"] or None for c in row] for row in rfm["cells"]], legend_label=w["customers"]))
    if life.get("model"):
        segs = life["segments"]
        charts.append(hbar_chart("ltv-segment", w["ltv"], [w.segment(s["segment"]) for s in segs],
                                 [s["predicted_ltv_per_customer"] for s in segs], unit="money",
                                 x_label=w["predicted"]))
        ltv = _cards([(w["ltv_total"], w.money(life["total_predicted_ltv"]))])
    else:
        ltv = f'<p class="muted">{esc(w["no_model"])}</p>'
    return (f'<section id="segments"><h2>{esc(w["segments"])} · {esc(w["lifecycle"])} · {esc(w["ltv"])}</h2>'
            f'{ltv}<div class="charts">{"".join(charts)}</div></section>')


def render_main(view: View, w: Words, *, portal: str, names: dict[str, str], form: dict[str, str],
                admin: bool, crm: str = "bitrix", settings_action: str = "/bitrix/app/settings") -> str:
    settings = (f'<form class="inline" method="post" action="{esc(settings_action)}">{hidden(form)}'
                f'<button class="plain" type="submit">{esc(w["settings"])}</button></form>') if admin else ""
    head = (f'<nav><h1>{esc(w["app"])}</h1>{settings}</nav><p class="muted">{esc(w.day(view.today.isoformat()))} · '
            f'{esc(w["customers"])}: {esc(w.number(len(view.reports)))}</p>')
    return head + today_section(view, w, portal, names, crm) + did_section(view, w, names) + segments_section(view, w)
