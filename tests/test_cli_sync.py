"""`repeat-sales sync` as a user runs it: a subprocess against the emulator, JSON and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, TODAY, run_cli
from tests.test_sync_exactly_once import tasks_by_key

AS_OF = ["--as-of", TODAY.isoformat()]


def test_sync_json_reports_requests_and_a_second_run_writes_nothing(cli_env, portal):
    first = run_cli(["sync", "--format", "json", *AS_OF], cli_env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["stats"]["written"] == len(out["plan"]) > 0
    assert out["stats"]["requests"] == portal.stats()["requests_total"]
    for entry in out["plan"]:
        assert set(entry) >= {"key", "kind", "customer_id", "rule", "due", "title"}
        assert entry["kind"] in {"task", "tag", "deal", "robot", "workflow"}
    second = json.loads(run_cli(["sync", "--format", "json", *AS_OF], cli_env).stdout)
    assert second["stats"]["written"] == 0
    assert second["stats"]["skipped"] == len(out["plan"])


def test_dry_run_json_lists_customers_and_plan_and_writes_nothing(cli_env, portal):
    tasks_before = portal.stats()["objects"]["task"]
    result = run_cli(["sync", "--dry-run", "--format", "json", *AS_OF], cli_env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    customer = out["customers"][0]
    for key in ("customer_id", "purchases", "first_purchase", "last_purchase", "recency_days", "frequency",
                "monetary", "rfm", "lifecycle", "value", "trend", "tier", "segment", "crm_id"):
        assert key in customer
    assert {c["lifecycle"] for c in out["customers"]} <= {"new", "active", "sleeping", "lost"}
    assert out["plan"] and out["stats"]["requests"] > 0
    assert portal.stats()["objects"]["task"] == tasks_before


def test_a_wrong_webhook_token_is_a_clear_exit_1_without_the_secret(cli_env, portal):
    wrong = portal.webhook_url.rstrip("/").rsplit("/", 1)[0] + "/notthetoken123/"
    result = run_cli(["sync", *AS_OF], {**cli_env, "BITRIX_WEBHOOK_URL": wrong})
    assert result.returncode == 1
    assert "BITRIX_WEBHOOK_URL" in result.stderr
    assert "notthetoken123" not in result.stderr + result.stdout


def test_a_malformed_setting_is_exit_2_naming_the_variable(cli_env):
    result = run_cli(["sync"], {**cli_env, "BITRIX_WEBHOOK_URL": "http://example.com/rest/1/abc/"})
    assert result.returncode == 2
    assert "BITRIX_WEBHOOK_URL" in result.stderr and "https" in result.stderr
    result = run_cli(["sync"], {**cli_env, "CUSTOMER_KEY": "lead"})
    assert result.returncode == 2 and "CUSTOMER_KEY" in result.stderr


def test_a_run_killed_while_writing_then_rerun_leaves_one_task_per_key(cli_env, portal):
    seeded = portal.stats()["objects"]["task"]  # managers' own tasks, there before us
    portal.set_latency(150)
    env = {**cli_env, "BITRIX_WRITE_BATCH": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sync", *AS_OF], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while portal.stats()["objects"]["task"] < seeded + 4 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    portal.set_latency(0)
    written_before_kill = portal.stats()["objects"]["task"] - seeded
    rerun = run_cli(["sync", "--format", "json", *AS_OF], cli_env)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    held = tasks_by_key(portal)
    assert set(held) == {p["key"] for p in out["plan"]}
    assert max(held.values()) == 1
    assert 0 < written_before_kill < len(out["plan"])
