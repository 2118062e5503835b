"""Commands a user runs besides sync: the standalone emulator, playbook check, analyze."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests

from tests.conftest import ROOT


def test_standalone_emulator_prints_settings_first_and_serves_until_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "connector", "emulator", "bitrix", "--customers", "20",
                             "--port", "0", "--rate-limit", "off"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        settings = {}
        while "BITRIX_WEBHOOK_URL" not in settings:
            line = proc.stdout.readline()
            assert line, "the emulator exited before printing its settings"
            name, _, value = line.strip().partition("=")
            settings[name] = value
        url = settings["BITRIX_WEBHOOK_URL"]
        answer = requests.post(url + "crm.contact.list", json={"select": ["ID"]}, timeout=10).json()
        assert answer["total"] >= 20  # 20 customers (companies bring their own contacts too)
        stats = requests.get(url.split("/rest/")[0] + "/_emulator/stats", timeout=10).json()
        assert stats["requests"]["crm.contact.list"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_playbook_check_names_the_key_and_line(tmp_path):
    broken = tmp_path / "my.toml"
    broken.write_text('extends = "default"\n\n[segments.lifecycle]\nsleeping_dayz = 120\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector", "playbook", "check", str(broken)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "segments.lifecycle.sleeping_dayz" in result.stderr and ":4" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "connector", "playbook", "check",
                         str(ROOT / "playbooks" / "default.en.toml")], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_playbook_check_lists_the_active_rules_and_their_steps(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "default.en"\n\n[rules.birthday]\nenabled = false\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector", "playbook", "check", str(mine)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[3:] if line[:1].isalpha()}
    assert rows["reactivation"] == ["10", "email, sms, call"]
    assert rows["holidays"] == ["70", "new_year, february23, march8"]
    assert "birthday" not in rows and result.stdout.rstrip().endswith("Not active: birthday")


def test_analyze_prints_design_json(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("customer_id,date,amount,product\n1,2026-01-05,3000,kettle\n1,2026-03-01,1500,tea\n"
                   "2,2026-02-10,900,tea\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector", "analyze", str(csv), "--format", "json",
                             "--as-of", "2026-04-01"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["as_of"] == "2026-04-01"
    assert {c["customer_id"] for c in out["customers"]} == {"1", "2"}
    assert out["metrics"]["repeat_rate"] == 0.5
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,date,amount\n1,2026-01-05,abc\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "connector", "analyze", str(bad)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "line 2" in result.stderr and "amount" in result.stderr


def test_report_after_a_sync_writes_one_self_contained_html_file(cli_env, portal, tmp_path):
    from tests.conftest import TODAY, run_cli

    empty = run_cli(["report"], cli_env)
    assert empty.returncode == 2 and "sync" in empty.stderr
    assert run_cli(["sync", "--as-of", TODAY.isoformat()], cli_env).returncode == 0
    out = tmp_path / "report.html"
    result = run_cli(["report", "--as-of", TODAY.isoformat(), "--html", str(out)], cli_env)
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") >= 10 and "data-chart=" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
