"""Shared fixtures: a fresh, seeded portal emulator per test, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from emulators.bitrix import BitrixEmulator
from tests.store_engines import pg_url, state_at, state_target  # noqa: F401  (the state's two engines)

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 6, 15)  # the shop's history is anchored here, so plans are reproducible


@pytest.fixture
def portal():
    with BitrixEmulator(customers=120, seed=7, today=TODAY) as emu:
        yield emu


@pytest.fixture
def cli_env(tmp_path, portal):
    """Environment for `repeat-sales` pointed at the emulator, with its own state file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_WEBHOOK_URL=portal.webhook_url,
               STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
    return env


def run_cli(args: list[str], env: dict, *, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector", *args], env=env, cwd=env.get("CWD", ROOT),
                          capture_output=True, text=True, timeout=timeout)
