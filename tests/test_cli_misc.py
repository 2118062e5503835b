"""Commands a user runs besides sync: the standalone emulator, playbook check, analyze."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
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
    # the one kind of address in the page: the top customers' cards in the portal
    links = set(re.findall(r"https?://[^\s\"'<>]+", html)) - {"http://www.w3.org/2000/svg"}
    assert links and all(re.fullmatch(r"http://127\.0\.0\.1:\d+/crm/(contact|company)/details/\d+/", u) for u in links)
    # the default playbook is Russian: so is the page
    assert html.startswith('<!DOCTYPE html><html lang="ru">') and "Продали ли правила?" in html
    assert "Did the rules sell?" not in html and "ltv_3f" not in html


def analyze(args: list[str], cwd=ROOT, **env: str) -> subprocess.CompletedProcess:
    """`repeat-sales analyze` with no CRM and no playbook settings but those given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "PLAYBOOK", "CRM"))}
    return subprocess.run([sys.executable, "-m", "connector", "analyze", *args], cwd=cwd, capture_output=True,
                          text=True, env={**base, "PYTHONPATH": str(ROOT), **env})


def refuse_constants(name: str):
    raise AssertionError(f"{name} is not JSON")


MISREAD = {  # what analyze used to do with each file: every one is now exit 2 naming the line
    # 1,002 lines: one open quote swallowed the rest and left 1 customer, exit 0
    "open_quote": (b'customer_id,date,amount,product\n1,2026-01-01,100,"tea\n'
                   + "".join(f"{i},2026-01-02,50,cup\n" for i in range(2, 1002)).encode(), 2),
    # read as 1234, and "50" taken for the product
    "shifted_amount": (b"customer_id,date,amount,product\n1,2026-01-01,1 234,50,tea\n", 2),
    # printed Infinity, which no JSON parser reads
    "infinite_amount": (b"customer_id,date,amount\n1,2026-01-01,100\n2,2026-01-02,inf\n", 3),
    # a UnicodeDecodeError traceback (the byte lies past the start that is sniffed for the encoding)
    "stray_byte": ("customer_id,date,amount,product\n1,2026-01-01,100,Чай\n".encode()
                   + b"3,2026-01-01,100,cup\n" * 4000 + b"2,2026-01-01,100,te\xffa\n", 4003),
}


@pytest.mark.parametrize("case", MISREAD)
def test_analyze_refuses_what_it_would_misread_naming_the_line(tmp_path, case):
    data, line = MISREAD[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(data)
    result = analyze([str(path), "--format", "json"])
    assert result.returncode == 2, (result.stdout[:200], result.stderr[-500:])
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"line {line}" in result.stderr, result.stderr


def test_strict_json_turns_what_json_cannot_say_into_null():
    from connector.cli import strict_json

    text = strict_json({"p_alive": float("nan"), "model": {"r": float("inf")}, "customers": [1.5]})
    assert json.loads(text, parse_constant=refuse_constants) == {"p_alive": None, "model": {"r": None},
                                                                 "customers": [1.5]}


def test_analyze_counts_what_it_read_in_strict_json_and_in_the_table(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("customer_id,date,amount,product\n1,2026-03-01,1000,coffee\n\n1,2026-03-10,-100,tea\n"
                   "2,2026-03-02,0,cup\n3,2026-02-01,500,tea\n3,2026-04-01,500,tea\n", encoding="utf-8")
    result = analyze([str(csv), "--format", "json", "--as-of", "2026-03-15"])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout, parse_constant=refuse_constants)
    assert {k: out["input"][k] for k in ("rows_read", "rows_rejected", "refunds_unmatched", "zero_amount_rows",
                                         "purchases_after_as_of")} == {
        "rows_read": 5, "rows_rejected": 0, "refunds_unmatched": 1, "zero_amount_rows": 1, "purchases_after_as_of": 1}
    table_ru = analyze([str(csv), "--as-of", "2026-03-15"])
    assert table_ru.returncode == 0, table_ru.stderr
    assert re.search(r"возвратов без покупки.*\s1$", table_ru.stdout, re.M), table_ru.stdout
    assert re.search(r"строк прочитано\s+5$", table_ru.stdout, re.M)
    table_en = analyze([str(csv), "--as-of", "2026-03-15"], PLAYBOOK_LANG="en")
    assert re.search(r"refunds with no purchase.*\s1$", table_en.stdout, re.M), table_en.stdout


def test_analyze_uses_the_playbook_of_the_settings_and_no_crm_setting(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("customer_id,date,amount\n1,2026-01-05,3000\n1,2026-03-01,1500\n2,2026-02-10,900\n",
                   encoding="utf-8")
    playbook = tmp_path / "shop.toml"
    playbook.write_text('extends = "default"\ncurrency = "EUR"\n\n[metrics]\ncac = 100.0\n', encoding="utf-8")
    crm_junk = {"BITRIX_WEBHOOK_URL": "not a url", "STATE_URL": "postgres://nowhere", "CRM": "bitrix"}
    result = analyze([str(csv), "--format", "json", "--as-of", "2026-04-01"], PLAYBOOK=str(playbook), **crm_junk)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["currency"] == "EUR" and metrics["revenue"] == 5400.0 and metrics["excluded_other_currency"] == 0
    assert metrics["cac"] == 100.0 and metrics["ltv_cac"] == round(metrics["ltv_3f"] / 100.0, 4)
    playbook.write_text('extends = "default"\n\n[metrics]\ncac = "cheap"\n', encoding="utf-8")
    broken = analyze([str(csv)], PLAYBOOK=str(playbook))
    assert broken.returncode == 2 and "metrics.cac" in broken.stderr and "Traceback" not in broken.stderr
    missing = analyze([str(csv)], PLAYBOOK=str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "PLAYBOOK" in missing.stderr
    english = analyze([str(csv), "--as-of", "2026-04-01"], PLAYBOOK_LANG="en")
    assert english.returncode == 0 and english.stdout.startswith("As of 2026-04-01")
    unknown = analyze([str(csv)], PLAYBOOK_LANG="de")
    assert unknown.returncode == 2 and "PLAYBOOK_LANG" in unknown.stderr and "Traceback" not in unknown.stderr
    # a .env next to where it runs counts as the environment does (analyze reads the environment itself
    # when nothing can add to it)
    (tmp_path / ".env").write_text("PLAYBOOK_LANG=en\n", encoding="utf-8")
    dotenv = analyze([str(csv), "--as-of", "2026-04-01"], cwd=tmp_path)
    assert dotenv.returncode == 0 and dotenv.stdout.startswith("As of 2026-04-01"), dotenv.stderr
    playbook.write_text('extends = "default"\ncurrency = "EUR"\n', encoding="utf-8")
    (tmp_path / ".env").write_text(f"PLAYBOOK={playbook}\n", encoding="utf-8")
    in_json = analyze([str(csv), "--format", "json", "--as-of", "2026-04-01"], cwd=tmp_path)
    assert json.loads(in_json.stdout)["metrics"]["currency"] == "EUR"


def orders_csv(path) -> str:
    """40 customers from one-time buyers long gone to frequent recent ones: most segments have someone."""
    from datetime import date, timedelta

    rows = ["customer_id,date,amount,product"]
    for i in range(1, 41):
        last = date(2026, 3, 31) - timedelta(days=(i * 37) % 400)
        rows += [f"{i},{(last - timedelta(days=30 * k)).isoformat()},{500 + 97 * i},tea" for k in range(1 + i % 7)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_analyze_tables_name_segments_and_headers_in_the_playbooks_language(tmp_path):
    from playbooks.words import Names

    csv = orders_csv(tmp_path / "orders.csv")
    as_of = ["--as-of", "2026-04-01"]
    data = json.loads(analyze([csv, "--format", "json", *as_of], PLAYBOOK_LANG="ru").stdout)
    codes = {k for k in data["segments"] if ":" not in k and k != "holdout"}
    stages = {k.split(":")[1] for k in data["segments"] if k.startswith("lifecycle:")}
    assert "champions" in codes and len(codes) >= 4
    ru = analyze([csv, *as_of], PLAYBOOK_LANG="ru")
    assert ru.returncode == 0, ru.stderr
    words = re.findall(r"[A-Za-z_]+", ru.stdout)
    for code in codes | stages | set(data["metrics"]) | {"segment", "lifecycle", "dimension"}:
        assert code not in words, code  # a code is for machines: people read its name
    assert "Чемпионы" in ru.stdout and all(Names("ru").segment(c) in ru.stdout for c in codes)
    assert all(Names("ru").lifecycle(s) in ru.stdout for s in stages)
    assert "Сегменты" in ru.stdout and "Segments" not in ru.stdout and "сегмент" in ru.stdout
    en = analyze([csv, *as_of], PLAYBOOK_LANG="en")
    assert en.returncode == 0 and "Segments" in en.stdout and "Сегменты" not in en.stdout
    assert all(Names("en").segment(c) in en.stdout for c in codes) and "Champions" in en.stdout


def test_sync_tables_speak_the_playbooks_language(cli_env):
    from tests.conftest import TODAY, run_cli

    env = {k: v for k, v in cli_env.items() if not k.startswith("PLAYBOOK")}
    ru = run_cli(["sync", "--dry-run", "--as-of", TODAY.isoformat()], {**env, "PLAYBOOK_LANG": "ru"})
    assert ru.returncode == 0, ru.stderr
    assert "Сегменты" in ru.stdout and "Запланировано по сценариям" in ru.stdout and "было бы записано" in ru.stdout
    words = set(re.findall(r"[A-Za-z_]+", ru.stdout))
    assert not words & {"champions", "loyal", "lifecycle", "reactivation", "calendar", "segment", "Segments", "Run"}
    en = run_cli(["sync", "--dry-run", "--as-of", TODAY.isoformat()], {**env, "PLAYBOOK_LANG": "en"})
    assert en.returncode == 0 and "Segments" in en.stdout and "would write" in en.stdout and "Сегменты" not in en.stdout
