"""The HTTP side: webhook URL routing, request parsing, limits and faults, JSON answers,
and the `/_emulator/*` control routes.

Doc: local-integrations/local-webhooks.md (`/rest/{user}/{code}/{method}[.json]`), settings/oauth/index.md
(`/rest/{method}` with `auth`; `/oauth/token/`),
settings/how-to-call-rest-api/general-principles.md (GET query, JSON or form POST),
settings/how-to-call-rest-api/list-methods-pecularities.md (`total`, `next`).
"""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .app_context import CALLER, resolve_caller
from .protocol import ApiError, fault_error, parse_php_query, query_limit_exceeded

if TYPE_CHECKING:  # pragma: no cover
    from .service import BitrixEmulator

MAX_BODY = 32 * 1024 * 1024


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, emu: BitrixEmulator) -> None:
        self.emu = emu
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    server_version = "BitrixEmulator/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests and benchmarks make thousands of requests

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    # ---- plumbing ----
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return b""
        if length > MAX_BODY:
            raise ApiError(413, "INVALID_REQUEST", "Request entity too large")
        return self.rfile.read(length)

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close the connection without an answer (the request already ran)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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

    def _handle(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            body = self._body()
        except ApiError as err:
            self._send(err.status, err.body())
            return
        if parts[:1] == ["_emulator"]:
            self._control(parts[1:], body)
            return
        if parts[:2] == ["oauth", "token"]:  # this host also plays the OAuth server (app_context.py)
            self.server.emu.stats_.count_request("oauth.token")
            self._send(*self.server.emu.app.token_endpoint(self._params(url.query, body)))
            return
        if parts[:1] != ["rest"]:
            self._send(404, {"error": "NOT_FOUND", "error_description": "Not found"})
            return
        self._rest(parts[1:], url.query, body)

    # ---- REST ----
    def _rest(self, parts: list[str], query: str, body: bytes) -> None:
        emu = self.server.emu
        started = time.monotonic()
        method = parts[-1].lower() if parts else ""
        for suffix in (".json", ".xml"):
            if method.endswith(suffix):
                method = method[: -len(suffix)]
        params = self._params(query, body)
        emu.stats_.count_request(method or "-")
        drop = False
        inner: list[str] = []
        try:
            caller = resolve_caller(emu, parts, params)  # webhook, or the app's `auth` token
            if method == "batch":
                inner = emu.dispatcher.inner_methods(params)
            if emu.bucket is not None and not emu.bucket.admit():
                raise query_limit_exceeded()  # refused before it runs
            status = emu.faults.take_fail(method, whole_request=True)
            if status is not None:
                raise fault_error(status)
            drawn = emu.faults.draw()
            if drawn == "drop":
                drop = True
            elif drawn is not None:
                raise fault_error(int(drawn))
            context = CALLER.set(caller)
            try:
                out = emu.dispatcher.execute(method, params)
            finally:
                CALLER.reset(context)
            drop = emu.faults.take_drop([method, *inner]) or drop
            status, payload = 200, {"result": out.result}
            if out.next is not None:
                payload["next"] = out.next
            if out.total is not None:
                payload["total"] = out.total
            payload["time"] = out.time
        except ApiError as err:
            status, payload = err.status, err.body()
        except Exception as exc:  # a bug in the emulator: answer like the portal's 500, say why on stderr
            traceback.print_exception(exc, file=sys.stderr)
            status, payload = 500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
        self._wait(emu.faults.latency([method, *inner]), started)
        if drop:
            self._drop()
            return
        self._send(status, payload)

    @staticmethod
    def _wait(latency: float, started: float) -> None:
        left = latency - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)

    # ---- control ----
    def _control(self, parts: list[str], body: bytes) -> None:
        emu = self.server.emu
        route = "/".join(parts)
        if parts[:1] == ["app"]:
            self._send(*emu.app.control(self.command, parts[1:], body))
            return
        if route == "stats" and self.command == "GET":
            self._send(200, emu.stats())
            return
        if route == "reset_stats" and self.command == "POST":
            emu.reset_stats()
            self._send(200, {"ok": True})
            return
        if route == "faults" and self.command == "POST":
            try:
                data = json.loads(body.decode("utf-8") or "{}")
                emu.apply_control(data if isinstance(data, dict) else {})
            except (ValueError, TypeError) as err:
                self._send(400, {"error": "BAD_CONTROL", "error_description": str(err)})
                return
            self._send(200, {"ok": True})
            return
        self._send(404, {"error": "NOT_FOUND", "error_description": f"no control route {route!r}"})
