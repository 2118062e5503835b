"""The inbox in the state file: kept before the answer, sealed at rest, swept when a job was never finished."""

from __future__ import annotations

from connector.sealing import Sealer, new_key
from connector.webapp.inbox import Inbox


def test_a_job_is_kept_sealed_and_read_back(tmp_path):
    inbox = Inbox(tmp_path / "state.db", Sealer(new_key()))
    entry_id = inbox.put("bitrix:a.example", "bitrix.install", "jobs", {"args": [{"refresh_token": "r-secret-1"}]})
    assert b"r-secret-1" not in (tmp_path / "state.db").read_bytes()  # tokens in a payload are sealed
    entry = inbox.get(entry_id)
    assert entry.payload == {"args": [{"refresh_token": "r-secret-1"}]} and not entry.done


def test_one_sync_answers_every_open_request_of_its_tenant(tmp_path):
    inbox = Inbox(tmp_path / "state.db")
    a = [inbox.put("bitrix:a", "sync", "jobs", {}) for _ in range(3)]
    inbox.put("bitrix:b", "sync", "jobs", {})
    inbox.put("bitrix:a", "bitrix.robot.rs_classify_customer", "robots", {})
    assert inbox.open_syncs("bitrix:a") == a
    inbox.done(a)
    assert inbox.open_syncs("bitrix:a") == [] and inbox.counts() == {"open": 2, "done": 3}


def test_the_sweep_finds_jobs_never_queued_or_left_by_a_dead_worker(tmp_path):
    inbox = Inbox(tmp_path / "state.db")
    never = inbox.put("t", "sync", "jobs", {}, now=1000.0)  # Redis was down: never queued
    taken = inbox.put("t", "bitrix.install", "jobs", {}, now=1000.0)
    inbox.enqueued(taken, now=1001.0)
    inbox.started(taken, now=1002.0)  # its worker died
    running = inbox.put("t", "bitrix.robot.rs_classify_customer", "robots", {}, now=1000.0)
    inbox.enqueued(running, now=1001.0)
    inbox.started(running, now=1095.0)  # started a moment ago
    done = inbox.put("t", "sync", "jobs", {}, now=1000.0)
    inbox.done([done], now=1003.0)
    assert [row[0] for row in inbox.overdue(60, now=1100.0)] == [never, taken]
