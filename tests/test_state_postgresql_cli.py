"""`repeat-sales sync` with its state in PostgreSQL (STATE_URL=postgresql://...) against the Bitrix24
emulator: exactly-once holds there too, and a sync another process holds the lock of is refused."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, TODAY, run_cli
from tests.store_engines import fresh_schema

AS_OF = ["--as-of", TODAY.isoformat()]


def test_sync_on_postgresql_writes_the_plan_once_and_a_rerun_writes_nothing(cli_env, portal, pg_url):
    env = {**cli_env, "STATE_URL": fresh_schema(pg_url, "cli")}
    first = run_cli(["sync", "--format", "json", *AS_OF], env)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["stats"]["written"] == len(out["plan"]) > 0
    tasks = portal.stats()["objects"]["task"]
    again = run_cli(["sync", "--format", "json", *AS_OF], env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["stats"]["written"] == 0 and second["stats"]["skipped"] == len(out["plan"])
    assert portal.stats()["objects"]["task"] == tasks, "nothing new in the portal"


def test_a_sync_while_another_process_holds_the_lock_is_refused(cli_env, pg_url):
    url = fresh_schema(pg_url, "locked")
    code = ("import sys; from connector.state import State; s=State(sys.argv[1]); "
            "cm=s.lock('sync'); cm.__enter__(); print('held', flush=True); sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, env=cli_env)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = run_cli(["sync", *AS_OF], {**cli_env, "STATE_URL": url})
        assert refused.returncode == 1 and "another run holds the sync lock" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
