"""Every portal's request budget shared by all processes: three at once against a rate-limited portal get
no 503 (the emulator's leaky bucket, Doc: settings/performance/limits.md), where alone-paced ones do."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from queue_support import QUEUE_URL, ROOT, wait_for

from emulators.amocrm import AmoEmulator
from emulators.bitrix import BitrixEmulator

CALLS = 20
PROCESSES = 3
# One process's calls through the product's own adapter, started together at a barrier file
SCRIPT = """
import pathlib, sys, time
from connector import registry
from connector.settings import load_settings
adapter = registry.make_adapter(load_settings())
here = pathlib.Path(sys.argv[2])
(here / f"ready-{sys.argv[3]}").touch()
while not (here / "go").exists():
    time.sleep(0.01)
for _ in range(int(sys.argv[1])):
    if hasattr(adapter.client, "call"):
        adapter.client.call("crm.deal.fields")
    else:
        adapter.client.request("GET", "/api/v4/account")
adapter.close()
"""


def run_processes(portal, tmp_path, queue_url: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "QUEUE_"))}
    env.update(STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PYTHONPATH=str(ROOT))
    if isinstance(portal, AmoEmulator):
        env.update(CRM="amocrm", AMOCRM_BASE_URL=portal.base_url, AMOCRM_ACCESS_TOKEN=portal.access_token)
    else:
        env.update(CRM="bitrix", BITRIX_WEBHOOK_URL=portal.webhook_url, BITRIX_REQUEST_POOL="10",
                   BITRIX_REQUESTS_PER_SECOND="10")
    if queue_url:
        env["QUEUE_URL"] = queue_url
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(CALLS), str(tmp_path), str(i)], env=env,
                              cwd=tmp_path) for i in range(PROCESSES)]
    try:
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == PROCESSES, timeout=60)
        (tmp_path / "go").touch()
        for p in procs:
            assert p.wait(120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_processes_sharing_a_portal_never_make_it_answer_503(redis_server, tmp_path):
    with BitrixEmulator(customers=5, seed=3, rate_limit=True, bucket_size=10, drain_per_second=10) as portal:
        started = time.monotonic()
        run_processes(portal, tmp_path, QUEUE_URL)
        seconds = time.monotonic() - started
        stats = portal.stats()
    assert stats["requests"].get("crm.deal.fields") == CALLS * PROCESSES
    assert stats["rate_limited"] == 0, f"{stats['rate_limited']} answers 503 in {seconds:.1f} s"


def test_processes_sharing_an_amocrm_account_stay_within_its_requests_per_second(redis_server, tmp_path):
    with AmoEmulator(customers=5, seed=3, rate_limit=True) as account:
        run_processes(account, tmp_path, QUEUE_URL)
        stats = account.stats()
    assert stats["requests"].get("GET /api/v4/account") == CALLS * PROCESSES
    assert stats["rate_limited"] == 0 and stats["blocked"] == 0


def test_without_the_shared_budget_the_same_processes_overflow_the_portal(tmp_path):
    """The check above can fail: each process pacing alone sends three times the portal's burst."""
    with BitrixEmulator(customers=5, seed=3, rate_limit=True, bucket_size=10, drain_per_second=10) as portal:
        run_processes(portal, tmp_path, None)
        assert portal.stats()["rate_limited"] > 0
