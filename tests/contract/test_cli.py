"""`repeat-sales` as a user runs it against every CRM: a subprocess, JSON, exit codes, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, run_cli


def as_of(crm) -> list[str]:
    return ["--as-of", crm.today.isoformat()]


def test_sync_json_reports_requests_and_a_second_run_writes_nothing(crm, tmp_path):
    env = crm.cli_env(tmp_path)
    first = run_cli(["sync", "--format", "json", *as_of(crm)], env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["stats"]["written"] == len(out["plan"]) > 0
    assert out["stats"]["requests"] == crm.emulator.stats()["requests_total"]
    for entry in out["plan"]:
        assert set(entry) >= {"key", "kind", "customer_id", "rule", "due", "title"}
        assert entry["kind"] in {"task", "tag", "deal", "robot", "workflow", "email", "message", "sms"}
    second = json.loads(run_cli(["sync", "--format", "json", *as_of(crm)], env).stdout)
    assert second["stats"]["written"] == 0
    assert second["stats"]["skipped"] == len(out["plan"])


def test_dry_run_json_lists_customers_and_plan_and_writes_nothing(shared_crm, tmp_path):
    crm = shared_crm
    tasks_before = crm.emulator.stats()["objects"]["task"]
    result = run_cli(["sync", "--dry-run", "--format", "json", *as_of(crm)], crm.cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    customer = out["customers"][0]
    for key in ("customer_id", "purchases", "first_purchase", "last_purchase", "recency_days", "frequency",
                "monetary", "rfm", "lifecycle", "value", "trend", "tier", "segment", "crm_id"):
        assert key in customer
    assert {c["lifecycle"] for c in out["customers"]} <= {"new", "active", "sleeping", "lost"}
    assert out["plan"] and out["stats"]["requests"] > 0
    assert crm.emulator.stats()["objects"]["task"] == tasks_before


def test_a_wrong_token_is_a_clear_exit_1_without_the_secret(shared_crm, tmp_path):
    crm = shared_crm
    result = run_cli(["sync", *as_of(crm)], crm.wrong_token_env(crm.cli_env(tmp_path), "notthetoken123"))
    assert result.returncode == 1
    assert crm.token_setting in result.stderr and "Traceback" not in result.stderr
    assert "notthetoken123" not in result.stderr + result.stdout


def test_install_twice_then_uninstall_as_commands(crm, tmp_path):
    env = crm.cli_env(tmp_path)
    first = run_cli(["install", "--format", "json"], env)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["crm"] == crm.name and len(made["created"]) == crm.install_creates
    assert any(crm.card_fields[0] in name for name in made["created"])
    assert any(crm.opt_out_field in name for name in made["existing"])
    again = run_cli(["install"], env)
    assert again.returncode == 0 and "already there" in again.stdout and crm.card_fields[0] in again.stdout
    assert "created" not in again.stdout
    gone = run_cli(["install", "--uninstall", "--format", "json"], env)
    assert gone.returncode == 0 and sorted(json.loads(gone.stdout)["removed"]) == sorted(made["created"])


def test_a_run_killed_while_writing_then_rerun_leaves_one_task_per_key(crm, tmp_path):
    seeded = crm.emulator.stats()["objects"]["task"]  # managers' own tasks, there before us
    env = crm.cli_env(tmp_path)
    crm.emulator.set_latency(300, call=crm.calls.task_write)
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sync", *as_of(crm)],
                            env=crm.cli_env(tmp_path, write_batch=3), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while crm.emulator.stats()["objects"]["task"] < seeded + 4 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    time.sleep(0.1)  # the next batch is in flight now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    crm.emulator.set_latency(0, call=crm.calls.task_write)
    written_before_kill = crm.emulator.stats()["objects"]["task"] - seeded
    rerun = run_cli(["sync", "--format", "json", *as_of(crm)], env)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    held = crm.touches()  # each planned key once: as a task, or as an e-mail where the CRM sends it
    assert set(held) == {p["key"] for p in out["plan"]} and max(held.values()) == 1
    assert 0 < written_before_kill < len(out["plan"])
