"""The client under scripted faults: 429 storms, 5xx, dropped answers, the rate limit and its block."""

from __future__ import annotations

import pytest
from amo_support import TODAY, Sleeps, pull_all, token_adapter

from connector.errors import CrmRateLimited, CrmRequestRejected, CrmUnavailable
from connector.model import Action, ActionKind
from emulators.amocrm import AmoEmulator


def test_a_429_storm_is_survived_within_bounded_retries_honouring_the_wait(account):
    sleeps = Sleeps()
    adapter = token_adapter(account, sleep=sleeps, requests_per_second=1000)
    account.fail_next(4, status=429, call="/api/v4/leads")
    try:
        _c, purchases, _p, _r, _cur = pull_all(adapter)
    finally:
        adapter.close()
    assert len(purchases) == sum(1 for d in account.shop.deals if d.won)
    assert sleeps == [account.retry_after] * 4, "each retry waited the `retry_after` the body asked for"
    assert account.stats()["requests_total"] == adapter.request_count()


def test_a_storm_longer_than_the_retry_budget_stops_with_rate_limited(account):
    sleeps = Sleeps()
    adapter = token_adapter(account, sleep=sleeps, max_attempts=4, requests_per_second=1000)
    account.fail_next(10, status=429)
    try:
        with pytest.raises(CrmRateLimited) as caught:
            pull_all(adapter)
    finally:
        adapter.close()
    assert account.stats()["requests_total"] == 4 and len(sleeps) == 3
    assert caught.value.retry_after == account.retry_after
    assert account.access_token not in str(caught.value) and "127.0.0.1" not in str(caught.value)


def test_reads_retry_5xx_and_lost_answers_but_a_write_does_not(account):
    adapter = token_adapter(account, sleep=Sleeps(), requests_per_second=1000)
    account.fail_next(2, status=503, call="/api/v4/contacts")
    account.drop_next(1, call="GET /api/v4/leads")
    try:
        _c, purchases, _p, _r, _cur = pull_all(adapter)
        assert purchases
        customer = next(c for c in account.shop.customers if c.kind == "person")
        action = Action(key=f"v1:{customer.id}:test:-:1", kind=ActionKind.TASK, customer_id=str(customer.id),
                        rule="test", step="1", due=TODAY, title="Позвонить")
        account.fail_next(1, status=503, call="POST /api/v4/tasks")
        before = account.stats()["requests"].get("POST /api/v4/tasks", 0)
        with pytest.raises(CrmUnavailable):
            adapter.write([action])
        assert account.stats()["requests"]["POST /api/v4/tasks"] - before == 1, "a 5xx write is never resent"
        account.fail_next(2, status=429, call="POST /api/v4/tasks")  # 429: surely not run, so resent
        [outcome] = adapter.write([action])
        assert outcome.ok and account.stats()["objects"]["task"] == 1
    finally:
        adapter.close()


def test_the_client_stays_under_the_accounts_requests_per_second():
    with AmoEmulator(customers=120, seed=7, today=TODAY, rate_limit=True, requests_per_second=7) as emu:
        adapter = token_adapter(emu, requests_per_second=7)  # the documented limit, the client's default
        try:
            for _ in range(2):
                pull_all(adapter)
        finally:
            adapter.close()
        stats = emu.stats()
    # more than a second's worth of requests, and the server refused none of them
    assert stats["requests_total"] > 14
    assert stats["rate_limited"] == 0, "no request bounced off the limit"


def test_a_client_that_keeps_exceeding_the_limit_is_blocked_with_a_clear_error():
    with AmoEmulator(customers=30, seed=7, today=TODAY, rate_limit=True, requests_per_second=3, block_after=3,
                     retry_after_seconds=0) as emu:
        adapter = token_adapter(emu, requests_per_second=100, sleep=Sleeps())
        try:
            with pytest.raises(CrmRequestRejected) as caught:
                for _ in range(10):
                    adapter.client.request("GET", "/api/v4/account")
        finally:
            adapter.close()
        assert emu.stats()["blocked"] >= 1
    assert caught.value.status == 403 and "support" in str(caught.value)
