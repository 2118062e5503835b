"""The portal's HTTP side on the shared kit: webhook URL routing, request parsing, the leaky bucket
and faults around each REST call, and Bitrix24's JSON envelopes.

Doc: local-integrations/local-webhooks.md (`/rest/{user}/{code}/{method}[.json]`), settings/oauth/index.md
(`/rest/{method}` with `auth`; `/oauth/token/`),
settings/how-to-call-rest-api/general-principles.md (GET query, JSON or form POST),
settings/how-to-call-rest-api/list-methods-pecularities.md (`total`, `next`).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import TYPE_CHECKING
from urllib.parse import SplitResult

from emulators.kit import DROP, EmulatorHandler

from .app_context import CALLER, resolve_caller
from .dispatch import RequestCut
from .protocol import ApiError, fault_error, parse_php_query, query_limit_exceeded

# What a gateway shows when the portal's 60-s cut stops a request. Doc: settings/performance/limits.md
CUT_PAGE = (b"<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out"
            b"</h1></center><hr><center>nginx</center></body></html>")
# A blocked or suspended portal answers a page for people, not JSON (fast-bitrix24 issue #216).
BLOCKED_PAGE = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Портал заблокирован</title></head>"
                "<body><h1>Портал временно недоступен</h1></body></html>").encode()

if TYPE_CHECKING:  # pragma: no cover
    from .service import BitrixEmulator


class Handler(EmulatorHandler):
    server_version = "BitrixEmulator/1.0"
    max_body_bytes = 32 * 1024 * 1024

    @property
    def emu(self) -> BitrixEmulator:
        return self.server.emulator

    def too_large(self) -> tuple:
        return 413, ApiError(413, "INVALID_REQUEST", "Request entity too large").body()

    def _params(self, query: str, body: bytes) -> dict:
        params = parse_php_query(query) if query else {}
        if not body:
            return params
        ctype = (self.headers.get("Content-Type") or "").lower()
        text = body.decode("utf-8", errors="replace")
        if "json" in ctype or (not ctype and text.lstrip().startswith("{")):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if isinstance(data, dict):
                params.update(data)
            return params
        params.update(parse_php_query(text))
        return params

    def serve(self, url: SplitResult, body: bytes) -> None:
        parts = [p for p in url.path.split("/") if p]
        if parts[:2] == ["oauth", "token"]:  # this host also plays the OAuth server (app_context.py)
            self.emu.requests.count_request("oauth.token")
            started = time.monotonic()
            answer = self.emu.app.token_endpoint(self._params(url.query, body))
            self.wait_until(started, self.emu.faults.latency(["oauth.token"]))  # set_latency(ms, call="oauth.token")
            self.reply(*answer)
            return
        if parts[:1] != ["rest"]:
            self.reply(404, {"error": "NOT_FOUND", "error_description": "Not found"})
            return
        self._rest(parts[1:], url.query, body)

    # ---- REST ----
    def _rest(self, parts: list[str], query: str, body: bytes) -> None:
        emu = self.emu
        started = time.monotonic()
        method = parts[-1].lower() if parts else ""
        for suffix in (".json", ".xml"):
            if method.endswith(suffix):
                method = method[: -len(suffix)]
        params = self._params(query, body)
        emu.requests.count_request(method or "-")
        drop = truncate = False
        inner: list[str] = emu.dispatcher.inner_methods(params) if method == "batch" else []
        html_status = emu.bad_answers.take_html([method, *inner])
        if html_status is not None:  # nothing runs: the portal is not serving REST at all
            self.reply(html_status, BLOCKED_PAGE, content_type="text/html; charset=utf-8")
            return
        try:
            caller = resolve_caller(emu, parts, params)  # webhook, or the app's `auth` token
            if emu.bucket is not None and not emu.bucket.admit():
                raise query_limit_exceeded()  # refused before it runs
            status = emu.faults.take([method], drop=False)
            if status is not None:
                raise fault_error(int(status))
            drawn = emu.faults.draw()
            if drawn == DROP:
                drop = True
            elif drawn is not None:
                raise fault_error(int(drawn))
            context = CALLER.set(caller)
            try:
                out = emu.dispatcher.execute(method, params)
            finally:
                CALLER.reset(context)
            # a queued drop strikes a request that ran, its method's or that of a command in its batch
            drop = emu.faults.take([method, *inner], fail=False) is not None or drop
            truncate = emu.bad_answers.take_truncation([method, *inner])
            status, payload = 200, {"result": out.result}
            if out.next is not None:
                payload["next"] = out.next
            if out.total is not None:
                payload["total"] = out.total
            payload["time"] = out.time
        except ApiError as err:
            status, payload = err.status, err.body()
        except RequestCut:  # what ran stays done and billed; the caller gets the gateway's page
            emu.dispatcher.refuse("cut")
            self.wait_until(started, emu.faults.latency([method, *inner]))
            self.reply(504, CUT_PAGE, content_type="text/html")
            return
        except Exception as exc:  # a bug in the emulator: answer like the portal's 500, say why on stderr
            traceback.print_exception(exc, file=sys.stderr)
            status, payload = 500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
        self.wait_until(started, emu.faults.latency([method, *inner]))
        if drop:
            self.drop()
            return
        if truncate:
            self.reply_truncated(status, payload)
            return
        self.reply(status, payload)

    def reply_truncated(self, status: int, payload: object) -> None:
        """JSON that stops half-way, sent as a whole body (PHP stopped while writing it)."""
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.reply(status, data[: max(1, len(data) // 2)])
