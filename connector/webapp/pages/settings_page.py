"""The playbook settings page (portal administrators only): the form, its errors next to the fields, the
preview of tomorrow's plan, and the saved versions with a button to restore each."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from connector.webapp.pages import settings_form as sf
from connector.webapp.pages.view import esc, hidden, table
from connector.webapp.pages.words import CHANNELS, WEEKDAYS, Words

SAMPLES = 5


def _label(w: Words, key: str) -> str:
    return w.w.get(key, key)


def _input(path: str, key: str, value, errors: dict[str, str], w: Words) -> str:
    error = f'<span class="error" role="alert">{esc(w["fix"])}: {esc(errors[path])}</span>' if path in errors else ""
    if isinstance(value, bool):
        checked = " checked" if value else ""
        return (f'<label><input type="checkbox" name="{esc(path)}"{checked}> {esc(_label(w, key))}</label>{error}')
    if key in ("channel", "channels"):  # in words, read back by channel_names()
        value = [w.channel(str(v)) for v in value] if isinstance(value, list) else w.channel(str(value))
    shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
    if key in ("body", "text"):
        control = f'<textarea name="{esc(path)}">{esc(shown)}</textarea>'
    else:
        control = f'<input type="text" name="{esc(path)}" value="{esc(shown)}">'
    return f'<div><label>{esc(_label(w, key))}</label>{control}{error}</div>'


def guards_fieldset(data: dict, errors: dict[str, str], w: Words) -> str:
    g = data.get("guards") or {}
    hold, cap, quiet = g.get("holdout") or {}, g.get("cap") or {}, g.get("quiet") or {}
    parts = []
    if "percent" in hold:
        parts.append(_input("guards.holdout.percent", "holdout", hold["percent"], errors, w))
    if "enabled" in hold:
        parts.append(_input("guards.holdout.enabled", "enabled", hold["enabled"], errors, w))
    if "max_touches" in cap:
        parts.append(_input("guards.cap.max_touches", "cap", cap["max_touches"], errors, w))
    if "period_days" in cap:
        parts.append(_input("guards.cap.period_days", "cap_days", cap["period_days"], errors, w))
    if "weekdays" in quiet:
        path = "guards.quiet.weekdays"
        boxes = "".join(f'<label class="inline-box"><input type="checkbox" name="{path}.{d}"'
                        f'{" checked" if d in quiet["weekdays"] else ""}> {esc(WEEKDAYS[w.lang][d])}</label>'
                        for d in sf.WEEKDAYS)
        error = f'<span class="error" role="alert">{esc(errors[path])}</span>' if path in errors else ""
        parts.append(f'<div><label>{esc(w["quiet_days"])}</label>{boxes}{error}</div>')
    if "dates" in quiet:
        parts.append(_input("guards.quiet.dates", "quiet_dates", quiet["dates"], errors, w))
    return f'<fieldset><legend>{esc(w["cap"])} · {esc(w["quiet_days"])}</legend><div class="row">{"".join(parts)}</div></fieldset>'


def rules_fieldsets(data: dict, errors: dict[str, str], w: Words) -> str:
    out = []
    for kind, groups in sf.rule_fields(data).items():
        blocks = "".join('<div class="row">' + "".join(_input(f.path, f.key, f.value, errors, w) for f in group)
                         + "</div>" for group in groups)
        out.append(f'<fieldset id="rule-{esc(kind)}"><legend>{esc(w.rule(kind))}</legend>{blocks}</fieldset>')
    return "".join(out)


def preview_section(plan, reports, customers, tomorrow: date, w: Words) -> str:
    due = [a for a in plan if a.due == tomorrow]
    counts = Counter((a.rule, a.channel.value) for a in due)
    rows = [[w.rule(r), w.channel(ch), w.number(n)] for (r, ch), n in sorted(counts.items())]
    samples = []
    for a in sorted(due, key=lambda a: (a.rule, a.customer_id))[:SAMPLES]:
        c = customers.get(a.customer_id)
        rep = reports.get(a.customer_id)
        samples.append([c.name if c and c.name else f"#{a.customer_id}", w.segment(rep.segment) if rep else "—",
                        w.rule(a.rule), a.title])
    return (f'<section id="preview"><h2>{esc(w["preview_title"])} ({esc(w.day(tomorrow.isoformat()))})</h2>'
            + table([w["rule"], w["channel"], w["count"]], rows, numeric=[2], empty=w["nothing"])
            + f'<h3>{esc(w["samples"])}</h3>'
            + table([w["customer"], w["segment"], w["rule"], w["step"]], samples, empty=w["nothing"]) + "</section>")


def versions_section(versions: list[dict], form: dict[str, str], w: Words, action: str = "/bitrix/app/settings",
                     readonly: bool = False) -> str:
    rows = []
    for v in versions:
        when = datetime.fromtimestamp(v["saved_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        button = "" if readonly else (f'<form class="inline" method="post" action="{esc(action)}">{hidden(form)}'
                  f'<input type="hidden" name="action" value="restore"><input type="hidden" name="version" '
                  f'value="{v["id"]}"><button class="plain" type="submit">{esc(w["restore"])} {v["id"]}</button></form>')
        rows.append([v["id"], when, v["user_name"], v["note"], button])
    return (f'<section id="versions"><h2>{esc(w["versions"])}</h2>'
            + table([w["version"], w["saved_at"], w["saved_by"], "", ""], rows, raw=[4], empty=w["nothing"])
            + "</section>")


def render_settings(data: dict, errors: dict[str, str], w: Words, *, form: dict[str, str], versions: list[dict],
                    notice: str = "", preview: str = "", action: str = "/bitrix/app/settings", back: str = "/bitrix/app",
                    readonly: str = "") -> str:
    """The form; with `readonly` (why it is so, said on the page) the fields are shown disabled, without buttons."""
    back = (f'<form class="inline" method="post" action="{esc(back)}">{hidden(form)}'
            f'<button class="plain" type="submit">{esc(w["back"])}</button></form>')
    note = ""
    if notice:
        note = f'<p class="ok" role="status">{esc(notice)}</p>'
    if errors:
        note = f'<p class="bad" role="alert">{esc(w["fix"])}: {esc(next(iter(errors.values())))}</p>'
    if readonly:
        note = f'<p class="bad" role="status">{esc(readonly)}</p>'
    buttons = "" if readonly else (
        f'<p><button type="submit" name="action" value="preview" class="plain">{esc(w["preview"])}</button> '
        f'<button type="submit" name="action" value="save">{esc(w["save"])}</button></p>')
    body = (f'<form method="post" action="{esc(action)}" id="playbook">{hidden(form)}'
            + f'<fieldset{" disabled" if readonly else ""} class="plain">'
            + guards_fieldset(data, errors, w) + rules_fieldsets(data, errors, w) + f'</fieldset>{buttons}</form>')
    return (f'<nav><h1>{esc(w["settings"])}</h1>{back}</nav>{note}{preview}<section>{body}</section>'
            + versions_section(versions, form, w, action, bool(readonly)))


def channel_names(w: Words) -> dict[str, str]:
    return {name: code for code, name in CHANNELS[w.lang].items()}


def tomorrow_of(today: date) -> date:
    return today + timedelta(days=1)


def take_action(state, form: dict, current: dict, w: Words, *, preview, adopt) -> tuple[dict, dict, str, str]:
    """What the settings form's button asks (preview, save or restore a saved version), the same on every CRM.

    `preview(playbook)` answers the dry run's HTML, `adopt(data, playbook, note)` saves a version and
    answers its number. Returns (the data shown, errors by field, the notice, the preview)."""
    from connector.errors import WebhookRejected
    from connector.webapp.forms import text_field
    from connector.webapp.pages import versions

    action = text_field(form, "action", max_len=20)
    data, errors, notice, shown = current, {}, "", ""
    if action in ("preview", "save"):
        data, errors = sf.apply_form(current, form, channel_names(w))
        playbook = None
        if not errors:
            playbook, errors = sf.validate(data)
        if playbook is not None and action == "preview":
            shown = preview(playbook)
        elif playbook is not None:
            notice = f'{w["saved"]} {adopt(data, playbook, "")}'
    elif action == "restore":
        version = text_field(form, "version", max_len=12)
        old = versions.data_of(state, int(version)) if version.isdigit() else None
        if old is None:
            raise WebhookRejected(400, "no such saved version")
        playbook, errors = sf.validate(old)
        if playbook is not None:
            number = adopt(old, playbook, f"{w['restored']} {version}")
            notice, data = f'{w["restored"]} {version} → {w["version"].lower()} {number}', old
    return data, errors, notice, shown
