"""Inline SVG charts with titles, labelled axes, legends and printed values; no script, no URL.

Every chart is an `<svg id="chart-<name>" data-chart="<name>">`, so a test (or a reader's
browser) can find it; an empty data set draws the frame and says why instead of a blank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from playbooks import numbers

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777")
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"
HEAT_LOW, HEAT_HIGH = (239, 246, 255), (30, 64, 175)  # light to dark blue


def fmt(value: float | None, unit: str = "number", lang: str = "en") -> str:
    """A value for a label: share -> 12.3% (12,3 %), money and count -> 12,345 (12 345), else 2 decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "share":
        return numbers.share(value, lang)
    if unit == "pp":
        return numbers.points(value, lang)
    if unit in ("money", "count"):
        return numbers.number(value, lang)
    return numbers.number(value, lang, 2)


NO_DATA = {"en": "no data yet", "ru": "данных пока нет"}


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about `count` of them)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v < hi + step * 0.999:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _t(x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle", color: str = INK,
       weight: str = "normal", rotate: int | None = None, extra: str = "") -> str:
    transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
            f'font-weight="{weight}"{transform}{extra}>{escape(str(text))}</text>')


def _label(x: float, y: float, text: str, *, size: int = 10, color: str = MUTED) -> str:
    """A category label; a newline in it starts a second line (e.g. month, then year)."""
    return "".join(_t(x, y + i * (size + 2), line, size=size, color=color) for i, line in enumerate(text.split("\n")))


def _frame(name: str, title: str, width: int, height: int, body: list[str], subtitle: str = "") -> str:
    head = [_t(12, 22, title, size=15, anchor="start", weight="600")]
    if subtitle:
        head.append(_t(12, 40, subtitle, size=11, anchor="start", color=MUTED))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{escape(name)}" data-chart="{escape(name)}" '
            f'class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">'
            f'<title>{escape(title)}</title><rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>'
            + "".join(head) + "".join(body) + "</svg>")


def empty_chart(name: str, title: str, message: str, *, width: int = 536, height: int = 160) -> str:
    """The frame and title of a chart with nothing to draw, and the reason, wrapped."""
    per_line = max(20, int((width - 60) / 7))
    lines: list[str] = []
    for word in message.split():
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines.append(word)
    middle = 52 + (height - 64) / 2 + 4 - 9 * (len(lines) - 1)
    body = [f'<rect x="12" y="52" width="{width - 24}" height="{height - 64}" fill="#f9fafb" stroke="{GRID}"/>']
    body += [_t(width / 2, middle + 18 * i, line, size=13, color=MUTED) for i, line in enumerate(lines)]
    return _frame(name, title, width, height, body)


def _legend(x: float, y: float, names: Sequence[str], colors: Sequence[str]) -> list[str]:
    out = []
    for name, color in zip(names, colors, strict=False):
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" rx="2" fill="{color}"/>')
        out.append(_t(x + 17, y + 1, name, size=11, anchor="start"))
        x += 30 + 7 * len(name)
    return out


def _y_axis(ticks: Sequence[float], scale: Callable[[float], float], left: float, right: float,
            unit: str, label: str, top: float, bottom: float, lang: str = "en") -> list[str]:
    out = []
    for v in ticks:
        y = scale(v)
        out.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(_t(left - 6, y + 4, fmt(v, unit, lang), size=10, anchor="end", color=MUTED))
    out.append(f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{bottom:.1f}" stroke="{INK}"/>')
    out.append(_t(14, (top + bottom) / 2, label, size=11, color=MUTED, rotate=-90))
    return out


def line_chart(name: str, title: str, x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               *, unit: str = "number", y_label: str = "", x_label: str = "", width: int = 536,
               height: int = 300, subtitle: str = "", lang: str = "en") -> str:
    """Lines over categories (months); every point is marked and labelled with its value."""
    values = [v for _n, vs in series for v in vs if v is not None]
    if not values or not x_labels:
        return empty_chart(name, title, NO_DATA.get(lang, NO_DATA["en"]), width=width)
    left, right, top, bottom = 70, width - 20, 62 if subtitle else 50, height - 58
    ticks = nice_ticks(min(0.0, min(values)), max(values))
    lo, hi = ticks[0], ticks[-1]

    def sy(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    step = (right - left) / max(len(x_labels), 1)

    def sx(i: int) -> float:
        return left + step * (i + 0.5)

    body = _y_axis(ticks, sy, left, right, unit, y_label, top, bottom, lang)
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="{INK}"/>')
    for i, lbl in enumerate(x_labels):
        body.append(_label(sx(i), bottom + 14, lbl))
    body.append(_t((left + right) / 2, height - 14 - (16 if len(series) > 1 else 0), x_label, size=11, color=MUTED))
    for k, (_sname, vs) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        path, pen = [], "M"
        for i, v in enumerate(vs):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{sx(i):.1f},{sy(v):.1f}")
            pen = "L"
        body.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2.2"/>')
        for i, v in enumerate(vs):
            if v is not None:
                body.append(f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="3.2" fill="{color}"/>')
                body.append(_t(sx(i), sy(v) - 7, fmt(v, unit, lang), size=9, color=INK))
    if len(series) > 1:
        body += _legend(left, height - 30, [n for n, _v in series], PALETTE)
    return _frame(name, title, width, height, body, subtitle)


def bar_chart(name: str, title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
              *, unit: str = "count", y_label: str = "", x_label: str = "", width: int = 536,
              height: int = 320, subtitle: str = "", notes: Sequence[str] | None = None, lang: str = "en") -> str:
    """Vertical (grouped) bars with the value on each bar; a legend when there are several series.

    `notes` (one per category) are printed under the category label, e.g. "n = 120".
    """
    values = [v for _n, vs in series for v in vs if v is not None]
    if not values or not categories:
        return empty_chart(name, title, NO_DATA.get(lang, NO_DATA["en"]), width=width)
    left, right, top = 70, width - 20, 66 if subtitle else 54
    bottom = height - (78 if len(series) > 1 else 60)
    ticks = nice_ticks(min(0.0, min(values)), max(values))
    lo, hi = ticks[0], ticks[-1]

    def sy(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    body = _y_axis(ticks, sy, left, right, unit, y_label, top, bottom, lang)
    group = (right - left) / len(categories)
    bar = min(46.0, group * 0.8 / len(series))
    for i, cat in enumerate(categories):
        gx = left + group * i + (group - bar * len(series)) / 2
        for k, (_sname, vs) in enumerate(series):
            v = vs[i]
            if v is None:
                continue
            x, y_top = gx + bar * k, min(sy(v), sy(0))
            body.append(f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{bar - 2:.1f}" height="{abs(sy(v) - sy(0)) or 0.5:.1f}" '
                        f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(cat)}: {fmt(v, unit, lang)}</title></rect>')
            body.append(_t(x + (bar - 2) / 2, y_top - 4, fmt(v, unit, lang), size=9))
        label = cat if len(cat) * 6 < group else cat[: max(3, int(group / 6) - 1)] + "…"
        body.append(_label(left + group * (i + 0.5), bottom + 14, label))
        if notes:
            body.append(_t(left + group * (i + 0.5), bottom + 26, notes[i], size=9, color=MUTED))
    body.append(f'<line x1="{left}" y1="{sy(0):.1f}" x2="{right}" y2="{sy(0):.1f}" stroke="{INK}"/>')
    body.append(_t((left + right) / 2, bottom + (42 if notes else 32), x_label, size=11, color=MUTED))
    if len(series) > 1:
        body += _legend(left, height - 14, [n for n, _v in series], PALETTE)
    return _frame(name, title, width, height, body, subtitle)


def hbar_chart(name: str, title: str, categories: Sequence[str], values: Sequence[float], *,
               unit: str = "count", x_label: str = "", width: int = 536, subtitle: str = "",
               notes: Sequence[str] | None = None, lang: str = "en") -> str:
    """Horizontal bars for long category names (segments), value at each bar's end."""
    if not categories:
        return empty_chart(name, title, NO_DATA.get(lang, NO_DATA["en"]), width=width)
    top = 66 if subtitle else 54
    row = 24
    height = top + row * len(categories) + 50
    left = 20 + min(170, 7 * max(len(c) for c in categories))
    ends = [fmt(v, unit, lang) + (f"  {notes[i]}" if notes else "") for i, v in enumerate(values)]
    right = width - 12 - 6 * max(len(e) for e in ends)
    ticks = nice_ticks(0.0, max(max(values), 0.0) or 1.0)
    hi = ticks[-1]

    def sx(v: float) -> float:
        return left + v / hi * (right - left)

    bottom = top + row * len(categories)
    body = []
    for v in ticks:
        body.append(f'<line x1="{sx(v):.1f}" y1="{top}" x2="{sx(v):.1f}" y2="{bottom}" stroke="{GRID}"/>')
        body.append(_t(sx(v), bottom + 14, fmt(v, unit, lang), size=10, color=MUTED))
    for i, (cat, v) in enumerate(zip(categories, values, strict=True)):
        y = top + row * i
        body.append(f'<rect x="{left}" y="{y + 4}" width="{max(sx(v) - left, 0.5):.1f}" height="{row - 8}" '
                    f'fill="{PALETTE[0]}"><title>{escape(cat)}: {fmt(v, unit, lang)}</title></rect>')
        body.append(_t(left - 6, y + row / 2 + 4, cat, size=11, anchor="end"))
        body.append(_t(sx(v) + 5, y + row / 2 + 4, ends[i], size=10, anchor="start"))
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="{INK}"/>')
    body.append(_t((left + right) / 2, bottom + 34, x_label, size=11, color=MUTED))
    return _frame(name, title, width, height, body, subtitle)


def _heat(share: float) -> str:
    c = [round(a + (b - a) * share) for a, b in zip(HEAT_LOW, HEAT_HIGH, strict=True)]
    return f"rgb({c[0]},{c[1]},{c[2]})"


def heatmap(name: str, title: str, row_labels: Sequence[str], col_labels: Sequence[str],
            values: Sequence[Sequence[float | None]], *, unit: str = "count", x_label: str = "",
            y_label: str = "", second: Sequence[Sequence[str]] | None = None, width: int = 536,
            cell_h: int = 34, subtitle: str = "", legend_label: str = "", lang: str = "en") -> str:
    """A grid coloured by value (empty cells grey), each cell printing its value and an optional
    second line (`second`, e.g. the average spend); a colour scale from 0 to the maximum."""
    flat = [v for r in values for v in r if v is not None]
    if not flat or not row_labels or not col_labels:
        return empty_chart(name, title, NO_DATA.get(lang, NO_DATA["en"]), width=width)
    top = 84 if subtitle else 62
    left = 34 + min(130, 7 * max(len(r) for r in row_labels))
    right = width - 20
    cell_w = (right - left) / len(col_labels)
    bottom = top + cell_h * len(row_labels)
    height = bottom + 84
    hi = max(flat) or 1.0
    lo = min(0.0, min(flat))
    body = []
    for j, lbl in enumerate(col_labels):
        body.append(_t(left + cell_w * (j + 0.5), top - 6, lbl, size=10, color=MUTED))
    for i, lbl in enumerate(row_labels):
        y = top + cell_h * i
        body.append(_t(left - 6, y + cell_h / 2 + 4, lbl, size=10, anchor="end", color=MUTED))
        for j in range(len(col_labels)):
            v = values[i][j]
            x = left + cell_w * j
            share = 0.0 if v is None else (v - lo) / (hi - lo or 1.0)
            fill = "#f3f4f6" if v is None else _heat(share)
            ink = "#ffffff" if share > 0.55 else INK
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" fill="{fill}">'
                        f'<title>{escape(lbl)} / {escape(col_labels[j])}: {fmt(v, unit, lang)}</title></rect>')
            if v is None:
                continue
            line2 = second[i][j] if second else ""
            body.append(_t(x + cell_w / 2, y + cell_h / 2 + (0 if line2 else 4), fmt(v, unit, lang), size=10, color=ink))
            if line2:
                body.append(_t(x + cell_w / 2, y + cell_h / 2 + 12, line2, size=9, color=ink))
    body.append(_t((left + right) / 2, top - 22, x_label, size=11, color=MUTED))
    body.append(_t(14, (top + bottom) / 2, y_label, size=11, color=MUTED, rotate=-90))
    # colour scale
    ly = bottom + 26
    steps = 10
    for k in range(steps):
        body.append(f'<rect x="{left + k * 24}" y="{ly}" width="24" height="10" fill="{_heat(k / (steps - 1))}"/>')
    body.append(_t(left, ly + 24, fmt(lo, unit, lang), size=10, anchor="start", color=MUTED))
    body.append(_t(left + steps * 24, ly + 24, fmt(hi, unit, lang), size=10, anchor="end", color=MUTED))
    body.append(_t(left + steps * 24 + 10, ly + 9, legend_label, size=10, anchor="start", color=MUTED))
    return _frame(name, title, width, height, body, subtitle)


def forest_plot(name: str, title: str, labels: Sequence[str], estimates: Sequence[float | None],
                lows: Sequence[float | None], highs: Sequence[float | None], *, notes: Sequence[str],
                x_label: str = "", width: int = 536, subtitle: str = "", lang: str = "en") -> str:
    """Point estimates with 95% interval whiskers around a zero line; rows without an estimate
    print their note (e.g. "sample too small to tell") instead."""
    if not labels:
        return empty_chart(name, title, "действий ещё не было" if lang == "ru" else "no actions written yet", width=width)
    top = 66 if subtitle else 54
    row = 30
    bottom = top + row * len(labels)
    height = bottom + 52
    left = 20 + min(150, 7 * max(len(lbl) for lbl in labels))
    right = width - 24
    bounds = [v for v in (*lows, *highs) if v is not None] or [-0.1, 0.1]
    span = max(abs(min(bounds)), abs(max(bounds)), 0.05)
    ticks = nice_ticks(-span, span)

    def sx(v: float) -> float:
        return left + (v - ticks[0]) / (ticks[-1] - ticks[0]) * (right - left)

    body = []
    for v in ticks:
        body.append(f'<line x1="{sx(v):.1f}" y1="{top}" x2="{sx(v):.1f}" y2="{bottom}" stroke="{GRID}"/>')
        body.append(_t(sx(v), bottom + 14, fmt(v, "pp", lang), size=10, color=MUTED))
    body.append(f'<line x1="{sx(0):.1f}" y1="{top - 4}" x2="{sx(0):.1f}" y2="{bottom}" stroke="{INK}" '
                f'stroke-dasharray="4 3"/>')
    for i, lbl in enumerate(labels):
        y = top + row * i + row / 2
        body.append(_t(left - 8, y + 4, lbl, size=11, anchor="end"))
        est, lo, hi = estimates[i], lows[i], highs[i]
        if est is None or lo is None or hi is None:
            body.append(f'<rect x="{left + 2}" y="{y - 9:.1f}" width="{right - left - 4}" height="18" fill="#f9fafb"/>')
            body.append(_t(left + 8, y + 4, notes[i], size=10, anchor="start", color=MUTED))
            continue
        color = PALETTE[2] if lo > 0 else PALETTE[3] if hi < 0 else PALETTE[0]
        body.append(f'<line x1="{sx(lo):.1f}" y1="{y:.1f}" x2="{sx(hi):.1f}" y2="{y:.1f}" stroke="{color}" '
                    f'stroke-width="2"/>')
        for v in (lo, hi):
            body.append(f'<line x1="{sx(v):.1f}" y1="{y - 6:.1f}" x2="{sx(v):.1f}" y2="{y + 6:.1f}" '
                        f'stroke="{color}" stroke-width="2"/>')
        body.append(f'<rect x="{sx(est) - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{color}">'
                    f'<title>{escape(notes[i])}</title></rect>')
        body.append(_t(sx(est), y - 9, fmt(est, "pp", lang), size=9, color=INK))
    body.append(_t((left + right) / 2, bottom + 34, x_label, size=11, color=MUTED))
    return _frame(name, title, width, height, body, subtitle)
