"""23 February and 8 March greet by gender in every CRM, or the run summary says which rule cannot run
and which setting names the gender field (in the summary a user reads, in Russian and in English)."""

from __future__ import annotations

from datetime import date

from connector.state import State
from tests.conftest import run_cli

MARCH8 = date(2027, 3, 8)  # a Monday: not a quiet day of the default playbook
FEB23 = date(2027, 2, 23)  # a Tuesday
SEED = 11


def dry_run(env: dict, day: date, fmt: str = "table") -> str:
    result = run_cli(["sync", "--dry-run", "--format", fmt, "--as-of", day.isoformat()], env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_march8_greets_only_women_and_february23_only_men(crm_class, tmp_path):
    for day, step, gender in ((MARCH8, "march8", "F"), (FEB23, "february23", "M")):
        with crm_class(customers=400, seed=SEED, today=day) as crm:
            truth = crm.genders()
            report = crm.sync(State(tmp_path / f"{step}.db"), dry_run=True, adapter_kw=crm.gender_adapter_kw())
        greeted = [a.customer_id for a in report.plan if a.rule == "holidays"]
        assert greeted, f"no {step} greeting planned on {day}"
        assert all(a.step == step for a in report.plan if a.rule == "holidays")
        assert {truth[c] for c in greeted} == {gender}, f"{step} went to someone not {gender}"
        assert report.stats["rules_cannot_run"] == []


def test_without_a_gender_source_the_summary_names_the_rules_that_cannot_run_and_the_setting(crm_class, tmp_path):
    with crm_class(customers=40, seed=SEED, today=MARCH8) as crm:
        env = crm.cli_env(tmp_path, **crm.drop_gender_source())
        report = crm.sync(State(tmp_path / "s.db"), dry_run=True)
        table = dry_run(env, MARCH8, fmt="table")
        english = dry_run({**env, "PLAYBOOK_LANG": "en"}, MARCH8, fmt="table")
    setting = crm.gender_setting
    assert not [a for a in report.plan if a.rule == "holidays"]
    blocked = report.stats["rules_cannot_run"]
    assert {(b["rule"], b["step"], b["field"], b["setting"]) for b in blocked} == {
        ("holidays", "february23", "gender", setting), ("holidays", "march8", "gender", setting)}
    assert all(setting in b["message"] for b in blocked)
    assert "не сработает" in table and setting in table and "march8" in table
    assert "cannot run" in english and setting in english
