"""The emulator against the API v4 documentation, read with plain HTTP (no adapter in between)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import requests

ROOT = Path(__file__).resolve().parents[2]


def api(emu, method: str, path: str, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {emu.access_token}"}
    return requests.request(method, emu.base_url + path, headers=headers, timeout=10, **kw)


def test_lists_are_hal_pages_of_at_most_250_with_links_on_the_emulators_own_host(account):
    over = api(account, "GET", "/api/v4/leads", params={"limit": 251})
    assert over.status_code == 422 and over.json()["detail"] == "Limit 250 per page", "refused, not cut down"
    answer = api(account, "GET", "/api/v4/leads", params={"limit": 250, "with": "contacts,catalog_elements"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/hal+json")
    body = answer.json()
    assert body["_page"] == 1 and len(body["_embedded"]["leads"]) == 250
    assert body["_links"]["next"]["href"].startswith(account.base_url + "/api/v4/leads?")
    lead = body["_embedded"]["leads"][0]
    assert lead["_links"]["self"]["href"] == f"{account.base_url}/api/v4/leads/{lead['id']}"
    assert {"contacts", "catalog_elements", "tags", "companies"} <= set(lead["_embedded"])
    follow = requests.get(body["_links"]["next"]["href"], headers={"Authorization": f"Bearer {account.access_token}"},
                          timeout=10).json()
    assert follow["_page"] == 2 and follow["_embedded"]["leads"][0]["id"] > lead["id"]


def test_nothing_found_is_204_with_no_body(account):
    for params in ({"filter[id][]": 999999}, {"page": 99, "limit": 250}):
        answer = api(account, "GET", "/api/v4/contacts", params=params)
        assert answer.status_code == 204 and answer.content == b""


def test_filters_by_status_and_updated_at_and_order(account):
    won = api(account, "GET", "/api/v4/leads", params={
        "filter[statuses][0][pipeline_id]": min(account.store.pipelines), "filter[statuses][0][status_id]": 142,
        "limit": 250}).json()["_embedded"]["leads"]
    assert won and all(x["status_id"] == 142 and x["closed_at"] for x in won)
    lead_id = won[0]["id"]
    account.touch_purchase(lead_id, status_id=143)
    since = account.store.leads[lead_id]["updated_at"]
    changed = api(account, "GET", "/api/v4/leads", params={"filter[updated_at][from]": since,
                                                           "order[updated_at]": "asc"}).json()["_embedded"]["leads"]
    assert [x["id"] for x in changed] == [lead_id] and changed[0]["status_id"] == 143


def test_errors_are_problem_json_with_the_documented_statuses(account):
    unauthorized = requests.get(account.base_url + "/api/v4/leads", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert unauthorized.status_code == 401 and unauthorized.headers["Content-Type"].startswith("application/problem+json")
    assert unauthorized.json() == {"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401,
                                   "detail": "Invalid user name or password"}
    too_many = api(account, "POST", "/api/v4/tasks", json=[{"text": "x", "complete_till": 1}] * 251)
    assert too_many.status_code == 422 and too_many.json()["detail"] == "Limit 250 per page"
    invalid = api(account, "POST", "/api/v4/tasks", json=[{"text": "ok", "complete_till": 1},
                                                          {"text": "", "complete_till": 1, "request_id": "b"}])
    assert invalid.status_code == 400
    assert invalid.json()["validation-errors"][0]["request_id"] == "b"
    assert account.stats()["objects"]["task"] == 0, "a refused batch writes nothing"
    assert api(account, "GET", "/api/v4/nope").status_code == 404
    assert api(account, "DELETE", "/api/v4/leads").status_code == 405


def test_tags_replace_with_embedded_and_merge_with_tags_to_add_and_delete(account):
    contact_id = next(iter(account.store.contacts))
    api(account, "PATCH", f"/api/v4/contacts/{contact_id}", json={"_embedded": {"tags": [{"name": "vip"}, {"name": "b2c"}]}})
    api(account, "PATCH", "/api/v4/contacts", json=[{"id": contact_id, "tags_to_add": [{"name": "repeat"}],
                                                     "tags_to_delete": [{"name": "b2c"}]}])
    got = api(account, "GET", f"/api/v4/contacts/{contact_id}").json()
    assert sorted(t["name"] for t in got["_embedded"]["tags"]) == ["repeat", "vip"]
    both = api(account, "PATCH", f"/api/v4/contacts/{contact_id}", json={
        "_embedded": {"tags": [{"name": "only"}]}, "tags_to_add": [{"name": "ignored"}]})
    assert both.status_code == 200 and both.json()["updated_at"] >= got["updated_at"]
    got = api(account, "GET", f"/api/v4/contacts/{contact_id}").json()
    assert [t["name"] for t in got["_embedded"]["tags"]] == ["only"], "_embedded.tags wins over tags_to_add"
    listed = api(account, "GET", "/api/v4/contacts/tags", params={"filter[name]": "vip"}).json()
    assert [t["name"] for t in listed["_embedded"]["tags"]] == ["vip"]


def test_catalog_links_notes_and_tasks_round_trip(account):
    lead_id = next(i for i, links in account.store.links.items() if links)
    links = api(account, "GET", f"/api/v4/leads/{lead_id}/links", params={"filter[to_entity_type]": "catalog_elements"})
    assert links.status_code == 200 and all(x["metadata"]["quantity"] > 0 for x in links.json()["_embedded"]["links"])
    api(account, "POST", f"/api/v4/leads/{lead_id}/link", json=[{"to_entity_id": 1, "to_entity_type": "catalog_elements",
                                                                  "metadata": {"quantity": 3, "catalog_id": 5001}}])
    assert {"id": 1, "metadata": {"quantity": 3, "catalog_id": 5001}} in api(
        account, "GET", f"/api/v4/leads/{lead_id}", params={"with": "catalog_elements"}).json()["_embedded"]["catalog_elements"]
    note = api(account, "POST", f"/api/v4/leads/{lead_id}/notes", json=[{"note_type": "common", "params": {"text": "hi"}}])
    assert note.json()["_embedded"]["notes"][0]["request_id"] == "0"
    assert api(account, "GET", "/api/v4/leads/notes", params={"filter[entity_id][]": lead_id}).json()["_embedded"]["notes"]
    task = api(account, "POST", "/api/v4/tasks", json=[{"text": "call", "complete_till": 1_800_000_000,
                                                        "entity_id": lead_id, "entity_type": "leads"}]).json()
    task_id = task["_embedded"]["tasks"][0]["id"]
    api(account, "PATCH", f"/api/v4/tasks/{task_id}", json={"is_completed": True, "result": {"text": "done"}})
    done = api(account, "GET", "/api/v4/tasks", params={"filter[is_completed]": 1}).json()["_embedded"]["tasks"]
    assert [t["id"] for t in done] == [task_id] and done[0]["result"] == {"text": "done"}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Receiver.received.append({"type": self.headers["Content-Type"], "form": dict(parse_qsl(body))})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_status_change_posts_the_documented_webhook_form(account):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        destination = f"http://127.0.0.1:{server.server_address[1]}/amocrm/webhook/secret"
        hook = api(account, "POST", "/api/v4/webhooks", json={"destination": destination, "settings": ["status_lead"]})
        assert hook.status_code == 200 and hook.json()["settings"] == ["status_lead"]
        lead_id = next(i for i, x in account.store.leads.items() if x["status_id"] == 142)
        account.touch_purchase(lead_id, status_id=143)
        account.webhooks.wait_idle()
        [got] = _Receiver.received
        assert got["type"] == "application/x-www-form-urlencoded"
        form = got["form"]
        assert form["leads[status][0][id]"] == str(lead_id) and form["leads[status][0][status_id]"] == "143"
        assert form["leads[status][0][old_status_id]"] == "142" and form["account[id]"] == str(account.store.account_id)
        listed = api(account, "GET", "/api/v4/webhooks", params={"filter[destination]": destination}).json()
        assert listed["_total_items"] == 1
        assert api(account, "DELETE", "/api/v4/webhooks", json={"destination": destination}).status_code == 204
    finally:
        server.shutdown()
        server.server_close()


def test_oauth_codes_work_once_and_an_old_refresh_token_dies_when_the_new_pair_is_used(account):
    keys = {"client_id": account.client_id, "client_secret": account.client_secret,
            "redirect_uri": account.redirect_uri}
    token_url = account.base_url + "/oauth2/access_token"
    code = account.issue_auth_code()
    first = requests.post(token_url, json={**keys, "grant_type": "authorization_code", "code": code}, timeout=10)
    assert first.status_code == 200 and first.json()["token_type"] == "Bearer" and first.json()["expires_in"] == 86400
    again = requests.post(token_url, json={**keys, "grant_type": "authorization_code", "code": code}, timeout=10)
    assert again.status_code == 400 and "hint" in again.json()
    old = first.json()["refresh_token"]
    lost = requests.post(token_url, json={**keys, "grant_type": "refresh_token", "refresh_token": old}, timeout=10)
    retry = requests.post(token_url, json={**keys, "grant_type": "refresh_token", "refresh_token": old}, timeout=10)
    assert lost.status_code == retry.status_code == 200, "the old token lives on until a new pair is used"
    fresh = retry.json()["access_token"]
    assert requests.get(account.base_url + "/api/v4/account", headers={"Authorization": f"Bearer {fresh}"},
                        timeout=10).status_code == 200
    dead = requests.post(token_url, json={**keys, "grant_type": "refresh_token", "refresh_token": old}, timeout=10)
    assert dead.status_code == 400
    sibling = requests.post(token_url, json={**keys, "grant_type": "refresh_token",
                                             "refresh_token": lost.json()["refresh_token"]}, timeout=10)
    assert sibling.status_code == 400, "the pair whose answer was 'lost' died too"


def test_control_routes_and_the_stats_shape(account):
    api(account, "GET", "/api/v4/leads")
    stats = requests.get(account.base_url + "/_emulator/stats", timeout=10).json()
    assert stats["requests_total"] == 1 and stats["requests"] == {"GET /api/v4/leads": 1}
    assert {"lead", "contact", "company", "product", "task", "note", "tag"} <= set(stats["objects"])
    requests.post(account.base_url + "/_emulator/faults", json={"fail_next": {"n": 1, "status": 503}}, timeout=10)
    assert api(account, "GET", "/api/v4/account").status_code == 503
    requests.post(account.base_url + "/_emulator/reset_stats", timeout=10)
    assert requests.get(account.base_url + "/_emulator/stats", timeout=10).json()["requests_total"] == 0


def test_standalone_prints_the_settings_first_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "emulators.amocrm", "--customers", "20", "--seed", "3",
                             "--rate-limit", "off"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0] == "CRM=amocrm"
        settings = dict(line.split("=", 1) for line in lines)
        answer = requests.get(settings["AMOCRM_BASE_URL"] + "/api/v4/account",
                              headers={"Authorization": f"Bearer {settings['AMOCRM_ACCESS_TOKEN']}"}, timeout=10)
        assert answer.status_code == 200 and json.loads(answer.text)["current_user_id"] == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
