"""Bad answers from a Bitrix24 portal end `repeat-sales sync` cleanly: one line naming the cause, exit 1,
the pull's position saved, nothing written; the next run goes on from there and writes each action
once. And a whole sync lists nothing the way the docs warn against (no offset page, no list unordered).
"""

from __future__ import annotations

import json

import pytest

from .conftest import run_cli

ROWS = "crm.item.productrow.list"

# what the portal does to every request carrying product rows (the pull's third batch or so), and
# the words the one-line error must hold
BAD_ANSWERS = {
    "html": (lambda portal: portal.answer_html(None, status=200, call=ROWS), "HTML page"),
    "truncated": (lambda portal: portal.truncate_next(1, call=ROWS), "broke off before its end"),
    "cut": (lambda portal: portal.add_operating(61, call=ROWS), "cut the request at 60 s"),
}


def contacts_and_deals(portal) -> dict[str, int]:
    return {"crm.contact.list": len(portal.store.contacts), "crm.deal.list": len(portal.store.won_deals())}


@pytest.mark.parametrize("fault", sorted(BAD_ANSWERS))
def test_a_bad_answer_ends_the_run_with_its_position_saved_and_the_next_run_goes_on(cli_env, portal, fault):
    script, words = BAD_ANSWERS[fault]
    tasks_before = portal.stats()["objects"]["task"]
    script(portal)
    stopped = run_cli(["sync", "--format", "json"], cli_env)
    assert stopped.returncode == 1, stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("error: ")]  # the rest is progress
    assert len(lines) == 1 and "Traceback" not in stopped.stderr
    assert words in lines[0] and "saved position" in lines[0] and portal.webhook_token not in lines[0]
    assert portal.stats()["objects"]["task"] == tasks_before, "nothing is written on an incomplete pull"

    portal.clear_faults()
    done = run_cli(["sync", "--format", "json"], cli_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["stats"]["pulled"]["resumed"] == 1 and report["stats"]["written"] > 0
    assert portal.stats()["objects"]["task"] - tasks_before == report["stats"]["written_by_kind"]["task"]
    calls = portal.stats()["list_calls"]
    for method, n in contacts_and_deals(portal).items():  # read before the bad answer, never again
        assert calls[method]["rows"] == n, (method, calls[method])
    if fault == "html":  # nothing ran on the refused requests: every product row was served once
        won = portal.store.won_deals()
        assert calls[ROWS]["rows"] == sum(len(portal.store.rows_of(d.id)) for d in won)

    again = run_cli(["sync", "--format", "json"], cli_env)
    assert again.returncode == 0 and json.loads(again.stdout)["stats"]["written"] == 0


def test_a_whole_sync_reads_no_offset_page_and_orders_every_list(cli_env, portal):
    assert run_cli(["install"], cli_env).returncode == 0
    for args in (["sync"], ["sync"], ["sync", "--full"]):
        result = run_cli(args, cli_env)
        assert result.returncode == 0, result.stderr
    calls = portal.stats()["list_calls"]
    assert calls["crm.deal.list"]["keyset"] > 0 and calls["crm.contact.list"]["keyset"] > 0
    assert {m: v for m, v in calls.items() if v["offset"] or v["unordered"]} == {}
