"""A private Redis (Debian's redis-server on port 31379) and real `repeat-sales worker` processes, for the
job-queue tests (imported by name: tests/queue has no package)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import redis as redis_lib

from connector.store import engine

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_PORT = int(os.environ.get("RS_TEST_REDIS_PORT", "31379"))  # below the ephemeral ports (32768-60999): no
# client connection can hold it; another port: two runs side by side
QUEUE_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 6, 15)  # the shop's history is anchored here
CUSTOMERS = 40
SEED = 7
MARKER = re.compile(r"rs:(v\d+:\S+)")
PLAYBOOK = """extends = "default.en"
[guards.holdout]
enabled = false
[guards.cap]
max_touches = 10
"""


def wait_for(predicate, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)


class RedisServer:
    """Debian's redis-server in a temp dir, append-only (a restart keeps what it had), never saved to RDB."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "yes", "--dir", str(self.dir)],
                                     stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        client = redis_lib.Redis(port=REDIS_PORT, socket_connect_timeout=0.5)
        try:
            wait_for(lambda: self.proc.poll() is not None or self._ping(client), timeout=10, step=0.05)
            assert client.info("server")["process_id"] == self.proc.pid  # ours, not another server on the port
        except AssertionError:
            raise AssertionError(f"redis-server did not start on {REDIS_PORT} (busy port?): "
                                 f"{(self.dir / 'redis.log').read_text()[-500:]}") from None
        return self

    @staticmethod
    def _ping(client) -> bool:
        try:
            return bool(client.ping())
        except redis_lib.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis writes its append-only file and exits
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=REDIS_PORT)


def need_redis() -> None:
    """Debian's redis-server, or a skip outside CI (in CI a missing server fails: CI skips nothing)."""
    if Path(REDIS_SERVER).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{REDIS_SERVER} is missing: apt-get install redis-server (.ci/run does)")
    pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")


def write_playbook(tmp_path: Path) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "playbook.toml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    return str(path)


def bitrix_app_values(portal, tmp_path: Path, **extra) -> dict:
    """Settings of the app on a portal known only through the app, with the queue on."""
    values = dict(CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=portal.app.client_id,
                  BITRIX_APP_CLIENT_SECRET=portal.app.client_secret, BITRIX_OAUTH_URL=portal.base_url,
                  BITRIX_REQUESTS_PER_SECOND=50, BITRIX_REQUEST_POOL=250,
                  STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PLAYBOOK=write_playbook(tmp_path),
                  PLAYBOOK_LANG="en", EVENT_DEBOUNCE_SECONDS=0, QUEUE_URL=QUEUE_URL, QUEUE_REDELIVER_SECONDS=4,
                  LOG_LEVEL="INFO")
    return {**values, **{k: v for k, v in extra.items()}}


class Workers:
    """`repeat-sales worker` processes with the given settings in their environment."""

    def __init__(self, values: dict, cwd: Path) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))},
                    **{k: str(v) for k, v in values.items() if v is not None},
                    "PYTHONPATH": str(ROOT), "RS_TODAY": TODAY.isoformat()}
        self.cwd = cwd
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.cwd / f"worker-{len(self.procs)}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "connector", "worker", *args], env=self.env, cwd=self.cwd,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.cwd.glob("worker-*.log")))

    def stop(self, proc: subprocess.Popen | None = None) -> None:
        for p in [proc] if proc else self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


INBOX_COLUMNS = ("id", "kind", "lane", "started_at", "done_at", "attempts", "error")


def inbox_rows(state) -> list[dict]:
    """The inbox as it lies in the state: a SQLite file's path, or a postgresql:// URL."""
    db = engine.connect(state, timeout=10)
    try:
        return [dict(zip(INBOX_COLUMNS, r, strict=True))
                for r in db.execute(f"SELECT {', '.join(INBOX_COLUMNS)} FROM app_inbox ORDER BY id")]
    finally:
        db.close()


def all_done(state) -> bool:
    rows = inbox_rows(state)
    return bool(rows) and all(r["done_at"] is not None for r in rows)


def markers(emu) -> Counter:
    """What a run wrote per `rs:<key>` marker: tasks and the e-mails the portal sent."""
    with emu.store.lock:
        tasks = Counter(k for t in emu.store.tasks.rows.values() for k in MARKER.findall(t.description or ""))
        emails = Counter(k for a in emu.store.activities.rows.values() if a.type_id == 4
                         for k in MARKER.findall(a.origin_id or ""))
    return tasks + emails


APP_ID, APP_SECRET = "app.6a7b8c9d0e1f23.45678901", "one-marketplace-apps-secret-abcdef0123"


def app_portals(count: int, tmp_path: Path, **extra) -> tuple[list, dict, Workers, object]:
    """`count` portals sharing one marketplace app, `serve`'s app on the queue (settings of the first portal's
    address plus `extra`) and a group of workers, none started: (portals, values, workers, app). Stop them
    with `stop_all`."""
    from connector.settings import load_settings
    from connector.webapp import WebApp
    from emulators.bitrix import BitrixEmulator

    portals = [BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, app_client_id=APP_ID,
                              app_client_secret=APP_SECRET).start() for _ in range(count)]
    values = bitrix_app_values(portals[0], tmp_path, **extra)
    workers = Workers(values, tmp_path)
    app = WebApp(load_settings(**values), port=0, today=lambda: TODAY).start()
    return portals, values, workers, app


def stop_all(app, workers: Workers, portals: list) -> None:
    app.stop(timeout=30)
    workers.stop()
    for emu in portals:
        emu.stop()
