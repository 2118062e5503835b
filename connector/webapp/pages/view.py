"""The pages' frame: one HTML document with inline CSS under a nonce, no script at all, and a strict
Content-Security-Policy; every value goes through `esc` (a product called `<script>` is shown as text)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from html import escape

from connector.webapp.http import HtmlPage

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f7fa;color:#1f2937;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:18px 18px 40px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 4px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:14px 16px;margin-top:16px}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f2;text-align:left;vertical-align:top}
th{background:#f9fafb;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px;background:#fff}
.card .label{color:#6b7280;font-size:12px}
.card .value{font-size:20px;font-weight:650}
.muted{color:#6b7280}
.error{color:#b91c1c;font-size:12px;display:block}
.ok{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:8px;padding:8px 10px}
.bad{background:#fef2f2;border:1px solid #fecaca;border-radius:8px;padding:8px 10px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.charts svg{max-width:100%;height:auto;border:1px solid #f0f1f3;border-radius:6px}
label{display:block;margin:6px 0 2px;color:#374151}
input[type=text],input[type=number],textarea{width:100%;padding:5px 7px;border:1px solid #d1d5db;border-radius:6px;
font:inherit}
textarea{min-height:54px}
fieldset{border:1px solid #e5e7eb;border-radius:8px;margin:10px 0;padding:8px 12px}
fieldset.plain{border:0;margin:0;padding:0}
legend{font-weight:600}
.row{display:flex;gap:12px;flex-wrap:wrap}.row>div{flex:1 1 200px}
button{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:7px 14px;font:inherit;cursor:pointer}
button.plain{background:#e5e7eb;color:#111827}
form.inline{display:inline}
nav{display:flex;gap:8px;align-items:center;margin-bottom:6px}
"""


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], *, numeric: Iterable[int] = (),
          empty: str = "—", raw: Iterable[int] = ()) -> str:
    """Rows of values, escaped; columns in `raw` are HTML the caller built (and escaped) itself."""
    numeric, raw = set(numeric), set(raw)
    heads = list(headers)
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{esc(h)}</th>' for i, h in enumerate(heads))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{v if i in raw else esc(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(heads)}" class="muted">{esc(empty)}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hidden(fields: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items())


def page(title: str, body: str, *, lang: str, frame_ancestors: str = "") -> tuple[HtmlPage, dict[str, str]]:
    """The document and its headers: no script may run, styles only with this answer's nonce, forms post
    back here only, framed only by the portal."""
    nonce = secrets.token_urlsafe(16)
    ancestors = frame_ancestors or "'none'"
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; form-action 'self'; "
           f"base-uri 'none'; frame-ancestors {ancestors}")
    html = (f'<!doctype html><html lang="{esc(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{esc(title)}</title>'
            f'<style nonce="{nonce}">{CSS}</style></head><body><main>{body}</main></body></html>')
    return HtmlPage(html), {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"}
