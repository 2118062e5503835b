"""`repeat-sales serve --workers 2`: two real processes on one port, each with its own job worker.
Both answer the portal's events and the app's pages; the state's sync lock keeps their workers from
syncing one portal at the same time, so nothing is written twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from pages_support import ADMIN_USER, hidden_fields, open_form, post, start
from web_support import ADMIN, TODAY, admin, touches_by_marker, wait_for

from connector.state import State
from connector.webapp import WebApp

ROOT = Path(__file__).resolve().parents[2]
FEEDBACK = "feedback-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def finished_runs(state_path: Path) -> list[dict]:
    state = State(state_path)
    try:
        return [r for r in state.last_runs(500) if r["kind"] == "sync"]
    finally:
        state.close()


def test_two_serve_processes_answer_events_and_pages_and_never_sync_one_portal_at_once(portal, tmp_path):
    port, state_path = free_port(), tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="bitrix", BITRIX_APP_CLIENT_ID=portal.app.client_id, BITRIX_APP_CLIENT_SECRET=portal.app.client_secret,
               BITRIX_OAUTH_URL=portal.base_url, BITRIX_REQUESTS_PER_SECOND="50", BITRIX_REQUEST_POOL="250",
               STATE_URL=f"sqlite:///{state_path}", ADMIN_TOKEN=ADMIN, FEEDBACK_SECRET=FEEDBACK,
               EVENT_DEBOUNCE_SECONDS="0.2", RS_TODAY=TODAY.isoformat(), PYTHONPATH=str(ROOT), LOG_LEVEL="INFO")
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
        assert portal.app.install(url + "/bitrix/install", app_url=url + "/bitrix/app") == 200
        wait_for(lambda: [r for r in finished_runs(state_path) if r["finished"]], timeout=60)

        portal.set_latency(100)  # a sync takes a while: the two workers' syncs would overlap if nothing kept them apart
        for deal_id in range(1, 21):  # the portal's events, then feedback answers on fresh connections
            portal.touch_purchase(deal_id, comments=f"edit {deal_id}")
        deals = sorted(portal.store.deals.rows)[:20]
        for deal_id in deals:
            r = requests.post(f"{url}/feedback/{FEEDBACK}", json={"purchase_id": str(deal_id), "score": 9}, timeout=10)
            assert r.status_code == 200, r.text
        assert portal.app.outbound.wait_idle(30)
        events = [d["status"] for d in portal.app.outbound.sent("event")]
        assert len(events) >= 20 and set(events) == {200}

        page = post(open_form(portal))  # the app's main page, as the portal opens it in its frame
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")

        def settled():  # every run finished, and no new one for a while (a worker waiting on the lock retries each second)
            runs = finished_runs(state_path)
            quiet = runs and all(r["finished"] for r in runs) and runs[0]["finished"] < time.time() - 3  # any day: 3 s quiet
            return runs if quiet else None

        runs = wait_for(settled, timeout=120, step=0.5)
        assert requests.get(url + "/status", headers=admin(), timeout=5).status_code == 200
    finally:
        portal.set_latency(0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    log = log_file.read_text()
    spans = sorted((r["started"], r["finished"]) for r in runs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "two syncs ran at once"
    written = touches_by_marker(portal)
    assert written and max(written.values()) == 1, "nothing written twice"
    assert "worker sync=waiting reason=locked" in log, "both processes wanted a sync at once (the lock made one wait)"
    assert ADMIN not in log and portal.app.client_secret not in log and "Traceback" not in log


def test_a_settings_form_one_process_drew_is_saved_by_the_other_and_both_then_use_it(tmp_path):
    """Two apps on one state file, as `serve --workers 2`'s processes are: the portal's POSTs land on
    either, so the form's CSRF token and the saved playbook must hold in both."""
    emu, first, _ = start(tmp_path)
    second = WebApp(first.settings, port=0, today=lambda: TODAY).start()
    try:
        fields = hidden_fields(post(open_form(emu, user_id=ADMIN_USER)).text)  # drawn by the first
        form = requests.post(first.url + "/bitrix/app/settings", data=fields, timeout=60)
        assert form.status_code == 200 and 'name="guards.holdout.percent" value="10' in form.text
        saved = requests.post(second.url + "/bitrix/app/settings", timeout=60,
                              data={**fields, "action": "save", "guards.holdout.percent": "7"})
        assert saved.status_code == 200, saved.text[:300]
        for app in (first, second):  # the playbook in force for each one's next sync and pages
            assert app.runtime.playbook.guards.holdout.percent == 7
            assert app.runtime.playbook_version == second.runtime.playbook_version > 0
    finally:
        second.stop(timeout=30)
        first.stop(timeout=30)
        emu.stop()
