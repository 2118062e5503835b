"""`python -m emulators.bitrix` prints its settings first and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_standalone_prints_settings_then_serves_until_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "emulators.bitrix", "--customers", "30", "--seed", "5",
                             "--rate-limit", "off"], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        settings = dict(line.split("=", 1) for line in lines)
        assert settings["CRM"] == "bitrix"
        url = settings["BITRIX_WEBHOOK_URL"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        assert requests.post(url + "crm.deal.get", json={"id": 1}, timeout=5).json()["result"]["ID"] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
