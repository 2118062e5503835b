"""uvicorn under the webhook app: one process in a thread (`WebApp.start`), or `serve --workers N`.

uvicorn gives a connection no deadline before its first request head, so a slow network or a
slowloris could keep sockets open for ever. `GuardedH11Protocol` adds one: a head (the first, or
the next on a kept-alive connection) that does not arrive within `header_timeout` is answered 408;
one client address may keep at most `max_waiting_per_client` connections waiting for a head (its
oldest are let go first), and when `max_waiting` are waiting the oldest makes way. Waiting costs a
socket, never a thread; requests in flight are capped per client in asgi.py.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("connector.webapp")

HEADER_TIMEOUT_SECONDS = 10.0  # the whole head (request line and headers) must arrive within this
MAX_HEAD_BYTES = 64 * 1024  # a longer head is refused (400) by h11
BACKLOG = 128
TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
GRACEFUL_SECONDS = 30  # on stop, requests in flight get this long to finish


@dataclass(eq=False)
class Limits:
    """The server's limits, read at each use (a test may shorten them on a running server)."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = 30.0  # a body must be complete within this, however it trickles in
    read_timeout: float = 15.0  # ... and a client silent this long while sending it is cut off
    max_waiting: int = 512  # connections waiting for their head, all clients together
    max_waiting_per_client: int = 128  # ... and from one address (behind a proxy every client shares one)
    max_requests: int = 64  # requests being read or answered at once; more are answered 503
    max_requests_per_client: int = 32  # ... and from one address, so one client cannot take every slot
    slot_wait: float = 5.0  # a request over either waits this long for a slot before its 503 (ClientLimit)
    waiting: OrderedDict = field(default_factory=OrderedDict, repr=False)  # protocol -> None, oldest first


DEFAULT_LIMITS = Limits()  # the limits of `serve --workers N`'s processes


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head and a per-client waiting cap."""

    limits: Limits = DEFAULT_LIMITS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._head_timer = None
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not cycle:
            self._stop_waiting()  # a request head arrived: the app has it now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._await_head()  # a kept-alive connection: the next head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        limits = self.limits
        self._stop_waiting()
        self._head_timer = self.loop.call_later(limits.header_timeout, self._let_go, "header_timeout", TIMEOUT_ANSWER)
        limits.waiting[self] = None
        client = self._client()
        same = [p for p in limits.waiting if p._client() == client]
        for old in same[:max(0, len(same) - limits.max_waiting_per_client)]:
            old._let_go("client_limit")
        while len(limits.waiting) > limits.max_waiting:
            next(iter(limits.waiting))._let_go("room_full")

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.limits.waiting.pop(self, None)

    def _let_go(self, reason: str, answer: bytes = b"") -> None:
        self._stop_waiting()
        if not self.transport.is_closing():
            if answer:
                self.transport.write(answer)
            self.transport.close()
        log.debug("http dropped reason=%s waiting=%s", reason, len(self.limits.waiting))

    def _client(self) -> str:
        return str(self.client[0]) if self.client else ""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket (OSError when the address is taken or wrong: the caller says so)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def uvicorn_config(app, protocol: type[H11Protocol] | str, **extra) -> uvicorn.Config:
    """Our logging (redacted; no access log: asgi.py logs each request without its query), our limits."""
    return uvicorn.Config(app, http=protocol, lifespan="on", log_config=None, access_log=False,
                          server_header=False, headers=[("server", "repeat-sales")], proxy_headers=False,
                          h11_max_incomplete_event_size=MAX_HEAD_BYTES, timeout_graceful_shutdown=GRACEFUL_SECONDS,
                          **extra)


class AppServer(Limits):
    """One uvicorn server on its own thread and event loop, bound at once (so the port is known)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.socket = listen(host, port)
        self.server_address = self.socket.getsockname()[:2]
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app, timeout: float = 30.0) -> None:
        protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": self})
        self._uvicorn = uvicorn.Server(uvicorn_config(app, protocol))
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.socket]},
                                        name="repeat-sales-webapp", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start (see the log)")
            time.sleep(0.02)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking requests, let those in flight finish, then the app's shutdown (its workers)."""
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout + GRACEFUL_SECONDS)
        with contextlib.suppress(OSError):
            self.socket.close()


def run_workers(sock: socket.socket, workers: int) -> int:
    """`serve --workers N`: N processes share the socket, each with its own job worker; a process whose
    job worker died exits and is replaced; SIGTERM stops them all after their accepted work."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn_config("connector.webapp:hosted_app", "connector.webapp.server:GuardedH11Protocol",
                            factory=True, workers=workers)
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        print("error: a serve process failed to start: see the log above", file=sys.stderr)
        return 1
    return 0


__all__ = ["AppServer", "DEFAULT_LIMITS", "GuardedH11Protocol", "Limits", "listen", "run_workers"]
