"""The README's first command: `repeat-sales demo` runs the whole cycle twice against the built-in emulator,
touches reach the customers through the CRM's own channels, and the second run writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("crm,channel", [("bitrix", "message"), ("amocrm", "bot")])
def test_the_demo_reaches_customers_in_their_chats_and_its_second_run_writes_nothing(crm, channel, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "connector", "demo", "--crm", crm, "--customers", "80",
                           "--as-of", "2026-06-15", "--format", "json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    first, second = out["first_run"], out["second_run"]
    assert first["written"] == first["planned"] > 0
    assert first["written_by_kind"].get(channel, 0) > 0  # open lines / the generic Salesbot set up by the demo
    assert second["written"] == 0
    assert "Traceback" not in done.stderr
