"""The HTTP side every emulator shares: a threading server, body limits, answers, dropped connections,
and the `/_emulator/...` control routes handed to the emulator. A CRM's handler only serves its API."""

from __future__ import annotations

import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from .emulator import Emulator

JSON = "application/json"


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, address, handler: type[EmulatorHandler], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class EmulatorHandler(BaseHTTPRequestHandler):
    """Reads the body (refusing one over `max_body_bytes`), answers control routes, then `serve`s."""

    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    max_body_bytes = 8 * 1024 * 1024

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: tests and benchmarks make thousands of requests

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    # ---- what a CRM's handler provides ----
    def serve(self, url: SplitResult, body: bytes) -> None:
        raise NotImplementedError

    def too_large(self) -> tuple:
        """The CRM's answer to a body over the limit: (status, payload[, content type])."""
        return 413, {"error": "Request entity too large"}

    # ---- the pipeline ----
    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.max_body_bytes:
            self.close_connection = True  # the unread body must not be taken for the next request
            self.reply(*self.too_large())
            return
        body = self.rfile.read(length) if length > 0 else b""
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["_emulator"]:
            self.reply(*self.server.emulator.control(self.command, parts[1:], body))
            return
        self.serve(url, body)

    # ---- answers ----
    def reply(self, status: int, payload: object = None, content_type: str = JSON,
              headers: dict[str, str] | None = None) -> None:
        """JSON (or bytes as they are) with its length; 204 without a body."""
        try:
            self.send_response(status)
            if status == 204:
                self.send_header("Content-Length", "0")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                return
            data = payload if isinstance(payload, bytes) else \
                json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self.send_header("Content-Type", content_type if content_type.startswith("text/")
                             else f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def drop(self) -> None:
        """Close the connection without an answer (the request already ran)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def wait_until(started: float, seconds: float) -> None:
        """Hold the answer until `seconds` after `started` (time.monotonic()): a slow answer, not a slow run."""
        left = seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)
