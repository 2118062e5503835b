"""Where connections wait until their request head has arrived: one thread, no worker slot each.

A thread per connection let 80 half-open connections (a slow network, or slowloris on purpose)
take every request slot, so every route answered 503 for up to 15 s. Here a connection costs a
socket and a small buffer until its head is complete; a head that does not arrive within
`header_timeout` is answered 408 and closed; one client address may keep at most
`max_waiting_per_client` connections waiting (its oldest are let go first), and when the room is
full the oldest waiting connection makes way, so a newcomer that sends its request at once is served.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("connector.webapp")

HEADER_TIMEOUT_SECONDS = 10.0  # the whole head (request line and headers) must arrive within this
MAX_HEAD_BYTES = 64 * 1024  # a longer head is answered 431
MAX_WAITING = 512  # connections waiting for their head, all clients together
MAX_WAITING_PER_CLIENT = 128  # ... and from one address (behind a proxy every client shares one)
IDLE_TICK_SECONDS = 1.0
TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TOO_LONG_ANSWER = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Limits(Protocol):
    header_timeout: float
    max_waiting: int
    max_waiting_per_client: int


@dataclass(eq=False)
class Waiting:
    sock: socket.socket
    address: tuple
    deadline: float
    head: bytearray = field(default_factory=bytearray)

    @property
    def client(self) -> str:
        return str(self.address[0]) if self.address else ""


def head_complete(data: bytes | bytearray) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


class WaitingRoom:
    """`add` (from the accepting thread) parks a connection; `on_head(sock, address, head)` gets it
    back, blocking again, once its head has arrived (the bytes read so far, body start included)."""

    def __init__(self, on_head: Callable[[socket.socket, tuple, bytes], None], limits: Limits, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_head, self.limits, self.clock = on_head, limits, clock
        self.selector = selectors.DefaultSelector()
        self.waiting: OrderedDict[socket.socket, Waiting] = OrderedDict()  # oldest first
        self.incoming: list[tuple[socket.socket, tuple]] = []
        self.lock = threading.Lock()
        self.stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._run, name="repeat-sales-waiting-room", daemon=True)
        self.thread.start()

    def add(self, sock: socket.socket, address: tuple) -> None:
        with self.lock:
            self.incoming.append((sock, address))
        self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        self._wake()
        self.thread.join(timeout)
        with self.lock:
            leftovers = [s for s, _ in self.incoming] + list(self.waiting)
            self.incoming.clear()
            self.waiting.clear()
        for sock in leftovers:
            _close(sock)
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake-up pipe already means "look again"
            self._wake_w.send(b"x")

    # --- the room's thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stopping:
            try:
                for key, _ in self.selector.select(self._next_timeout()):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._read(key.data)
                self._admit()
                self._expire()
            except Exception:  # never let the room die: every later connection would hang
                log.exception("waiting room failed; going on")

    def _admit(self) -> None:
        with self.lock:
            arrived, self.incoming = self.incoming, []
        for sock, address in arrived:
            sock.setblocking(False)
            visitor = Waiting(sock, address, self.clock() + self.limits.header_timeout)
            self.waiting[sock] = visitor
            self.selector.register(sock, selectors.EVENT_READ, visitor)
            same = [w for w in self.waiting.values() if w.client == visitor.client]
            for old in same[:max(0, len(same) - self.limits.max_waiting_per_client)]:
                self._drop(old, reason="client_limit")
            while len(self.waiting) > self.limits.max_waiting:
                self._drop(next(iter(self.waiting.values())), reason="room_full")

    def _read(self, visitor: Waiting) -> None:
        try:
            data = visitor.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client gave up
            self._drop(visitor, reason=None)
            return
        visitor.head += data
        if head_complete(visitor.head):
            self._leave(visitor)
            visitor.sock.setblocking(True)
            self.on_head(visitor.sock, visitor.address, bytes(visitor.head))
        elif len(visitor.head) > MAX_HEAD_BYTES:
            self._drop(visitor, reason="head_too_long", answer=TOO_LONG_ANSWER)

    def _expire(self) -> None:
        now = self.clock()
        for visitor in [w for w in self.waiting.values() if w.deadline <= now]:
            self._drop(visitor, reason="header_timeout", answer=TIMEOUT_ANSWER)

    def _next_timeout(self) -> float:
        if not self.waiting:
            return IDLE_TICK_SECONDS
        soonest = min(w.deadline for w in self.waiting.values())
        return min(max(soonest - self.clock(), 0.0), IDLE_TICK_SECONDS)

    def _leave(self, visitor: Waiting) -> None:
        self.waiting.pop(visitor.sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(visitor.sock)

    def _drop(self, visitor: Waiting, *, reason: str | None, answer: bytes = b"") -> None:
        self._leave(visitor)
        if answer:
            with contextlib.suppress(OSError):
                visitor.sock.send(answer)  # non-blocking: best effort, the line is closed either way
        if reason:
            log.debug("http dropped reason=%s waiting=%s", reason, len(self.waiting))
        _close(visitor.sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
