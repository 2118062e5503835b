"""The account's HTTP side on the shared kit: count, rate-gate, inject faults, authenticate, route, answer.

Doc: developers.kommo.com/docs/http-codes - 401 for a bad token, 429 with `retry_after` in a
problem+json body (no Retry-After header), 403 once the client is blocked (an nginx page).
"""

from __future__ import annotations

import json
import re
import time
from http import HTTPStatus
from urllib.parse import SplitResult, parse_qsl

from emulators.amocrm import chats, customers, routes_crm, routes_misc, routes_writeback
from emulators.amocrm.context import Ctx
from emulators.amocrm.query import parse_query
from emulators.amocrm.render import PROBLEM, ApiError, Reply, problem, validation_error
from emulators.kit import DROP, EmulatorHandler

_ID_RE = re.compile(r"/\d+(?=/|$)")
ROUTES = [(m, re.compile(p + r"/?$"), fn)
          for m, p, fn in chats.ROUTES + customers.ROUTES + routes_crm.ROUTES + routes_misc.ROUTES + routes_writeback.ROUTES]
BLOCK_PAGE = (b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1>"
              b"</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def gateway_page(status: int) -> bytes:
    """An nginx page as a gateway in front of the account shows it (HTML, never the API's JSON)."""
    title = f"{status} {HTTPStatus(status).phrase}" if status in HTTPStatus._value2member_map_ else str(status)
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


def template(path: str) -> str:
    return _ID_RE.sub("/{id}", path)


class Handler(EmulatorHandler):
    server_version = "nginx"
    sys_version = ""

    def do_PATCH(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    def too_large(self) -> tuple:
        return self._parts(problem(413, "Request entity too large"))

    # --- the pipeline --------------------------------------------------------------------------

    def serve(self, url: SplitResult, raw: bytes) -> None:
        emu = self.server.emulator
        method = self.command
        path = url.path.rstrip("/") or "/"
        calls = [f"{method} {path}", f"{method} {template(path)}"]
        emu.requests.count_request(calls[1])
        started = time.monotonic()
        reply = self._answer(emu, method, path, url.query, raw, calls)
        self.wait_until(started, emu.faults.latency(calls))
        if reply is None:  # applied, then the connection is cut before any answer
            self.drop()
            return
        bad = emu.bad_answers.take(calls) if reply.status < 400 else None
        if bad is not None and bad[0] == "html":
            reply = Reply(bad[1], gateway_page(bad[1]), "text/html")
        elif bad is not None:
            self._cut_short(reply)
            return
        self.reply(*self._parts(reply))

    def _cut_short(self, reply: Reply) -> None:
        """Headers promise the whole body; half of it comes, then the connection closes."""
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(
            reply.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", f"{reply.content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: max(1, len(data) // 2)])
            self.wfile.flush()
        except OSError:
            pass
        self.drop()

    def _answer(self, emu, method: str, path: str, query: str, raw: bytes, calls: list[str]) -> Reply | None:
        verdict = emu.gate.admit(self.client_address[0])
        if verdict == "403":
            return Reply(403, BLOCK_PAGE, "text/html")
        if verdict == "429":
            return problem(429, "You have sent too many requests in a given amount of time. The limit is "
                                f"{emu.gate.per_second:g} requests per second.", retry_after=emu.retry_after)
        fault = emu.faults.take(calls) or emu.faults.draw()
        if fault and fault not in (DROP, "400"):
            return self._fault_reply(fault, emu)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return problem(400, "Request body is not valid JSON")
        if fault == "400":  # refused by validation: nothing is applied
            items = body if isinstance(body, list) else [body or {}]
            first = items[0] if items and isinstance(items[0], dict) else {}
            rid = str(first.get("request_id", "0"))
            return validation_error([(rid, "NotSupportedChoice", "text", "Injected validation failure")]).reply()
        reply = self._route(emu, method, path, query, body)
        limit = emu.gateway_timeout_over
        if limit is not None and method in ("POST", "PATCH") and isinstance(body, list) and len(body) > limit:
            return Reply(504, b"", "text/html")  # applied, but the gateway stopped waiting
        return None if fault == DROP else reply

    @staticmethod
    def _parts(reply: Reply) -> tuple:
        return reply.status, reply.body, reply.content_type, reply.headers

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
