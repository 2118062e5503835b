"""The webhook app as a Starlette (ASGI) application: checks before the body, the body, the handler.

The checks go cheapest first: the address (414), the route (404/405/401), the body's framing
and size (400/413: a body over 1 MiB is refused from its Content-Length, never read), the body
itself within a deadline (408), and only then the app's handler, on a worker thread (handlers are
synchronous: SQLite, the CRM clients). Requests in flight are capped overall and per client address
(`ClientLimit`); the job workers start and stop with the app (its lifespan).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from connector.errors import WebhookRejected
from connector.redact import redact
from connector.webapp.http import (
    MAX_BODY_BYTES,
    MAX_URL_LENGTH,
    METHODS,
    Reply,
    Request,
    handle,
    rejection,
    reply,
)
from connector.webapp.server import Limits

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger("connector.webapp")

WATCHDOG_SECONDS = 0.5


def build(webapp: WebApp, limits: Limits, *, watchdog: bool = False) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app):
        webapp.start_workers()
        watch = asyncio.get_running_loop().create_task(_watch(webapp)) if watchdog else None
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
            await anyio.to_thread.run_sync(webapp.stop_workers)  # finish the accepted work first

    return Starlette(routes=[Route("/{path:path}", Endpoint(webapp, limits))],
                     middleware=[Middleware(ClientLimit, limits=limits)], lifespan=lifespan)


async def _watch(webapp: WebApp) -> None:
    """A `serve --workers N` process whose job worker died stops (its supervisor starts a new one)."""
    while webapp.default.alive():
        await asyncio.sleep(WATCHDOG_SECONDS)
    log.error("the worker stopped; exiting")
    os.kill(os.getpid(), signal.SIGTERM)


class Endpoint:
    """Every route of the app: a plain ASGI endpoint, so Starlette passes every method through."""

    def __init__(self, webapp: WebApp, limits: Limits) -> None:
        self.webapp, self.limits = webapp, limits
        self._threads: anyio.CapacityLimiter | None = None

    async def __call__(self, scope, receive, send) -> None:
        started = time.monotonic()
        method = scope["method"]
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        answer, body_read = await self._answer(method, path, query, headers, receive)
        unread = not body_read and ("content-length" in headers or "transfer-encoding" in headers)
        await send_reply(answer, scope, receive, send, close=unread)
        log.info("http method=%s path=%s status=%s", method, redact(path[:200]), answer.status)
        log.debug("http elapsed=%.3f", time.monotonic() - started)

    async def _answer(self, method: str, path: str, query: str, headers: dict[str, str], receive):
        if method not in METHODS:
            return reply(501, {"error": "unsupported method"}), False
        try:
            if len(path) + len(query) + (1 if query else 0) > MAX_URL_LENGTH:
                raise WebhookRejected(414, "the address is too long")
            self.webapp.route(method, path)  # 404/405/401 before a byte of the body is read
            body = await read_body(method, headers, receive, self.limits)
        except WebhookRejected as exc:
            return rejection(exc, path), False
        request = Request(method, path, dict(parse_qsl(query, keep_blank_values=True)), headers, body)
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.limits.max_requests)
        return await anyio.to_thread.run_sync(handle, self.webapp, request, limiter=self._threads), True


async def read_body(method: str, headers: dict[str, str], receive, limits: Limits) -> bytes:
    """At most MAX_BODY_BYTES, with a Content-Length; chunked bodies are refused (400); 408 when the
    body trickles past its deadline or the client falls silent."""
    if headers.get("transfer-encoding"):
        raise WebhookRejected(400, "chunked bodies are not accepted; send Content-Length")
    raw = headers.get("content-length")
    if raw is None:
        if method in ("POST", "PUT", "PATCH"):
            raise WebhookRejected(400, "Content-Length is required")
        return b""
    length = int(raw) if raw.strip().isdigit() else -1
    if length < 0:
        raise WebhookRejected(400, "bad Content-Length")
    if length > MAX_BODY_BYTES:
        raise WebhookRejected(413, "the body is larger than 1 MiB")  # from the header: the body stays unread
    deadline = time.monotonic() + limits.body_timeout
    chunks, got, more = [], 0, length > 0
    while more:
        left = deadline - time.monotonic()
        message = None
        if left > 0:
            with anyio.move_on_after(min(left, limits.read_timeout)):
                message = await receive()
        if message is None:
            raise WebhookRejected(408, "the body came too slowly")
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        got += len(chunks[-1])
        more = message.get("more_body", False)
    if got != length:
        raise WebhookRejected(400, "the body was cut short")
    return b"".join(chunks)


async def send_reply(answer: Reply, scope, receive, send, *, close: bool = False) -> None:
    """`close`: the body was left unread, so the connection must not carry another request."""
    headers = {**answer.headers, **({"Connection": "close"} if close else {})}
    await Response(answer.body, status_code=answer.status, headers=headers)(scope, receive, send)


class ClientLimit:
    """At most `max_requests` requests in flight, `max_requests_per_client` from one address; a request over
    either waits up to `slot_wait` seconds for a slot (no thread, its body unread), then is answered 503.

    Why wait: Bitrix24 never delivers an event again, and a hosted app's portals send their events from a
    few Bitrix24 servers - 100 portals' events at once (the 100-portal benchmark) came from one address, and
    answering 37 of them 503 lost them. Answering an event takes milliseconds, so a burst clears in time."""

    def __init__(self, app, limits: Limits) -> None:
        self.app, self.limits = app, limits
        self.total = 0
        self.per_client: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self._freed: asyncio.Condition | None = None  # made in the server's loop

    def _room(self, client: str) -> bool:
        return self.total < self.limits.max_requests and \
            self.per_client.get(client, 0) < self.limits.max_requests_per_client

    async def _wait_for_room(self, client: str) -> bool:
        if self._room(client):
            return True
        if self.waiting.get(client, 0) >= self.limits.max_waiting_per_client or \
                sum(self.waiting.values()) >= self.limits.max_waiting:
            return False
        if self._freed is None:
            self._freed = asyncio.Condition()
        self.waiting[client] = self.waiting.get(client, 0) + 1
        try:
            async with self._freed:
                with anyio.move_on_after(self.limits.slot_wait):
                    await self._freed.wait_for(lambda: self._room(client))
            return self._room(client)
        finally:
            self.waiting[client] -= 1
            if not self.waiting[client]:
                del self.waiting[client]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = str((scope.get("client") or ("",))[0])
        if not await self._wait_for_room(client):
            log.info("http method=%s path=%s status=503 reason=busy", scope["method"],
                     redact(scope["path"][:200]))
            await send_reply(reply(503, {"error": "busy, try again"}, {"Retry-After": "5"}), scope, receive, send,
                             close=True)
            return
        self.total += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.total -= 1
            self.per_client[client] -= 1
            if not self.per_client[client]:
                del self.per_client[client]
            if self._freed is not None:
                async with self._freed:
                    self._freed.notify_all()
