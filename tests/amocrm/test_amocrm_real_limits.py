"""The account as strict as the real API, and the pull living within it (issue 15, amoCRM items 7, 8, 10, 12).

Filters may be off (`is_api_filter_enabled`), one stage filter a request, a `limit` over the maximum is
refused, deleted leads leave the lists; each behaviour is checked both ways where there are two.
"""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests
from amo_support import CUSTOMERS, SEED, TODAY, pull_all, token_adapter

from emulators.amocrm import AmoEmulator


def api(emu, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, emu.base_url + path, headers={"Authorization": f"Bearer {emu.access_token}"},
                            timeout=10, **kw)


def won_ids(emu) -> set[str]:
    return {str(i) for i, lead in emu.store.leads.items() if lead["status_id"] == 142}


@pytest.fixture(params=[True, False], ids=["filters-on", "filters-off"])
def either(request):
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, api_filter=request.param) as emu:
        yield emu


# --- 7. filters may be off ------------------------------------------------------------------------

def test_the_account_says_whether_filters_apply_and_where_they_do_not_they_are_ignored(either):
    body = api(either, "GET", "/api/v4/account", params={"with": "is_api_filter_enabled"}).json()
    assert body["is_api_filter_enabled"] is either.store.api_filter
    assert "is_api_filter_enabled" not in api(either, "GET", "/api/v4/account").json(), "only with `with=`"
    lead_id = min(either.store.leads)
    got = api(either, "GET", "/api/v4/leads", params={"filter[id][]": lead_id, "limit": 250})
    ids = [x["id"] for x in got.json()["_embedded"]["leads"]]
    assert ids == [lead_id] if either.store.api_filter else len(ids) == 250


def test_an_incremental_pull_reads_what_changed_with_filters_on_or_off_never_the_whole_account(either):
    adapter = token_adapter(either)
    try:
        _c, purchases, _p, _r, cursor = pull_all(adapter)
        assert set(purchases) == won_ids(either)
        touched = sorted(int(i) for i in purchases)[::100]
        for lead_id in touched:
            either.touch_purchase(lead_id, price=4321)
        either.reset_stats()
        customers, changed, _p, removed, _cursor = pull_all(adapter, cursor)
    finally:
        adapter.close()
    leads_read = either.stats()["requests"]["GET /api/v4/leads"]
    assert {int(i) for i in changed} >= set(touched) and all(changed[str(i)].amount == 4321 for i in touched)
    assert len(changed) + len(removed) <= len(touched) + 5, "the changes and the few in the re-read window"
    assert customers == {}, "no contact changed"
    assert leads_read <= math.ceil(len(touched) / 250) + 1, "a page or so, not the account's 250-lead pages"
    assert leads_read < len(won_ids(either)) / 250


# --- 8. one stage filter a request ----------------------------------------------------------------

def test_only_the_first_status_pair_is_honoured_as_documented(account):
    first, second = sorted(account.store.pipelines)
    both = {"filter[statuses][0][pipeline_id]": first, "filter[statuses][0][status_id]": 142,
            "filter[statuses][1][pipeline_id]": second, "filter[statuses][1][status_id]": 142, "limit": 250}
    rows, page = [], 1
    while True:
        answer = api(account, "GET", "/api/v4/leads", params={**both, "page": page})
        if answer.status_code == 204:
            break
        rows += answer.json()["_embedded"]["leads"]
        page += 1
    assert rows and {x["pipeline_id"] for x in rows} == {first}
    assert {str(x["id"]) for x in rows} < won_ids(account), "the second pipeline's won leads are not there"


def test_a_full_pull_reads_the_won_leads_of_every_pipeline(either):
    adapter = token_adapter(either)
    try:
        _c, purchases, _p, _r, _cursor = pull_all(adapter)
    finally:
        adapter.close()
    pipelines = {either.store.leads[int(i)]["pipeline_id"] for i in purchases}
    assert set(purchases) == won_ids(either) and pipelines == set(either.store.pipelines)
    leads_read = either.stats()["requests"]["GET /api/v4/leads"]
    if either.store.api_filter:  # one page series per pipeline, 250 won leads a page
        by_pipeline = [sum(1 for i in won_ids(either) if either.store.leads[int(i)]["pipeline_id"] == p)
                       for p in either.store.pipelines]
        assert leads_read == sum(math.ceil(n / 250) for n in by_pipeline)
    else:  # every lead of the account, since the status filter is ignored
        assert leads_read == math.ceil(len(either.store.leads) / 250)


# --- 10. deletions -----------------------------------------------------------------------------------

def test_a_deleted_won_lead_leaves_the_history_on_the_next_incremental_pull(either):
    adapter = token_adapter(either)
    try:
        _c, purchases, _p, _r, cursor = pull_all(adapter)
        gone = sorted(int(i) for i in purchases)[5]
        either.delete_purchase(gone)
        _c, changed, _p, removed, _cursor = pull_all(adapter, cursor)
    finally:
        adapter.close()
    assert str(gone) in removed and str(gone) not in changed
    assert either.stats()["requests"]["GET /api/v4/events"] == 1


def test_deleted_leads_are_in_the_recycle_bin_and_their_event_only(account):
    lead_id = min(int(i) for i in won_ids(account))
    account.delete_purchase(lead_id)
    listed = api(account, "GET", "/api/v4/leads", params={"filter[id][]": lead_id})
    assert listed.status_code == 204
    [binned] = api(account, "GET", "/api/v4/leads", params={"with": "only_deleted"}).json()["_embedded"]["leads"]
    assert binned["id"] == lead_id and binned["is_deleted"] is True and set(binned) == {
        "id", "updated_at", "is_deleted", "_links"}
    [event] = api(account, "GET", "/api/v4/events", params={"filter[type]": "lead_deleted"}).json()["_embedded"]["events"]
    assert (event["entity_id"], event["entity_type"]) == (lead_id, "lead")
    assert api(account, "GET", "/api/v4/events", params={"limit": 101}).status_code == 422, "events: 100 a page"


# --- 12. the lead object, limits, field codes ----------------------------------------------------------

LEAD_FIELDS = {"id", "name", "price", "responsible_user_id", "group_id", "status_id", "pipeline_id", "loss_reason_id",
               "created_by", "updated_by", "created_at", "updated_at", "closed_at", "closest_task_at", "is_deleted",
               "custom_fields_values", "score", "account_id", "labor_cost", "_links", "_embedded"}


def test_a_lead_carries_every_documented_field_and_source_id_with_its_with(account):
    plain = api(account, "GET", "/api/v4/leads", params={"limit": 5}).json()["_embedded"]["leads"][0]
    assert set(plain) == LEAD_FIELDS
    rich = api(account, "GET", f"/api/v4/leads/{plain['id']}",
               params={"with": "source_id,is_price_modified_by_robot,loss_reason,contacts"}).json()
    assert set(rich) == LEAD_FIELDS | {"source_id", "is_price_modified_by_robot"}
    assert {"loss_reason", "contacts", "tags", "companies"} <= set(rich["_embedded"])


def test_a_limit_over_the_maximum_is_refused_and_within_it_answered(account):
    for path in ("/api/v4/leads", "/api/v4/contacts", "/api/v4/tasks", "/api/v4/leads/custom_fields"):
        refused = api(account, "GET", path, params={"limit": 500})
        assert refused.status_code == 422 and refused.json()["detail"] == "Limit 250 per page", path
    assert len(api(account, "GET", "/api/v4/leads/custom_fields", params={"limit": 250}).json()[
        "_embedded"]["custom_fields"]) <= 50, "custom fields: 50 a page whatever the limit"


def test_a_custom_field_code_already_taken_or_given_twice_is_refused_and_nothing_is_added(account):
    before = len(account.store.custom_fields["contacts"])
    taken = api(account, "POST", "/api/v4/contacts/custom_fields", json=[
        {"name": "A", "type": "text", "code": "RS_NEW"}, {"name": "B", "type": "text", "code": "PHONE"}])
    twice = api(account, "POST", "/api/v4/contacts/custom_fields", json=[
        {"name": "A", "type": "text", "code": "RS_NEW"}, {"name": "B", "type": "text", "code": "rs_new",
                                                          "request_id": "b"}])
    assert taken.status_code == twice.status_code == 400
    assert twice.json()["validation-errors"][0]["request_id"] == "b"
    assert len(account.store.custom_fields["contacts"]) == before
    created = api(account, "POST", "/api/v4/contacts/custom_fields", json=[{"name": "A", "type": "text", "code": "RS_NEW"}])
    assert created.status_code == 201 and len(account.store.custom_fields["contacts"]) == before + 1


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Receiver.received.append(dict(parse_qsl(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_deleting_a_lead_posts_the_delete_webhook_and_webhooks_are_admin_only(account):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        destination = f"http://127.0.0.1:{server.server_address[1]}/amocrm/webhook/secret"
        account.set_admin(False)
        refused = api(account, "POST", "/api/v4/webhooks", json={"destination": destination, "settings": ["delete_lead"]})
        assert refused.status_code == 403
        account.set_admin(True)
        assert api(account, "POST", "/api/v4/webhooks", json={"destination": destination,
                                                              "settings": ["delete_lead"]}).status_code == 200
        lead_id = min(int(i) for i in won_ids(account))
        account.delete_purchase(lead_id)
        account.webhooks.wait_idle()
        [form] = _Receiver.received
        # Doc: developers.kommo.com/docs/webhooks-general - a deleted lead carries its id, status and pipeline only
        assert {k for k in form if k.startswith("leads[")} == {
            "leads[delete][0][id]", "leads[delete][0][status_id]", "leads[delete][0][pipeline_id]"}
        assert form["leads[delete][0][id]"] == str(lead_id) and form["leads[delete][0][status_id]"] == "142"
    finally:
        server.shutdown()
        server.server_close()
