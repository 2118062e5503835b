"""URL forms, auth, envelopes and error bodies of the emulated portal."""

from __future__ import annotations

import requests
from bx_support import ok, rest


def test_success_envelope_has_result_and_time(shared):
    r = rest(shared, "crm.deal.get", {"id": 3})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["result"]["ID"] == "3"
    t = body["time"]
    assert {"start", "finish", "duration", "processing", "date_start", "date_finish",
            "operating_reset_at", "operating"} <= set(t)
    assert t["date_start"].endswith("+03:00")
    assert isinstance(t["operating"], float) and t["operating"] >= 0  # seconds of method time used (a shape, not a timing)


def test_operating_is_cumulative_per_method(emu):
    first = ok(emu, "crm.deal.get", {"id": 1})["time"]["operating"]
    second = ok(emu, "crm.deal.get", {"id": 2})["time"]["operating"]
    other = ok(emu, "crm.contact.get", {"id": 1})["time"]["operating"]
    assert second > first and other == first


def test_wrong_token_or_user_is_401(shared):
    for url in (shared.webhook_url.replace(shared.webhook_token, "nope"),
                f"{shared.base_url}/rest/2/{shared.webhook_token}/"):
        r = requests.post(url + "crm.deal.list", json={}, timeout=5)
        assert r.status_code == 401
        assert r.json() == {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}


def test_unknown_method_is_404(shared):
    r = rest(shared, "crm.deal.nosuch")
    assert r.status_code == 404
    assert r.json() == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}


def test_url_forms_and_encodings_all_work(shared):
    base = shared.webhook_url
    by_get = requests.get(base + "crm.deal.get.json?ID=4", timeout=5).json()["result"]
    by_form = requests.post(base + "CRM.Deal.Get/", data={"id": "4"}, timeout=5).json()["result"]
    by_json = requests.post(base + "crm.deal.get.json", json={"ID": 4}, timeout=5).json()["result"]
    assert by_get == by_form == by_json and by_get["ID"] == "4"
    query = "filter[%3EID]=10&filter[%3C%3DID]=12&select[]=ID&select[]=TITLE&order[ID]=DESC&__order=x"
    rows = requests.get(base + "crm.deal.list?" + query, timeout=5).json()["result"]
    assert [r["ID"] for r in rows] == ["12", "11"] and set(rows[0]) == {"ID", "TITLE"}
    upper = ok(shared, "crm.deal.list", {"FILTER": {"ID": 5}, "SELECT": ["ID"]})["result"]
    assert upper == [{"ID": "5"}]


def test_missing_deal_and_bad_id_use_documented_bodies(shared):
    r = rest(shared, "crm.deal.get", {"id": 10**7})
    assert (r.status_code, r.json()) == (400, {"error": "", "error_description": "Not found"})
    r = rest(shared, "crm.deal.get", {})
    assert r.status_code == 400 and r.json()["error_description"] == "ID is not defined or invalid."
    r = rest(shared, "crm.deal.list", {"filter": "x"})
    assert r.json()["error_description"] == "Parameter 'filter' must be array."


def test_app_only_methods_are_refused_on_a_webhook(shared):
    r = rest(shared, "bizproc.robot.add", {"CODE": "rs", "HANDLER": "https://x.example.com", "NAME": "x"})
    assert (r.status_code, r.json()) == (403, {"error": "ACCESS_DENIED",
                                               "error_description": "Application context required"})
    r = rest(shared, "crm.automation.trigger.add", {"CODE": "rs", "NAME": "x"})
    assert r.status_code == 403 and r.json()["error_description"] == "Access denied! Application context required"
    assert rest(shared, "event.bind", {"event": "ONCRMDEALUPDATE", "handler": "https://x"}).status_code == 403
    assert rest(shared, "placement.bind", {}).json()["error"] == "WRONG_AUTH_TYPE"
