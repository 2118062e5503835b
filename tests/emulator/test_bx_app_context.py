"""The emulator's application context: OAuth renewal, `/rest/{method}` with `auth`, the install
callback, event bindings and outbound events, robots and bizproc.event.send - all over HTTP."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests


class Receiver:
    """A plain HTTP endpoint standing in for the app: records every form POST, answers 200."""

    def __init__(self) -> None:
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                got.append((self.path, self.headers["Content-Type"], dict(parse_qsl(body))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def app_call(emu, token: str, method: str, params: dict | None = None) -> requests.Response:
    return requests.post(f"{emu.base_url}/rest/{method}", json={"auth": token, **(params or {})}, timeout=10)


@pytest.fixture
def installed(emu, receiver):
    assert emu.app.install(receiver.url + "/bitrix/install") == 200
    return receiver.got[-1][2]


def test_install_posts_the_documented_onappinstall_form(emu, installed, receiver):
    path, ctype, form = receiver.got[-1]
    assert path == "/bitrix/install" and ctype == "application/x-www-form-urlencoded"
    assert form["event"] == "ONAPPINSTALL" and form["data[VERSION]"] == "1"
    for key in ("access_token", "refresh_token", "expires_in", "domain", "member_id", "application_token",
                "server_endpoint", "client_endpoint", "status", "scope"):
        assert form[f"auth[{key}]"], key
    assert form["auth[client_endpoint]"] == f"{emu.base_url}/rest/" and form["auth[status]"] == "L"


def test_rest_with_auth_token_works_and_unknown_or_expired_tokens_are_refused(emu, installed):
    token = installed["auth[access_token]"]
    assert app_call(emu, token, "crm.deal.get", {"id": 1}).json()["result"]["ID"] == "1"
    assert requests.get(f"{emu.base_url}/rest/crm.deal.get.json", params={"auth": token, "id": 1},
                        timeout=5).status_code == 200  # `auth` in the query works too
    r = app_call(emu, "not-a-token", "crm.deal.get", {"id": 1})
    assert (r.status_code, r.json()["error"]) == (401, "NO_AUTH_FOUND")
    emu.app.expire_access_tokens()
    r = app_call(emu, token, "crm.deal.get", {"id": 1})
    assert (r.status_code, r.json()["error"]) == (401, "expired_token")


def test_oauth_renewal_rotates_the_refresh_token(emu, installed):
    def renew(refresh: str, secret: str | None = None) -> requests.Response:
        return requests.get(f"{emu.base_url}/oauth/token/", timeout=5, params={
            "grant_type": "refresh_token", "client_id": emu.app.client_id,
            "client_secret": secret or emu.app.client_secret, "refresh_token": refresh})

    assert renew(installed["auth[refresh_token]"], "wrong-secret").json()["error"] == "invalid_client"
    first = renew(installed["auth[refresh_token]"])
    assert first.status_code == 200
    body = first.json()
    assert body["expires_in"] == 3600 and body["member_id"] == installed["auth[member_id]"]
    assert body["refresh_token"] != installed["auth[refresh_token]"]
    again = renew(installed["auth[refresh_token]"])  # the old refresh token is spent
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert app_call(emu, body["access_token"], "app.info").json()["result"]["STATUS"] == "L"


def test_events_are_bound_in_app_context_only_and_sent_as_forms(emu, installed, receiver):
    token = installed["auth[access_token]"]
    assert requests.post(emu.webhook_url + "event.bind", json={"event": "ONCRMDEALUPDATE", "handler": "x"},
                         timeout=5).status_code == 403
    r = app_call(emu, token, "event.bind", {"event": "ONCRMNOSUCHTHING", "handler": receiver.url + "/e"})
    assert (r.status_code, r.json()["error"]) == (400, "ERROR_EVENT_NOT_FOUND")
    assert app_call(emu, token, "event.bind", {"event": "onCrmDealUpdate", "handler": receiver.url + "/e"}).ok
    assert app_call(emu, token, "event.get").json()["result"] == [
        {"event": "ONCRMDEALUPDATE", "handler": receiver.url + "/e", "auth_type": "0", "offline": 0}]
    emu.touch_purchase(5, title="changed")
    assert emu.app.outbound.wait_idle()
    path, _, form = receiver.got[-1]
    assert path == "/e" and form["event"] == "ONCRMDEALUPDATE" and form["data[FIELDS][ID]"] == "5"
    assert form["auth[application_token]"] == installed["auth[application_token]"]
    assert form["auth[member_id]"] == installed["auth[member_id]"] and form["ts"].isdigit()
    assert app_call(emu, token, "event.unbind", {"event": "ONCRMDEALUPDATE"}).json()["result"] == {"count": 1}


def test_robots_run_and_answer_through_event_send_once(emu, installed, receiver):
    token = installed["auth[access_token]"]
    robot = {"CODE": "rs_x", "HANDLER": receiver.url + "/robot", "NAME": "x", "USE_SUBSCRIPTION": "Y",
             "PROPERTIES": {"note": {"Name": "Note", "Type": "string", "Default": "hi"}},
             "RETURN_PROPERTIES": {"segment": {"Name": "Segment", "Type": "string"}}}
    assert requests.post(emu.webhook_url + "bizproc.robot.add", json=robot, timeout=5).status_code == 403
    bad = app_call(emu, token, "bizproc.robot.add", {**robot, "HANDLER": "https://elsewhere.example.com/r"})
    assert bad.json()["error"] == "ERROR_WRONG_HANDLER_URL"
    assert app_call(emu, token, "bizproc.robot.add", {**robot, "CODE": "bad code"}).json()["error_description"] \
        == "Wrong activity code!"
    assert app_call(emu, token, "bizproc.robot.add", robot).json()["result"] is True
    assert app_call(emu, token, "bizproc.robot.add", robot).json()["error"] == "ERROR_ACTIVITY_ALREADY_INSTALLED"
    assert app_call(emu, token, "bizproc.robot.list").json()["result"] == ["rs_x"]

    event_token = emu.app.run_robot("rs_x", "DEAL_7")
    assert emu.app.outbound.wait_idle()
    path, _, form = receiver.got[-1]
    assert path == "/robot" and form["event_token"] == event_token and form["document_id[2]"] == "DEAL_7"
    assert form["properties[note]"] == "hi" and form["auth[application_token]"]
    send = {"event_token": event_token, "return_values": {"segment": "loyal", "undeclared": 1}}
    assert app_call(emu, token, "bizproc.event.send", send).json()["result"] is True
    assert emu.app.returned(event_token)["return_values"] == {"segment": "loyal"}
    stale = app_call(emu, token, "bizproc.event.send", send)  # a token answers once
    assert (stale.status_code, stale.json()) == (403, {"error": "ACCESS_DENIED", "error_description": "Access denied!"})
    assert app_call(emu, token, "bizproc.event.send", {**send, "event_token": "forged"}).status_code == 403
    assert app_call(emu, token, "bizproc.robot.delete", {"CODE": "rs_x"}).json()["result"] is True


def test_reinstall_drops_bindings_robots_and_the_old_application_token(emu, installed, receiver):
    token = installed["auth[access_token]"]
    app_call(emu, token, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/e"})
    assert emu.app.install(receiver.url + "/bitrix/install") == 200
    again = receiver.got[-1][2]
    assert again["auth[application_token]"] != installed["auth[application_token]"]
    assert emu.app.bindings() == [] and emu.app.robots() == {}
    snapshot = requests.get(f"{emu.base_url}/_emulator/app", timeout=5).json()
    assert snapshot["installed"] and snapshot["client_id"] == emu.app.client_id
