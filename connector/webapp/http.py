"""The webhook app's HTTP side on the standard library: read at most 1 MiB, route, answer JSON.

Every request is hostile until proven otherwise: the size is checked before reading (413), the
body is parsed strictly (400), the caller is verified (401/403) and only then is work queued; a
full queue is 503 and a bug 500, and none of them changes anything. Request lines are logged
without query strings and with the amoCRM path secret masked. A connection gets a worker thread only
once its head has arrived (waiting_room.py), for one request, and its body has a deadline, so slow
or half-open connections cannot starve the others.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from connector.errors import WebhookRejected
from connector.redact import redact
from connector.webapp.forms import parse_form
from connector.webapp.waiting_room import (
    HEADER_TIMEOUT_SECONDS,
    MAX_WAITING,
    MAX_WAITING_PER_CLIENT,
    WaitingRoom,
)
from connector.webapp.worker import QueueFull

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger("connector.webapp")

MAX_BODY_BYTES = 1024 * 1024  # design.md: bodies over 1 MiB are refused with 413
MAX_CONCURRENT_REQUESTS = 64  # requests being read or answered at once; more are answered 503 without a thread
READ_TIMEOUT_SECONDS = 15  # a client silent this long while sending its body is cut off...
BODY_TIMEOUT_SECONDS = 30  # ... and a body must be complete within this, however it trickles in
MAX_URL_LENGTH = 8192


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


Answer = tuple[int, dict | HtmlPage] | tuple[int, dict | HtmlPage, dict[str, str]]
Route = Callable[[Request], Answer]


class AppHTTPServer(HTTPServer):
    """Accepts on one thread, parks each connection in the waiting room until its head arrives, then
    gives it a worker thread (one of MAX_CONCURRENT_REQUESTS slots) for one request."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app: WebApp) -> None:
        self.app = app
        self.header_timeout = HEADER_TIMEOUT_SECONDS
        self.body_timeout = BODY_TIMEOUT_SECONDS
        self.max_waiting = MAX_WAITING
        self.max_waiting_per_client = MAX_WAITING_PER_CLIENT
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self.room = WaitingRoom(self._head_arrived, self)  # before binding: a failed bind calls server_close
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        self.room.add(request, client_address)  # no thread yet: a silent client costs only its socket

    def _head_arrived(self, sock: socket.socket, client_address, head: bytes) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(sock)
            return
        try:
            threading.Thread(target=self._serve_one, args=(sock, client_address, head), daemon=True,
                             name="repeat-sales-request").start()
        except BaseException:
            self._slots.release()
            self.shutdown_request(sock)
            raise

    def _serve_one(self, sock: socket.socket, client_address, head: bytes) -> None:
        try:
            self.RequestHandlerClass(Arrived(sock, head), client_address, self)
        except Exception as exc:
            log.debug("http connection error=%s", type(exc).__name__)
        finally:
            self.shutdown_request(sock)
            self._slots.release()

    def shutdown_request(self, request) -> None:
        super().shutdown_request(request.sock if isinstance(request, Arrived) else request)

    def server_close(self) -> None:
        super().server_close()
        self.room.stop()


@dataclass
class Arrived:
    """A connection whose head has arrived, with the bytes already read from it."""

    sock: socket.socket
    head: bytes


class _Replay(io.RawIOBase):
    """The bytes the waiting room read first, then the socket itself."""

    def __init__(self, head: bytes, sock: socket.socket) -> None:
        self.head, self.sock = memoryview(head), sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.sock.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sock.sendall(data)
        return memoryview(data).nbytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "repeat-sales"
    sys_version = ""
    timeout = READ_TIMEOUT_SECONDS
    server: AppHTTPServer

    def setup(self) -> None:
        arrived: Arrived = self.request
        self.request = self.connection = arrived.sock
        self.connection.settimeout(self.timeout)
        self.rfile = io.BufferedReader(_Replay(arrived.head, arrived.sock))
        self.wfile = _Writer(arrived.sock)

    def handle(self) -> None:
        """One request per connection: a kept-alive connection would hold its slot while idle."""
        self.close_connection = True
        self.handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - stdlib names
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def do_OPTIONS(self) -> None:  # noqa: N802 - a browser's CORS preflight (amoCRM widget's X-Auth-Token)
        self._serve()

    def log_request(self, code="-", size="-") -> None:
        path = urlsplit(self.path).path[:200]
        log.info("http method=%s path=%s status=%s", self.command, redact(path), code)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("http %s", redact(format % args))

    def _serve(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        app = self.server.app
        headers: dict[str, str] = {}
        body_read = False
        try:
            if len(self.path) > MAX_URL_LENGTH:
                raise WebhookRejected(414, "the address is too long")
            route, param = app.route(self.command, url.path)
            body = self._body()
            body_read = True
            request = Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                              {k.lower(): v for k, v in self.headers.items()}, body, param)
            answer = route(request)
            status, payload = answer[0], answer[1]
            if len(answer) > 2:
                headers = answer[2]  # type: ignore[misc]
        except WebhookRejected as exc:
            status, payload = exc.status, {"error": exc.message}
            if status == 401:
                headers = {"WWW-Authenticate": "Bearer"} if url.path == "/status" else {}
        except QueueFull:
            status, payload = 503, {"error": "busy, try again"}
            headers = {"Retry-After": "5"}
        except Exception:  # a bug: say so, never the details
            log.exception("webapp crashed path=%s", redact(url.path[:200]))
            status, payload = 500, {"error": "internal error"}
        if not body_read:
            self.close_connection = True  # an unread body must not be taken for the next request
        self._send(status, payload, headers)
        log.debug("http elapsed=%.3f", time.monotonic() - started)

    def _body(self) -> bytes:
        """At most MAX_BODY_BYTES, with a Content-Length; chunked bodies are refused (400)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise WebhookRejected(400, "chunked bodies are not accepted; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.command in ("POST", "PUT", "PATCH"):
                self.close_connection = True
                raise WebhookRejected(400, "Content-Length is required")
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise WebhookRejected(400, "bad Content-Length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread
            raise WebhookRejected(413, "the body is larger than 1 MiB")
        body = self._read_body(length)
        if len(body) != length:
            self.close_connection = True
            raise WebhookRejected(400, "the body was cut short")
        return body

    def _read_body(self, length: int) -> bytes:
        """`length` bytes or fewer (the client hung up); 408 when they trickle past the body deadline."""
        deadline = time.monotonic() + self.server.body_timeout
        chunks, got = [], 0
        while got < length:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close_connection = True
                raise WebhookRejected(408, "the body came too slowly")
            self.connection.settimeout(min(left, READ_TIMEOUT_SECONDS))
            try:
                chunk = self.rfile.read1(min(length - got, 65536))
            except TimeoutError:
                self.close_connection = True
                raise WebhookRejected(408, "the body came too slowly") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _send(self, status: int, payload: dict | HtmlPage, headers: dict[str, str]) -> None:
        if isinstance(payload, HtmlPage):
            data, ctype = payload.body.encode("utf-8"), "text/html; charset=utf-8"
        else:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            ctype = "application/json; charset=utf-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in headers.items():
                self.send_header(name, value)
            self.close_connection = True  # one request per connection (see handle)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away
