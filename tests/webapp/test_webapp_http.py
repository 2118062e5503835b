"""The HTTP surface of `repeat-sales serve`: sizes, shapes, auth, errors; and the real command."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from web_support import ADMIN, TODAY, admin, bitrix_settings, post_form, wait_for

from connector.webapp import WebApp

ROOT = Path(__file__).resolve().parents[2]


def raw(app, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict]:
    """One request with exactly these headers (requests would fix Content-Length for us)."""
    conn = http.client.HTTPConnection(app.host, app.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        answer = conn.getresponse()
        import json

        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


def test_healthz_is_open_and_says_nothing_secret(webapp):
    r = requests.get(webapp.url + "/healthz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert r.headers["Cache-Control"] == "no-store"


def test_status_needs_the_admin_token(webapp, portal, tmp_path):
    assert requests.get(webapp.url + "/status", timeout=5).status_code == 401
    wrong = requests.get(webapp.url + "/status", headers={"Authorization": "Bearer " + ADMIN[:-1] + "X"}, timeout=5)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(webapp.url + "/status", headers={"Authorization": ADMIN}, timeout=5).status_code == 401
    ok = requests.get(webapp.url + "/status", headers=admin(), timeout=5)
    assert ok.status_code == 200 and ok.json()["runs"] == [] and ok.json()["worker"]["alive"] is True
    assert ADMIN not in ok.text and portal.app.client_secret not in ok.text
    locked = WebApp(bitrix_settings(portal, tmp_path / "b", ADMIN_TOKEN=""), port=0, today=lambda: TODAY).start()
    try:  # no ADMIN_TOKEN set: the route stays shut
        assert requests.get(locked.url + "/status", headers=admin(), timeout=5).status_code == 403
    finally:
        locked.stop(10)


def test_oversized_bodies_are_413_before_reading(webapp):
    status, body = raw(webapp, "POST", "/bitrix/events", {"Content-Type": "application/x-www-form-urlencoded",
                                                          "Content-Length": str(1024 * 1024 + 1)})
    assert status == 413 and "1 MiB" in body["error"]
    big = b"a=" + b"x" * (1024 * 1024)
    try:  # the server answers without reading; a client still sending may see the connection cut instead
        assert post_form(webapp.url + "/bitrix/robot", big).status_code == 413
    except requests.ConnectionError:
        pass
    assert webapp.worker.stats["queued"] == 0 and webapp.installs.get("bitrix") is None


@pytest.mark.parametrize("ctype, body", [
    ("application/json", b'{"event": "ONCRMDEALUPDATE"}'),
    ("application/x-www-form-urlencoded", b"event=%FF%FE"),
    ("application/x-www-form-urlencoded", b"auth=1&auth[member_id]=2"),
    ("application/x-www-form-urlencoded", b"just-a-word"),
    ("application/x-www-form-urlencoded", b"a[b][c][d][e][f][g]=1"),
])
def test_unparseable_bodies_are_400(webapp, ctype, body):
    for path in ("/bitrix/events", "/bitrix/robot", "/bitrix/install"):
        r = requests.post(webapp.url + path, data=body, headers={"Content-Type": ctype}, timeout=5)
        assert r.status_code == 400, (path, body)


def test_missing_length_unknown_routes_and_wrong_methods(webapp):
    assert raw(webapp, "POST", "/bitrix/events", {"Content-Type": "application/x-www-form-urlencoded"})[0] == 400
    assert raw(webapp, "POST", "/bitrix/events", {"Transfer-Encoding": "chunked"}, b"0\r\n\r\n")[0] == 400
    assert requests.get(webapp.url + "/nope", timeout=5).status_code == 404
    assert requests.get(webapp.url + "/bitrix/events", timeout=5).status_code == 405
    assert requests.get(webapp.url + "/amocrm/webhook/abc", timeout=5).status_code == 405
    # a well-formed event for an app that was never installed: 401, nothing queued
    r = post_form(webapp.url + "/bitrix/events", "event=ONCRMDEALUPDATE&data[FIELDS][ID]=1&auth[member_id]=m"
                                                 "&auth[application_token]=t")
    assert r.status_code == 401 and webapp.worker.stats["queued"] == 0


def test_a_bug_is_500_without_details(webapp, caplog):
    webapp._routes[("GET", "/boom")] = lambda request: {}["secret-detail"]  # a route with a bug in it
    with caplog.at_level(logging.ERROR, logger="connector.webapp"):
        r = requests.get(webapp.url + "/boom", timeout=5)
    assert (r.status_code, r.json()) == (500, {"error": "internal error"})
    assert "webapp crashed" in caplog.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_serve_command_answers_and_stops_cleanly_on_sigterm(portal, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_APP_CLIENT_ID=portal.app.client_id, BITRIX_APP_CLIENT_SECRET=portal.app.client_secret,
               BITRIX_OAUTH_URL=portal.base_url, STATE_URL=f"sqlite:///{tmp_path / 's.db'}", ADMIN_TOKEN=ADMIN,
               PYTHONPATH=str(ROOT), LOG_LEVEL="INFO")
    proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return requests.get(url + "/healthz", timeout=1).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # a loaded machine may be slow to answer
                return False

        wait_for(up, timeout=20, step=0.1)
        assert requests.get(url + "/status", headers=admin(), timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    log = proc.stderr.read()
    assert "path=/status status=200" in log and ADMIN not in log and portal.app.client_secret not in log
