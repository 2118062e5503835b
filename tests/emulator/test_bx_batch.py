"""batch: named and array commands, chaining, errors, limits. Doc: settings/how-to-call-rest-api/batch.md"""

from __future__ import annotations

from urllib.parse import quote

from bx_support import ok, rest


def test_named_commands_with_result_chaining(shared):
    body = ok(shared, "batch", {"halt": 0, "cmd": {
        "deals": "crm.deal.list?filter[%3EID]=3&select[]=ID&select[]=CONTACT_ID&order[ID]=ASC",
        "first": "crm.deal.get?id=$result[deals][0][ID]",
        "contact": "crm.contact.get?id=$result[first][CONTACT_ID]",
    }})
    res = body["result"]
    assert "result_time" not in body and set(body) == {"result", "time"}
    assert res["result"]["first"]["ID"] == "4"
    assert res["result"]["contact"]["ID"] == res["result"]["first"]["CONTACT_ID"]
    assert res["result_total"] == {"deals": len(shared.store.deals) - 3}
    assert res["result_next"] == {"deals": 50}
    assert set(res["result_time"]) == {"deals", "first", "contact"}
    assert res["result_error"] == []


def test_array_commands_come_back_as_lists(shared):
    res = ok(shared, "batch", {"cmd": ["crm.deal.get?id=1", "crm.deal.get?id=2"]})["result"]
    assert [r["ID"] for r in res["result"]] == ["1", "2"]
    assert res["result_total"] == [] and res["result_next"] == [] and res["result_error"] == []


def test_fast_bitrix24_style_encoded_query(shared):
    query = "crm.deal.list?select%5B0%5D=ID&filter%5B%3E%3DID%5D=10&order%5BID%5D=ASC&start=0&__order=order0&"
    res = ok(shared, "batch", {"halt": 0, "cmd": {"cmd0000000000": query}})["result"]
    assert res["result"]["cmd0000000000"][0] == {"ID": "10"}
    enc = "crm.deal.list?" + "&".join(f"{quote(k, safe='[]')}={quote(v)}" for k, v in
                                      (("filter[>ID]", "5"), ("filter[<ID]", "7"), ("select[0]", "ID"))) + "&"
    assert ok(shared, "batch", {"cmd": {"a": enc}})["result"]["result"]["a"] == [{"ID": "6"}]


def test_errors_halt_and_limits(shared):
    res = ok(shared, "batch", {"halt": 0, "cmd": {"bad": "crm.deal.get?id=999999", "good": "crm.deal.get?id=1",
                                                  "nested": "batch?cmd[x]=crm.deal.get%3Fid%3D1"}})["result"]
    assert res["result_error"]["bad"] == {"error": "", "error_description": "Not found"}
    assert res["result_error"]["nested"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert res["result"]["good"]["ID"] == "1"
    halted = ok(shared, "batch", {"halt": 1, "cmd": {"bad": "crm.deal.get?id=999999", "good": "crm.deal.get?id=1"}})
    assert halted["result"]["result"] == [] and list(halted["result"]["result_error"]) == ["bad"]
    r = rest(shared, "batch", {"cmd": {f"c{i}": "crm.deal.get?id=1" for i in range(51)}})
    assert r.status_code == 400 and r.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_batch_counts_once_and_commands_separately(emu):
    emu.reset_stats()
    ok(emu, "batch", {"cmd": {"a": "crm.deal.get?id=1", "b": "crm.contact.get?id=1", "c": "crm.deal.get?id=2"}})
    stats = emu.stats()
    assert stats["requests_total"] == 1 and stats["requests"] == {"batch": 1}
    assert stats["commands"] == {"crm.deal.get": 2, "crm.contact.get": 1}


def test_fault_aimed_at_a_command_lands_in_result_error(emu):
    emu.fail_next(1, 500, call="crm.deal.get")
    res = ok(emu, "batch", {"cmd": {"a": "crm.deal.get?id=1", "b": "crm.deal.get?id=2"}})["result"]
    assert res["result_error"] == {"a": {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}}
    assert res["result"]["b"]["ID"] == "2"
