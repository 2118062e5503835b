"""Slow or half-open connections never block the others: a request holds a worker thread only once its
head has arrived, a head that does not arrive in time is cut off, one client cannot hoard the waiting room.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import requests
from web_support import wait_for

HALF_OPEN = 80  # more than the server's request slots (64): before the fix every route answered 503
PROMPTLY = 5.0  # the socket timeout that bounds "promptly" for the well-behaved client


@contextlib.contextmanager
def half_open(app, count: int):
    """`count` connections that send the start of a request and then go quiet."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.create_connection((app.host, app.port), timeout=PROMPTLY)
            s.sendall(b"POST /bitrix/events HTTP/1.1\r\nHost: x\r\nContent-Le")  # the head never ends
            sockets.append(s)
        yield sockets
    finally:
        for s in sockets:
            s.close()


def closed_by_server(s: socket.socket) -> bool:
    """True when the server hung up (maybe after a short error answer); False if it still holds the line."""
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset
        return True
    return True


def test_half_open_connections_do_not_stop_healthz(webapp):
    with half_open(webapp, HALF_OPEN):
        r = requests.get(webapp.url + "/healthz", timeout=PROMPTLY)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = requests.post(webapp.url + "/bitrix/events", data=b"x=1", timeout=PROMPTLY,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code in (400, 401), "an event route answers too, on its merits"


def test_a_head_that_does_not_arrive_in_time_is_cut_off(webapp):
    webapp.server.header_timeout = 0.2  # the production default is a few seconds; the mechanism is the same
    with half_open(webapp, 3) as sockets:
        assert all(closed_by_server(s) for s in sockets)
    assert requests.get(webapp.url + "/healthz", timeout=PROMPTLY).status_code == 200


def test_one_client_flooding_the_waiting_room_loses_its_own_oldest_connections(webapp):
    webapp.server.max_waiting_per_client = 10
    with half_open(webapp, 15) as sockets:
        r = requests.get(webapp.url + "/healthz", timeout=PROMPTLY)
        assert r.status_code == 200
        for s in sockets[:5]:
            assert closed_by_server(s), "the oldest waiting connections of that client were let go"
        sockets[-1].settimeout(0.5)
        assert not closed_by_server(sockets[-1]), "the newest still waits for the rest of its head"


def test_a_slow_body_is_cut_off_without_holding_the_others(webapp):
    webapp.server.body_timeout = 0.2
    s = socket.create_connection((webapp.host, webapp.port), timeout=PROMPTLY)
    try:
        s.sendall(b"POST /bitrix/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 100\r\n\r\nevent=")  # 6 of 100 bytes, then silence
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
    finally:
        s.close()
    assert webapp.worker.stats["queued"] == 0


def held_request(app, source: str = "127.0.0.1") -> socket.socket:
    """A request whose head has arrived and whose body is still coming: it is in flight."""
    s = socket.create_connection((app.host, app.port), timeout=PROMPTLY, source_address=(source, 0))
    s.sendall(b"POST /bitrix/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: 100\r\n\r\nevent=")
    return s


def test_one_client_cannot_take_every_request_slot(webapp):
    webapp.server.max_requests_per_client = 2
    webapp.server.slot_wait = 0.3  # over the limit, a request waits this long for a slot before its 503
    held = [held_request(webapp), held_request(webapp)]
    try:
        answers = []  # a 503 response is falsy: keep it aside
        wait_for(lambda: answers.append(requests.get(webapp.url + "/healthz", timeout=PROMPTLY))
                 or answers[-1].status_code == 503, timeout=PROMPTLY)
        busy = answers[-1]
        assert busy.headers["Retry-After"] == "5" and busy.json() == {"error": "busy, try again"}
        other = socket.create_connection((webapp.host, webapp.port), timeout=PROMPTLY, source_address=("127.0.0.2", 0))
        try:  # another client address still gets its answer
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert other.recv(4096).startswith(b"HTTP/1.1 200")
        finally:
            other.close()
    finally:
        for s in held:
            s.close()
    wait_for(lambda: requests.get(webapp.url + "/healthz", timeout=PROMPTLY).status_code == 200, timeout=PROMPTLY)
    assert webapp.worker.stats["queued"] == 0


def test_a_kept_alive_connection_has_the_same_deadline_for_its_next_head(webapp):
    webapp.server.header_timeout = 0.3
    s = socket.create_connection((webapp.host, webapp.port), timeout=PROMPTLY)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'{"status":"ok"}' not in answer:
            answer += s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next head never ends
        assert closed_by_server(s)
    finally:
        s.close()


def test_a_request_over_the_limit_waits_for_a_slot_instead_of_being_refused(webapp):
    """Bitrix24 never delivers an event again, and a hosted app's portals send their events from a few
    Bitrix24 servers: a burst over the per-address limit waits for a slot and is answered (before, 37 of 100
    portals' events at once were answered 503 and lost)."""
    webapp.server.max_requests_per_client = 2
    held = [held_request(webapp), held_request(webapp)]
    answers: list = []
    late = threading.Thread(target=lambda: answers.append(requests.get(webapp.url + "/healthz", timeout=PROMPTLY)))
    try:
        late.start()
        time.sleep(0.5)  # the late request is in, over the limit
        held[0].close()  # a slot frees: its body never came
        late.join(PROMPTLY)
    finally:
        for s in held:
            s.close()
    assert [a.status_code for a in answers] == [200]
