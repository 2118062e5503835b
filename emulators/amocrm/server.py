"""The emulator's HTTP front: count, delay, rate-gate, inject faults, authenticate, route, answer.

Doc: developers.kommo.com/docs/http-codes - 401 for a bad token, 429 with `retry_after` in a
problem+json body (no Retry-After header), 403 once the client is blocked (an nginx page).
"""

from __future__ import annotations

import json
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from emulators.amocrm import routes_crm, routes_misc, routes_writeback
from emulators.amocrm.context import Ctx
from emulators.amocrm.query import parse_query
from emulators.amocrm.render import PROBLEM, ApiError, Reply, problem, validation_error

MAX_BODY_BYTES = 8 * 1024 * 1024
_ID_RE = re.compile(r"/\d+(?=/|$)")
ROUTES = [(m, re.compile(p + r"/?$"), fn)
          for m, p, fn in routes_crm.ROUTES + routes_misc.ROUTES + routes_writeback.ROUTES]
BLOCK_PAGE = (b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1>"
              b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def template(path: str) -> str:
    return _ID_RE.sub("/{id}", path)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, emulator) -> None:
        super().__init__(address, Handler)
        self.emulator = emulator


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer
    server_version = "nginx"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # --- the pipeline --------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        emu = self.server.emulator
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(problem(413, "Request entity too large"))
            return
        raw = self.rfile.read(length) if length else b""
        if path.startswith("/_emulator/"):
            self._send(emu.control(method, path, raw))
            return
        name = f"{method} {template(path)}"
        emu.count(name)
        delay = emu.faults.delay(method, path, template(path))
        if delay:
            time.sleep(delay)
        verdict = emu.gate.admit(self.client_address[0])
        if verdict == "403":
            self._send(Reply(403, BLOCK_PAGE, "text/html"))
            return
        if verdict == "429":
            self._send(problem(429, "You have sent too many requests in a given amount of time. The limit is "
                                    f"{emu.gate.per_second:g} requests per second.", retry_after=emu.retry_after))
            return
        fault = emu.faults.next_fault(method, path, template(path))
        if fault and fault not in ("drop", "400"):
            self._send(self._fault_reply(fault, emu))
            return
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._send(problem(400, "Request body is not valid JSON"))
            return
        if fault == "400":  # refused by validation: nothing is applied
            items = body if isinstance(body, list) else [body or {}]
            first = items[0] if items and isinstance(items[0], dict) else {}
            rid = str(first.get("request_id", "0"))
            self._send(validation_error([(rid, "NotSupportedChoice", "text", "Injected validation failure")]).reply())
            return
        reply = self._route(emu, method, path, parts.query, body)
        limit = emu.gateway_timeout_over
        if limit is not None and method in ("POST", "PATCH") and isinstance(body, list) and len(body) > limit:
            self._send(Reply(504, b"", "text/html"))  # applied, but the gateway stopped waiting
            return
        if fault == "drop":  # applied, then the connection is cut before any answer
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(reply)

    def _fault_reply(self, fault: str, emu) -> Reply:
        status = int(fault)
        if status == 429:
            return problem(429, "You have sent too many requests in a given amount of time.", retry_after=emu.retry_after)
        if status == 401:
            return problem(401, "Invalid user name or password")
        if status == 504:
            return Reply(504, b"", "text/html")
        return problem(status, "Injected failure")

    def _route(self, emu, method: str, path: str, query: str, body: object) -> Reply:
        if path == "/oauth2/access_token":
            if method != "POST":
                return problem(405, "Method Not Allowed")
            status, answer = emu.auth.token_endpoint(body)
            return Reply(status, answer, "application/json" if status == 200 else PROBLEM)
        if not path.startswith(("/api/v4/", "/api/v2/salesbot/")):  # Salesbot starts are still API v2
            return problem(404, f"Cannot {method} {path}")
        header = self.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token or not emu.auth.check(token):
            return problem(401, "Invalid user name or password")
        allowed = False
        for route_method, pattern, fn in ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            allowed = True
            if route_method != method:
                continue
            ctx = Ctx(emu.store, emu.base_url, method, path, parse_qsl(query, keep_blank_values=True),
                      parse_query(query), body, {k: v for k, v in match.groupdict().items() if v is not None})
            try:
                return fn(ctx)
            except ApiError as exc:
                return exc.reply()
            except (KeyError, TypeError, ValueError) as exc:
                return problem(400, f"Request validation failed: {type(exc).__name__}")
        return problem(405, "Method Not Allowed") if allowed else problem(404, f"Cannot {method} {path}")

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.status == 204:
                self.send_header("Content-Length", "0")
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body, ensure_ascii=False).encode()
            ctype = reply.content_type if reply.content_type.startswith("text/") else f"{reply.content_type}; charset=utf-8"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
