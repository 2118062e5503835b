"""What a request is and what its answer is, whatever server carries them (asgi.py on uvicorn).

`handle(app, request)` is the one boundary between the server and the app: a parsed request in,
a `Reply` (status, headers, body bytes) out. Every request is hostile until proven otherwise: the
caller is verified (401/403) and only then is work queued; a full queue is 503 and a bug 500, and
none of them changes anything. The server side checks sizes and times before the body is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connector.errors import WebhookRejected
from connector.redact import redact
from connector.webapp.forms import parse_form
from connector.webapp.worker import QueueFull

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger("connector.webapp")

MAX_BODY_BYTES = 1024 * 1024  # design.md: bodies over 1 MiB are refused with 413
MAX_URL_LENGTH = 8192
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")  # OPTIONS: the amoCRM widget's CORS preflight


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    param: str = ""  # the `<secret>` of /amocrm/webhook/<secret>
    _form: dict | None = field(default=None, repr=False)

    def form(self) -> dict:
        if self._form is None:
            self._form = parse_form(self.body, self.headers.get("content-type"))
        return self._form


@dataclass(frozen=True)
class HtmlPage:
    """An HTML answer (the app's pages in the portal's frame); its headers carry the page's CSP."""

    body: str


@dataclass(frozen=True)
class Reply:
    """What goes back on the wire."""

    status: int
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict | HtmlPage] | tuple[int, dict | HtmlPage, dict[str, str]]
Route = Callable[[Request], Answer]


def handle(app: WebApp, request: Request) -> Reply:
    """Route the request, run its handler (blocking: the server calls this on a worker thread) and
    write the answer; the request's `param` is filled from the route."""
    try:
        route, request.param = app.route(request.method, request.path)
        answer = route(request)
        return reply(answer[0], answer[1], answer[2] if len(answer) > 2 else {})  # type: ignore[misc]
    except WebhookRejected as exc:
        return rejection(exc, request.path)
    except QueueFull:
        return reply(503, {"error": "busy, try again"}, {"Retry-After": "5"})
    except Exception:  # a bug: say so, never the details
        log.exception("webapp crashed path=%s", redact(request.path[:200]))
        return reply(500, {"error": "internal error"})


def rejection(exc: WebhookRejected, path: str) -> Reply:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 and path == "/status" else {}
    return reply(exc.status, {"error": exc.message}, headers)


def reply(status: int, payload: dict | HtmlPage, headers: dict[str, str] | None = None) -> Reply:
    if isinstance(payload, HtmlPage):
        data, ctype = payload.body.encode("utf-8"), "text/html; charset=utf-8"
    else:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ctype = "application/json; charset=utf-8"
    return Reply(status, {"Content-Type": ctype, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                          **(headers or {})}, data)
