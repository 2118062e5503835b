"""The portal's time budget as the emulator bills it: counted and offset pages cost rows, keyset pages
one page; 480 s a method in 10 minutes, then 429 until the block ends; a request past 60 s is cut.

Assertions read the emulator's billed seconds (stats, `time.operating`), never a clock.
"""

from __future__ import annotations

import time

import requests
from bx_support import SEED, TODAY, ok, rest

from emulators.bitrix import BitrixEmulator

PAGES = 6


def offset_pages(emu, n: int) -> None:
    """The old way: `start = start + 50` over the won deals."""
    for page in range(n):
        ok(emu, "crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S"}, "order": {"ID": "ASC"},
                                  "select": ["ID"], "start": page * 50})


def keyset_pages(emu, n: int) -> None:
    """The docs' way: `>ID` the last one seen, `start=-1`."""
    last = 0
    for _ in range(n):
        rows = ok(emu, "crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S", ">ID": last}, "order": {"ID": "ASC"},
                                         "select": ["ID"], "start": -1})["result"]
        last = int(rows[-1]["ID"])


def billed(emu, method: str) -> float:
    return emu.stats()["operating"][method]["total"]


def test_offset_pages_cost_the_whole_list_each_keyset_pages_one_page(shared):
    shared.reset_stats()
    offset_pages(shared, PAGES)
    offset = billed(shared, "crm.deal.list")
    calls = shared.stats()["list_calls"]["crm.deal.list"]
    assert calls["counted"] == 1 and calls["offset"] == PAGES - 1
    shared.reset_stats()
    keyset_pages(shared, PAGES)
    keyset = billed(shared, "crm.deal.list")
    assert shared.stats()["list_calls"]["crm.deal.list"]["keyset"] == PAGES
    deals, fixed = len(shared.store.won_deals()), PAGES * 0.001  # 1 ms a call, then ~21 us a row touched
    # each counted page counts every won deal, then skips the offset; a keyset page costs one page
    assert offset - fixed >= PAGES * deals * 20e-6
    assert keyset - fixed <= PAGES * 120 * 21e-6
    assert offset - fixed > 10 * (keyset - fixed)


def test_a_page_further_down_costs_more_and_keyset_has_no_total(shared):
    def operating(params: dict) -> float:
        first = ok(shared, "crm.deal.list", {**params, "order": {"ID": "ASC"}, "select": ["ID"]})
        second = ok(shared, "crm.deal.list", {**params, "order": {"ID": "ASC"}, "select": ["ID"]})
        return second["time"]["operating"] - first["time"]["operating"]  # what the second call added

    near = operating({"start": 0})
    far = operating({"start": 500})
    keyset = operating({"start": -1, "filter": {">ID": 0}})
    assert far > near > keyset > 0
    body = ok(shared, "crm.deal.list", {"start": -1, "filter": {">ID": 0}, "order": {"ID": "ASC"}})
    assert body["total"] == 0 and "next" not in body  # Doc: huge-data.md - no COUNT with start=-1


def test_past_its_limit_a_method_answers_429_for_its_block_and_others_go_on():
    with BitrixEmulator(customers=30, seed=SEED, today=TODAY, operating_limit_seconds=5, time_scale=600) as emu:
        emu.add_operating(2.0, call="crm.deal.get")
        times = [ok(emu, "crm.deal.get", {"id": 1})["time"] for _ in range(3)]
        assert [round(t["operating"], 1) for t in times] == [2.0, 4.0, 6.0]  # cumulative, as the docs show
        assert all(isinstance(t["operating_reset_at"], int) and t["operating_reset_at"] >= int(t["start"])
                   for t in times)
        refused = rest(emu, "crm.deal.get", {"id": 1})
        assert refused.status_code == 429
        assert refused.json() == {"error": "OPERATION_TIME_LIMIT",
                                  "error_description": "Method is blocked due to operation time limit"}
        assert rest(emu, "crm.contact.get", {"id": 1}).status_code == 200
        # inside a batch the blocked method's command fails alone
        batch = ok(emu, "batch", {"halt": 0, "cmd": {"d": "crm.deal.get?id=1", "c": "crm.contact.get?id=1"}})
        assert batch["result"]["result_error"]["d"]["error"] == "OPERATION_TIME_LIMIT"
        assert "c" in batch["result"]["result"] and "operating" in batch["result"]["result_time"]["c"]
        stats = emu.stats()
        assert stats["refused"]["OPERATION_TIME_LIMIT"] == 2 and stats["operating"]["crm.deal.get"]["peak"] >= 6
        # the block lasts the window (10 minutes, here scaled to one second), then the method answers again
        deadline = time.monotonic() + 5
        while rest(emu, "crm.deal.get", {"id": 1}).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 200


def test_a_request_past_60_seconds_is_cut_and_what_ran_is_billed(shared):
    shared.reset_stats()
    shared.add_operating(25.0, call="crm.deal.get")
    try:
        r = rest(shared, "batch", {"halt": 0, "cmd": {f"d{i}": f"crm.deal.get?id={i + 1}" for i in range(4)}})
    finally:
        shared.add_operating(0, call="crm.deal.get")
    assert r.status_code == 504 and r.headers["Content-Type"].startswith("text/html")
    stats = shared.stats()
    assert stats["refused"] == {"cut": 1}
    assert round(stats["operating"]["crm.deal.get"]["total"], 3) == 60.0  # two whole calls and the cut one's rest


def test_keyset_pages_chain_in_one_batch_through_result_references(shared):
    shared.reset_stats()
    cmd = {"p0": "crm.deal.list?order[ID]=ASC&filter[>ID]=0&start=-1&select[0]=ID"}
    for i in range(1, 5):
        cmd[f"p{i}"] = f"crm.deal.list?order[ID]=ASC&filter[>ID]=$result[p{i - 1}][49][ID]&start=-1&select[0]=ID"
    result = ok(shared, "batch", {"halt": 0, "cmd": cmd})["result"]
    ids = [int(row["ID"]) for i in range(5) for row in result["result"][f"p{i}"]]
    assert len(ids) == 250 and ids == sorted(ids) and len(set(ids)) == 250
    assert result["result_total"] == {f"p{i}": 0 for i in range(5)}
    assert all("operating" in result["result_time"][f"p{i}"] for i in range(5))
    assert shared.stats()["list_calls"]["crm.deal.list"]["keyset"] == 5


def test_whole_batch_billing_books_the_request_to_batch():
    with BitrixEmulator(customers=30, seed=SEED, today=TODAY, batch_billing="whole") as emu:
        answer = ok(emu, "batch", {"halt": 0, "cmd": {"a": "crm.deal.get?id=1", "b": "crm.contact.get?id=1"}})
        times = answer["result"]["result_time"]
        assert times["a"]["operating"] == times["b"]["operating"] == answer["time"]["operating"] > 0
        assert set(emu.stats()["operating"]) == {"batch"}


def test_html_and_cut_json_answers_can_be_scripted_over_http(emu):
    requests.post(emu.base_url + "/_emulator/faults", json={"answer_html": {"n": 1, "status": 503}}, timeout=5)
    r = rest(emu, "crm.deal.get", {"id": 1})
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
    requests.post(emu.base_url + "/_emulator/faults", json={"truncate_next": {"n": 1, "call": "crm.deal.get"}},
                  timeout=5)
    r = rest(emu, "crm.deal.get", {"id": 1})
    assert r.status_code == 200 and r.text.startswith('{"result"') and not r.text.endswith("}")
    assert rest(emu, "crm.deal.get", {"id": 1}).json()["result"]["ID"] == "1"
