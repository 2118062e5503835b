"""Slow or half-open connections never block the others: a request holds a worker thread only once its
head has arrived, a head that does not arrive in time is cut off, one client cannot hoard the waiting room.
"""

from __future__ import annotations

import contextlib
import socket

import requests

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
