"""Which day a run plans for: one clock, `RS_TODAY` to reproduce another day, `--as-of` that never
writes a past day's plan by accident, and cards that are never wiped back to "no purchases"."""

from __future__ import annotations

import json
from datetime import date, timedelta

from tests.conftest import TODAY, run_cli
from tests.test_bitrix_writeback import listing


def test_rs_today_is_the_day_every_command_plans_for(cli_env, portal):
    for day in (TODAY, date(2027, 1, 3)):
        result = run_cli(["sync", "--dry-run", "--format", "json"], {**cli_env, "RS_TODAY": day.isoformat()})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["as_of"] == day.isoformat()


def test_a_malformed_rs_today_is_exit_2_naming_it(cli_env, portal):
    result = run_cli(["sync", "--dry-run"], {**cli_env, "RS_TODAY": "03.01.2027"})
    assert result.returncode == 2 and "RS_TODAY" in result.stderr and "YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.stderr


def test_as_of_another_day_writes_nothing_unless_asked(cli_env, portal):
    before = portal.stats()["objects"]
    past = (TODAY - timedelta(days=30)).isoformat()
    refused = run_cli(["sync", "--as-of", past], cli_env)
    assert refused.returncode == 2
    assert "--dry-run" in refused.stderr and "--write-as-of" in refused.stderr
    assert portal.stats()["objects"] == before
    preview = run_cli(["sync", "--as-of", past, "--dry-run", "--format", "json"], cli_env)
    assert preview.returncode == 0 and json.loads(preview.stdout)["as_of"] == past
    assert portal.stats()["objects"] == before
    written = run_cli(["sync", "--as-of", past, "--write-as-of", "--format", "json"], cli_env)
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["stats"]["written"] > 0


def card_values(portal) -> dict[str, str]:
    contacts = listing(portal, "crm.contact.list", {"select": ["ID", "UF_CRM_RS_LIFECYCLE"]})
    return {c["ID"]: c.get("UF_CRM_RS_LIFECYCLE") or "" for c in contacts}


def test_a_plan_that_would_blank_most_cards_is_refused_before_any_write(cli_env, portal):
    assert run_cli(["install"], cli_env).returncode == 0
    assert run_cli(["sync"], cli_env).returncode == 0
    before, objects = card_values(portal), portal.stats()["objects"]
    assert sum(bool(v) and not v.endswith("[prospect]") for v in before.values()) >= 50
    long_ago = date(TODAY.year - 5, 1, 10).isoformat()  # before the shop's first sale: nobody bought yet
    refused = run_cli(["sync", "--as-of", long_ago, "--write-as-of"], cli_env)
    assert refused.returncode == 1, refused.stderr
    assert "cards" in refused.stderr and "--allow-blank-cards" in refused.stderr
    assert card_values(portal) == before and portal.stats()["objects"] == objects
    forced = run_cli(["sync", "--as-of", long_ago, "--write-as-of", "--allow-blank-cards"], cli_env)
    assert forced.returncode == 0, forced.stderr
    assert sum(v == "Потенциальный [prospect]" for v in card_values(portal).values()) >= 50
