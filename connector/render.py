"""A sync's outcome as tables for people: segments, the plan by rule, the run's counts.

Shared by `repeat-sales sync` and `demo`; JSON for machines is `SyncReport.to_json`.
"""

from __future__ import annotations

from collections import Counter

from connector.tables import table
from playbooks.words import Names

# the tables' own words; segment, lifecycle, tier, metric and rule names come from playbooks.words
WORDS = {
    "ru": {"segments": "Сегменты", "segment": "сегмент", "customers": "клиентов", "holdout":
           "контрольная группа (внутри сегментов, без касаний)", "by_dimension": "Клиенты по признакам",
           "dimension": "признак", "value": "значение", "lifecycle": "жизненный цикл", "value_dim": "ценность",
           "trend": "тренд", "tier": "уровень", "as_of": "На {day}: клиентов с покупками {n}",
           "by_rule": "Запланировано по сценариям", "rule": "сценарий", "kind": "вид", "actions": "действий",
           "preview": "План (первые {shown} из {total})", "due": "когда", "customer": "клиент", "step": "шаг",
           "title": "текст", "run": "Запуск", "pull": "загрузка", "customers_pulled": "клиентов загружено",
           "purchases_pulled": "покупок загружено", "requests_pull": "HTTP-запросов (загрузка)",
           "requests_all": "HTTP-запросов (всего)", "planned": "действий запланировано",
           "skipped": "уже выполнено раньше", "deferred": "отложено до своего дня", "would_write": "было бы записано",
           "written": "записано", "failed": "не удалось", "of_them": "  из них {kind}",
           "passed_over": "  канал пропущен: {why}"},
    "en": {"segments": "Segments", "segment": "segment", "customers": "customers", "holdout":
           "hold-out group (inside the segments, no touches)", "by_dimension": "Customers by dimension",
           "dimension": "dimension", "value": "value", "lifecycle": "lifecycle", "value_dim": "value",
           "trend": "trend", "tier": "tier", "as_of": "As of {day}: {n} customers with purchases",
           "by_rule": "Planned actions by rule", "rule": "rule", "kind": "kind", "actions": "actions",
           "preview": "Plan preview (first {shown} of {total})", "due": "due", "customer": "customer", "step": "step",
           "title": "title", "run": "Run", "pull": "pull", "customers_pulled": "customers pulled",
           "purchases_pulled": "purchases pulled", "requests_pull": "HTTP requests (pull)",
           "requests_all": "HTTP requests (all)", "planned": "actions planned", "skipped": "already applied",
           "deferred": "deferred to their day", "would_write": "would write", "written": "written",
           "failed": "failed", "of_them": "  of them {kind}", "passed_over": "  passed over {why}"},
}
KINDS = {"ru": {"task": "задачи", "tag": "поля карточек", "deal": "сделки", "workflow": "автоматизации",
                "email": "письма", "message": "сообщения", "sms": "SMS", "bot": "боты"}}
DIMENSIONS = {"lifecycle": ("lifecycle", "lifecycle"), "value": ("value", "value_dim"), "trend": ("trend", "trend"),
              "tier": ("tiers", "tier")}


def _words(names: Names | None) -> tuple[Names, dict[str, str]]:
    names = names or Names("en")
    return names, WORDS.get(names.lang, WORDS["en"])


def render_segments(evaluation, names: Names | None = None) -> list[str]:
    """RFM segments in one table; lifecycle, value, trend and tier side by side in another - named in the
    playbook's language (`names_for(playbook)`; English without it)."""
    names, w = _words(names)
    # the hold-out group is drawn across the segments, not one of them: the table sums to the customers
    named = {k: v for k, v in evaluation.segments.items() if ":" not in k and k != "holdout"}
    out = [table([w["segment"], w["customers"]], [(names.segment(k), v) for k, v in
                                                   sorted(named.items(), key=lambda kv: -kv[1])],
                 title=f"\n{w['segments']}")]
    if evaluation.segments.get("holdout"):
        out.append(f"{w['holdout']}: {evaluation.segments['holdout']}")
    dims: dict[str, list[tuple[str, int]]] = {}
    for key, count in evaluation.segments.items():
        if ":" in key:
            dim, _, value = key.partition(":")
            dims.setdefault(dim, []).append((value, count))
    rows = [(w[DIMENSIONS[dim][1]], names.of(DIMENSIONS[dim][0], value), count)
            for dim in ("lifecycle", "value", "trend", "tier") if dim in dims
            for value, count in sorted(dims[dim], key=lambda vc: -vc[1])]
    out.append(table([w["dimension"], w["value"], w["customers"]], rows, title=f"\n{w['by_dimension']}"))
    return out


def passed_over(why: str, lang: str) -> str:
    """`email:no_mailbox` as the team reads it: "e-mail — в CRM не подключён почтовый ящик для отправки"."""
    from connector.delivery import CHANNEL_NAMES, REASONS

    channel, _, reason = why.partition(":")
    channels, reasons = CHANNEL_NAMES.get(lang, CHANNEL_NAMES["en"]), REASONS.get(lang, REASONS["en"])
    text = reasons.get(reason, reason).replace(" ({names})", "")
    return f"{channels.get(channel, channel)} — {text}" if reason else channels.get(channel, channel)


def render_run(stats: dict, *, dry_run: bool, names: Names | None = None) -> str:
    names, w = _words(names)
    kinds = KINDS.get(names.lang, {})
    pulled = stats.get("pulled", {})
    rows = [(w["pull"], pulled.get("mode", "")), (w["customers_pulled"], pulled.get("customers", 0)),
            (w["purchases_pulled"], pulled.get("purchases", 0)), (w["requests_pull"], pulled.get("requests", 0)),
            (w["requests_all"], stats.get("requests", 0)), (w["planned"], stats.get("planned", 0)),
            (w["skipped"], stats.get("skipped", 0))]
    if stats.get("deferred"):
        rows.append((w["deferred"], stats["deferred"]))
    rows += [(w["would_write"], stats.get("would_write", 0))] if dry_run else [
        (w["written"], stats.get("written", 0)), (w["failed"], stats.get("failed", 0))]
    rows += [(w["of_them"].format(kind=kinds.get(kind, kind)), n) for kind, n in (stats.get("written_by_kind") or {}).items()]
    # touches that passed over a channel, and why (e.g. email:no_mailbox: the portal has no mailbox)
    rows += [(w["passed_over"].format(why=passed_over(why, names.lang)), n)
             for why, n in (stats.get("channel_fallbacks") or {}).items()]
    # rules the CRM's data can never satisfy, in the playbook's language, with the setting that fixes it
    notes = "".join(f"\n! {note['message']}" for note in stats.get("rules_cannot_run") or [])
    notes += "".join(f"\n! {gap['message']}" for gap in stats.get("rights_missing") or [])  # what this webhook may not
    notes += "".join(f"\n! {note['message']}" for note in stats.get("crm_notices") or [])  # e.g. amoCRM's Customers mode
    return table([w["run"], w["value"]], rows, title=f"\n{w['run']}") + notes


def render_sync(report, *, dry_run: bool, brief: bool = False, names: Names | None = None) -> str:
    """The run for people, in the playbook's language when `names` (names_for(playbook)) is given."""
    ev, stats = report.evaluation, report.stats
    names, w = _words(names)
    kinds = KINDS.get(names.lang, {})
    out = [w["as_of"].format(day=ev.as_of.isoformat(), n=len(ev.customers))]
    if not brief:
        out += render_segments(ev, names)
        by_rule = Counter((a.rule, a.kind.value) for a in report.plan)
        out.append(table([w["rule"], w["kind"], w["actions"]],
                         [(names.rule(r), kinds.get(k, k), n) for (r, k), n in sorted(by_rule.items())],
                         title=f"\n{w['by_rule']}"))
    if dry_run:
        shown = report.plan[:20]
        out.append(table([w["due"], w["customer"], w["rule"], w["step"], w["title"]],
                         [(a.due.isoformat(), a.customer_id, names.rule(a.rule), a.step, a.title[:60]) for a in shown],
                         title=f"\n{w['preview'].format(shown=len(shown), total=len(report.plan))}"))
    out.append(render_run(stats, dry_run=dry_run, names=names))
    for key, reason in sorted(report.failed.items())[:20]:
        out.append(f"  failed {key}: {reason}")
    return "\n".join(out)
