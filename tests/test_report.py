"""`repeat-sales report`: figures from a real State (synthetic shop + replayed weekly syncs), the
self-contained HTML page, the CLI entry, and the page rendered by headless Chromium.

No emulator and no conftest fixtures: the State is built directly (tests/report_browser).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import pytest

from connector.crm import PullPage
from connector.errors import InputError
from connector.model import Customer, Purchase
from connector.report import CHART_NAMES, build_report, latest_account, render_html, render_text, run_report
from connector.report.data import month_ends, trend_days
from connector.report.uplift import newcombe_diff, replayed_exposures, rule_uplift, treated_exposures, wilson
from connector.state import State
from playbooks import load_playbook
from playbooks.guards import is_holdout
from tests.report_browser.shop_state import ACCOUNT, TODAY, shop_state

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def state_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "state.db"
    shop_state(path, customers=400, seed=7, syncs=20).close()
    return path


@pytest.fixture(scope="module")
def playbook():
    return load_playbook(lang="en")


@pytest.fixture(scope="module")
def report(state_file, playbook) -> dict:
    state = State(state_file)
    try:
        return build_report(state, ACCOUNT, TODAY, playbook)
    finally:
        state.close()


# --- figures ------------------------------------------------------------------------------


def test_report_is_plain_json_with_every_section(report):
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    for key in ("meta", "metrics", "trend", "segments", "migration", "rfm", "cohorts", "first_product", "uplift",
                "lifetime"):
        assert key in report
    assert report["as_of"] == TODAY.isoformat() and report["meta"]["account"] == ACCOUNT
    assert report["meta"]["customers"] == 400 == report["metrics"]["customers"]


def test_trend_holds_eleven_month_ends_and_today(report):
    assert month_ends(date(2026, 6, 15), 3) == [date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]
    assert month_ends(date(2026, 5, 31), 2) == [date(2026, 4, 30), date(2026, 5, 31)]
    assert trend_days(date(2026, 5, 31), 3) == [date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]
    trend = report["trend"]
    # the current month is shown as it stands today, after the last eleven month ends
    assert trend["months"][0] == "2025-07-31" and trend["months"][-2:] == ["2026-05-31", TODAY.isoformat()]
    assert all(len(values) == 12 for values in trend["series"].values())
    assert trend["series"]["customers"][-1] == report["metrics"]["customers"]
    customers = trend["series"]["customers"]
    assert customers == sorted(customers)  # nobody stops being a customer
    assert all(0 <= v <= 1 for v in trend["series"]["repeat_rate"])


def test_segment_sizes_and_migration_count_every_customer(report):
    assert sum(r["customers"] for r in report["segments"]["segments"]) == 400
    mig = report["migration"]
    assert mig["from_date"] == "2026-03-17" and mig["to_date"] == TODAY.isoformat()
    assert sum(map(sum, mig["matrix"])) == mig["total"] == 400
    names = mig["segments"]
    to_today = {name: sum(row[j] for row in mig["matrix"]) for j, name in enumerate(names)}
    assert {s["segment"]: s["customers"] for s in report["segments"]["segments"]} == \
        {k: v for k, v in to_today.items() if v}


def test_rfm_grid_and_cohorts_add_up(report):
    rfm = report["rfm"]
    assert sum(c["customers"] for row in rfm["cells"] for c in row) == 400
    rows = report["cohorts"]["rows"]
    assert [r["cohort"] for r in rows][-1] == "2026-06" and len(rows) == 12
    for i, row in enumerate(rows):
        values = row["retention"]
        if row["customers"]:
            assert values[0] == 1.0  # month +0: everyone bought, by definition
        assert all(v is None or 0 <= v <= 1 for v in values)
        assert all(v is None for v in values[12 - i:])  # months that have not begun
    first = report["first_product"]["rows"]
    assert sum(r["customers"] for r in first) == 400
    assert all(r["repeaters"] <= r["customers"] for r in first)


def test_uplift_counts_ledger_actions_and_keeps_the_groups_apart(report, state_file, playbook):
    up = report["uplift"]
    state = State(state_file)
    try:
        assert sum(r["actions_written"] for r in up["rules"]) == state.ledger_counts(ACCOUNT)["done"]
    finally:
        state.close()
    assert up["replayed_days"] == up["sync_days"] > 0
    assert any(r["holdout"] for r in up["rules"]) and any(r["treated"] for r in up["rules"])
    for r in up["rules"]:
        assert r["treated_converted"] <= r["treated"] and r["holdout_converted"] <= r["holdout"]
        small = r["treated"] < up["min_group"] or r["holdout"] < up["min_group"]
        if small:
            assert r["statement"] == f"sample too small to tell: {r['treated']} treated, {r['holdout']} held out"
            assert r["uplift"] is None
        else:
            assert r["ci_low"] <= r["uplift"] <= r["ci_high"]
            assert r["uplift"] == pytest.approx(r["treated_rate"] - r["holdout_rate"], abs=1e-3)


def test_the_replay_that_finds_holdout_episodes_reproduces_the_ledger(state_file, playbook):
    state = State(state_file)
    try:
        customers = list(state.customers(ACCOUNT))
        applied = state.applied_dates(ACCOUNT)
        catalogue = state.products(ACCOUNT)
    finally:
        state.close()
    treated = {k.split(":")[1] for k in applied}
    holdout = {c.id for c in customers if is_holdout(c.id, playbook.guards.holdout)}
    assert holdout and not treated & holdout  # the syncs never wrote to the hold-out group
    days = sorted(set(applied.values()))
    # the method, checked on the treated group: replaying the sync days gives exactly the ledger's episodes
    replayed = replayed_exposures(customers, days, playbook, catalogue, select=lambda f: not f.holdout)
    assert replayed == treated_exposures(applied, set(days))
    held = replayed_exposures(customers, days, playbook, catalogue)
    assert held and {cid for cid, _rule, _anchor in held} <= holdout
    tiny = rule_uplift(customers, applied, TODAY, playbook, catalogue=catalogue, min_group=10**6)
    assert all(r["verdict"] == "sample too small" for r in tiny["rules"])


def test_wilson_and_newcombe_match_the_published_examples():
    # Newcombe (1998): Wilson 81/263 -> 0.2553 to 0.3662; 56/70 - 48/80 -> 0.0524 to 0.3339 (method 10)
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    d, lo, hi = newcombe_diff(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_lifetime_section_has_the_model(report):
    life = report["lifetime"]
    assert life["model"]["bgnbd"]["time_unit"] == "weeks"
    # one-time buyers have p_alive 1 by construction: they are counted apart, not shown as certain to return
    assert sum(b["customers"] for b in life["p_alive_bins"]) + life["one_time_buyers"] == 400
    assert 0 < life["one_time_buyers"] < 400
    assert life["total_predicted_ltv"] > 0


def test_a_tiny_shop_without_actions_still_gets_every_chart_and_says_why(tmp_path, playbook):
    state = State(tmp_path / "tiny.db")
    try:
        run_id = state.start_run("tiny", "sync", False)
        customers = [Customer(id=f"c{i}", name=f"C {i}") for i in range(5)]
        purchases = [Purchase(f"p{i}", f"c{i}", date(2026, 5, 1 + i), 1000.0 + i) for i in range(5)]
        state.absorb("tiny", PullPage(customers=customers, purchases=purchases), run_id)
        state.finish_run(run_id, {})
        assert latest_account(state) == "tiny"
        report = build_report(state, "tiny", TODAY, playbook)
    finally:
        state.close()
    json.dumps(report, allow_nan=False)
    assert report["lifetime"]["model"] is None and "too few customers" in report["lifetime"]["note"]
    assert report["uplift"]["rules"] == [] and report["uplift"]["replayed_days"] == 0
    page = render_html(report)
    for name in CHART_NAMES:
        assert f'data-chart="{name}"' in page
    assert "too few customers" in page and "too few customers" in render_text(report)


# --- HTML and text ------------------------------------------------------------------------


def test_html_is_one_self_contained_file_with_every_chart(report):
    page = render_html(report)
    for name in CHART_NAMES:
        svg = re.search(rf'<svg[^>]*data-chart="{name}"[^>]*>(.*?)</svg>', page, re.S)
        assert svg, f"chart {name} missing"
        assert "<text" in svg.group(1) and ("<rect" in svg.group(1) or "<path" in svg.group(1))
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r'src\s*=|url\(', page)
    assert set(re.findall(r'href="([^"]*)"', page)) <= {c["url"] for c in report["lifetime"]["top_customers"]}
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}  # namespace only


def test_text_summary_names_the_figures(report):
    text = render_text(report)
    assert f"as of {TODAY.isoformat()}" in text
    for words in ("Repeat rate", "Segments", "Did the rules sell?", "Predicted lifetime", "Champions"):
        assert words in text
    for code in ("repeat_rate", "ltv_3f", "crr_12m", "lost_champions"):  # names, not codes
        assert code not in text


def test_run_report_writes_the_page_and_prints_a_summary(state_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("STATE_URL", f"sqlite:///{state_file}")
    out = tmp_path / "report.html"
    assert run_report(as_of=TODAY, html=str(out)) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "отчёт записан в" in capsys.readouterr().out  # the default playbook is Russian
    assert run_report(as_of=date(2026, 1, 31)) == 0
    assert "на 2026-01-31" in capsys.readouterr().out


def test_report_without_a_sync_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(InputError, match="no sync has run yet: run `repeat-sales sync` first") as err:
        run_report()
    assert err.value.exit_code == 2
    assert not (tmp_path / "missing.db").exists()  # reading a report creates no state
    empty = State(tmp_path / "empty.db")
    try:
        with pytest.raises(InputError, match="no sync has run yet"):
            latest_account(empty)
    finally:
        empty.close()


# --- in a real browser --------------------------------------------------------------------

MEASURE = """<script>
const out = {};
for (const svg of document.querySelectorAll("svg[data-chart]")) {
  const box = svg.getBoundingClientRect(), content = svg.getBBox();
  out[svg.dataset.chart] = {width: box.width, height: box.height, content_w: content.width,
    content_h: content.height, marks: svg.querySelectorAll("rect,path,circle,line").length,
    texts: svg.querySelectorAll("text").length};
}
const pre = document.createElement("pre"); pre.id = "measure"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(report):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed: apt-get update && apt-get install -y chromium")
    keep = Path(tempfile.mkdtemp(prefix="repeat-sales-report-"))
    page = keep / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = keep / "report.png"
    run = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={keep / 'profile'}", f"--screenshot={shot}",
                          "--window-size=1280,4000", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"report screenshot: {shot}")

    # The DOM as Chromium laid it out: the report itself has no script, so a copy gets a measuring one.
    probe = keep / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={keep / 'profile'}", "--dump-dom",
                          "--window-size=1280,4000", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for name in CHART_NAMES:
        assert re.search(rf'<svg[^>]*data-chart="{name}"', dom.stdout), f"chart {name} not in the rendered DOM"
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom.stdout, re.S)
    assert found, "the measuring script did not run"
    sizes = json.loads(found.group(1).replace("&quot;", '"'))
    for name in CHART_NAMES:
        box = sizes[name]
        assert box["width"] > 200 and box["height"] > 100, (name, box)
        assert box["content_w"] > 100 and box["content_h"] > 50, (name, box)
        assert box["marks"] > 1 and box["texts"] > 2, (name, box)
