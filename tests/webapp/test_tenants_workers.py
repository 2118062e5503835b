"""`serve --workers 2` hosting two portals that share one app: whichever process takes a portal's request
finds its tenant in the shared installs (a tenant installed through one process is known to both), and
every tenant's syncs stay on its own portal and state, nothing written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from test_serve_workers import children, finished_runs, free_port
from web_support import ADMIN, CUSTOMERS, TODAY, touches_by_marker, wait_for

from connector import tenants
from connector.settings import load_settings
from emulators.bitrix import BitrixEmulator

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, SECRET = "app.0f1e2d3c4b5a69.87654321", "workers-shared-marketplace-secret-0987"


def test_two_processes_serve_every_tenant_and_keep_them_apart(tmp_path):
    port, state_path = free_port(), tmp_path / "s.db"
    portals = [BitrixEmulator(customers=CUSTOMERS, seed=7, today=TODAY, app_client_id=CLIENT_ID,
                              app_client_secret=SECRET).start() for _ in range(2)]
    a, b = portals
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_APP_CLIENT_ID=CLIENT_ID, BITRIX_APP_CLIENT_SECRET=SECRET,
               BITRIX_OAUTH_URL=a.base_url, BITRIX_REQUESTS_PER_SECOND="50", BITRIX_REQUEST_POOL="250",
               STATE_URL=f"sqlite:///{state_path}", ADMIN_TOKEN=ADMIN, EVENT_DEBOUNCE_SECONDS="0.2",
               RS_TODAY=TODAY.isoformat(), PYTHONPATH=str(ROOT))
    settings = load_settings(**{k: env[k] for k in ("CRM", "STATE_URL", "BITRIX_APP_CLIENT_ID",
                                                   "BITRIX_APP_CLIENT_SECRET", "BITRIX_OAUTH_URL")})
    log_file = tmp_path / "serve.log"
    with log_file.open("w") as log_out:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--port", str(port), "--workers", "2"],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log_out)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(url + "/healthz", timeout=1).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(up, timeout=60, step=0.2)
        wait_for(lambda: len(children(proc.pid)) >= 2, timeout=30)
        paths = {}
        for emu, tenant in ((a, tenants.DEFAULT), (b, b.app.member_id)):
            assert emu.app.install(url + "/bitrix/install") == 200
            paths[tenant] = tenants.state_path(settings, tenant)
            wait_for(lambda p=paths[tenant]: p.exists() and [r for r in finished_runs(p) if r["finished"]],
                     timeout=90, step=0.5)
        edited_at = time.time()  # any day: wall time tells the runs after B's edits
        with b.store.lock:
            won = sorted(d.id for d in b.store.deals.rows.values() if d.semantic == "S")[:10]
        for deal_id in won:  # B's events (purchases renamed: changes a sync reads), on whichever process takes each
            b.touch_purchase(deal_id, title=f"edit {deal_id}")
        assert b.app.outbound.wait_idle(30)
        assert {d["status"] for d in b.app.outbound.sent("event")} == {200}

        def settled():
            runs = {t: finished_runs(p) for t, p in paths.items()}
            quiet = all(r["finished"] and r["finished"] < time.time() - 3 for rs in runs.values() for r in rs)  # any day
            return runs if quiet else None

        runs = wait_for(settled, timeout=120, step=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        for emu in portals:
            emu.stop()
    assert code == 0
    assert {r["account"] for r in runs["default"]} == {f"bitrix:{a.app.domain}"}
    assert {r["account"] for r in runs[b.app.member_id]} == {f"bitrix:{b.app.domain}"}
    # B's events synced B: its runs since the edits read the ten edited deals into B's state (how many runs
    # each tenant had depends on timing - the echoes of each sync's own writes - and is not asserted)
    since = [r for r in runs[b.app.member_id] if r["started"] >= edited_at]
    assert sum(((r.get("stats") or {}).get("pulled") or {}).get("purchases", 0) for r in since) >= 10, since
    for emu in portals:
        written = touches_by_marker(emu)
        assert written and max(written.values()) == 1, "nothing written twice"
    log = log_file.read_text()
    assert SECRET not in log and "Traceback" not in log
