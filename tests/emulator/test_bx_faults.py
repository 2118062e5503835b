"""Rate limits and scripted faults, steered from Python and over HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from bx_support import CUSTOMERS, SEED, TODAY, ok, rest

from emulators.bitrix import BitrixEmulator


def test_leaky_bucket_refuses_before_running():
    with BitrixEmulator(customers=20, seed=SEED, today=TODAY, rate_limit=True, bucket_size=5,
                        drain_per_second=0.5) as emu:
        statuses = [rest(emu, "crm.contact.add", {"fields": {"NAME": f"n{i}"}}).status_code for i in range(8)]
        assert statuses[:5] == [200] * 5 and 503 in statuses[5:]
        r = rest(emu, "crm.deal.get", {"id": 1})
        assert r.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        added = statuses.count(200)
        assert sum(1 for c in emu.store.contacts.rows.values() if c.name.startswith("n")) == added


def test_bucket_drains_with_time_scale():
    with BitrixEmulator(customers=10, seed=SEED, today=TODAY, rate_limit=True, bucket_size=3,
                        drain_per_second=2.0, time_scale=50) as emu:
        for _ in range(12):
            assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 200
            time.sleep(0.02)


def test_fail_next_then_recover(emu):
    emu.fail_next(2, 503)
    assert [rest(emu, "crm.deal.get", {"id": 1}).status_code for _ in range(3)] == [503, 503, 200]
    emu.fail_next(1, 429, call="crm.deal.list")
    assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 200
    r = rest(emu, "crm.deal.list")
    assert (r.status_code, r.json()["error"]) == (429, "OPERATION_TIME_LIMIT")


def test_drop_next_applies_the_write_but_loses_the_answer(emu):
    before = len(emu.store.deals)
    emu.drop_next(1, call="crm.deal.add")
    with pytest.raises(requests.ConnectionError):
        rest(emu, "crm.deal.add", {"fields": {"TITLE": "потерянный ответ"}})
    assert len(emu.store.deals) == before + 1
    assert emu.store.deals.rows[emu.store.deals.last_id].title == "потерянный ответ"
    assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 200


def test_random_faults_follow_the_shares(emu):
    emu.set_faults("503:0.3,500:0.2,drop:0.1")
    codes = []
    for _ in range(100):
        try:
            codes.append(rest(emu, "crm.deal.get", {"id": 1}).status_code)
        except requests.ConnectionError:
            codes.append("drop")
    assert 15 <= codes.count(503) <= 45 and 5 <= codes.count(500) <= 35 and 2 <= codes.count("drop") <= 20
    emu.set_faults(None)
    assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 200


def test_latency_delays_answers(emu):
    emu.set_latency(150, call="crm.deal.get")
    t = time.monotonic()
    rest(emu, "crm.deal.get", {"id": 1})
    assert time.monotonic() - t >= 0.14
    t = time.monotonic()
    rest(emu, "crm.contact.get", {"id": 1})
    assert time.monotonic() - t < 0.14


def test_operating_limit_gives_429_on_the_next_call():
    with BitrixEmulator(customers=10, seed=SEED, today=TODAY, operating_limit_seconds=0.003,
                        operating_per_call=0.001) as emu:
        codes = [rest(emu, "crm.deal.get", {"id": 1}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert rest(emu, "crm.contact.get", {"id": 1}).status_code == 200


def test_control_over_http(emu):
    base = emu.base_url
    requests.post(base + "/_emulator/faults", json={"fail_next": {"n": 1, "status": 500, "call": None}}, timeout=5)
    assert rest(emu, "crm.deal.get", {"id": 1}).status_code == 500
    requests.post(base + "/_emulator/faults", json={"drop_next": {"n": 1}}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        rest(emu, "crm.deal.get", {"id": 1})
    stats = requests.get(base + "/_emulator/stats", timeout=5).json()
    assert stats == emu.stats() and stats["requests"]["crm.deal.get"] == 2
    requests.post(base + "/_emulator/reset_stats", timeout=5)
    assert emu.stats()["requests_total"] == 0 and emu.stats()["objects"]["deal"] == len(emu.store.deals)
    ok(emu, "crm.deal.get", {"id": 1})
    assert emu.stats()["requests"] == {"crm.deal.get": 1}


def test_same_seed_same_webhook_and_data():
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as a, \
            BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as b:
        assert a.webhook_token == b.webhook_token
        assert ok(a, "crm.deal.list", {"select": ["ID", "OPPORTUNITY", "CLOSEDATE"]})["result"] == \
            ok(b, "crm.deal.list", {"select": ["ID", "OPPORTUNITY", "CLOSEDATE"]})["result"]
