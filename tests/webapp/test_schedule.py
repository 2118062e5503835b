"""`repeat-sales schedule`: one run at a time across schedulers, failures retried at the next tick,
SIGTERM finishing the run in flight. The loop's sleep is injected; the commands are real processes."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from web_support import touches_by_marker, wait_for, write_playbook

from connector.errors import CrmUnavailable
from connector.schedule import ScheduledSync
from connector.state import State
from emulators.bitrix import BitrixEmulator

ROOT = Path(__file__).resolve().parents[2]
WEDNESDAY = date(2026, 6, 10)  # a working day: nothing planned is deferred to its day
DONE = SimpleNamespace(stats={"written": 3, "planned": 3, "requests": 5}, error=None, failed={})


def test_a_failed_run_is_logged_and_retried_at_the_next_tick(caplog):
    outcomes = iter([CrmUnavailable("portal down"), KeyError("a bug"), DONE])

    def run_once():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    caplog.set_level(logging.INFO, logger="connector.schedule")
    job = ScheduledSync(run_once, every_minutes=1)
    assert [job.tick(), job.tick(), job.tick()] == ["failed", "failed", "done"]
    assert "tick=failed" in caplog.text and "tick=crashed" in caplog.text and "tick=done" in caplog.text


def test_a_tick_that_finds_the_lock_taken_is_skipped(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.schedule")
    holder = State(tmp_path / "s.db")

    def run_once():
        with State(tmp_path / "s.db").lock("sync"):  # what run_sync does first
            return DONE

    with holder.lock("sync"):
        assert ScheduledSync(run_once, every_minutes=1).tick() == "skipped"
    assert ScheduledSync(run_once, every_minutes=1).tick() == "done"
    assert "tick=skipped reason=locked" in caplog.text


def test_the_loop_runs_at_once_sleeps_through_the_injected_sleep_and_stops():
    calls, sleeps, stop = [], [], threading.Event()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 5:
            stop.set()

    job = ScheduledSync(lambda: calls.append(1) or DONE, every_minutes=30, sleep=sleep, stop=stop)
    assert job.run() == 0
    assert calls == [1] and len(sleeps) == 5 and all(0 < s <= 1.0 for s in sleeps)
    (scheduled,) = job.scheduler.jobs  # the next run is half an hour after this one (no wall clock read)
    assert (scheduled.interval, scheduled.unit) == (30, "minutes")
    assert scheduled.last_run is None and scheduled.next_run is not None, "the scheduled run still waits its turn"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT id, finished, stats, error FROM runs ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []


def test_two_schedulers_run_one_job_and_sigterm_finishes_the_run_in_flight(tmp_path):
    import json

    with BitrixEmulator(customers=40, seed=7, today=WEDNESDAY) as portal:  # the job runs on that day too
        portal.set_latency(2500)  # the first scheduler's cycle crawls until the second one has met its lock
        db = tmp_path / "state.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
        env.update(CRM="bitrix", BITRIX_WEBHOOK_URL=portal.webhook_url, STATE_URL=f"sqlite:///{db}",
                   PLAYBOOK=write_playbook(tmp_path), PLAYBOOK_LANG="en", LOG_LEVEL="INFO", PYTHONPATH=str(ROOT),
                   RS_TODAY=WEDNESDAY.isoformat())
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        procs: list[subprocess.Popen] = []

        def start(log: Path) -> None:
            with open(log, "w") as err:
                procs.append(subprocess.Popen([sys.executable, "-m", "connector", "schedule", "--every", "60"],
                                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err))

        try:
            start(logs[0])
            wait_for(lambda: runs(db), timeout=40)  # the first one holds the lock, its run is under way
            start(logs[1])
            wait_for(lambda: "tick=skipped reason=locked" in read(logs[1]), timeout=40)
            in_flight = runs(db)
            assert len(in_flight) == 1 and in_flight[0][1] is None  # started, not finished
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            portal.set_latency(0)
            assert [proc.wait(timeout=40) for proc in procs] == [0, 0]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        [(_, finished, stats, error)] = runs(db)  # one job, finished, not cut short
        stats = json.loads(stats)
        assert finished is not None and error is None and stats["written"] == stats["planned"] > 0
        held = touches_by_marker(portal)
        assert sum(held.values()) == stats["written"] and max(held.values()) == 1
        assert "tick=done" in read(logs[0]) and "finishing the run in flight" in read(logs[0])
        assert "tick=done" not in read(logs[1])
