"""The hosted app, whole, on one machine: a private PostgreSQL and Redis, emulated Bitrix24 portals sharing one
app and an amoCRM account (all in this process, so the portals share the app's auth server as real ones do),
`repeat-sales serve` and `repeat-sales worker` as real processes. Used by tests/hosting and
benchmarks/many_portals.py; the commands it runs are the README's "Hosting it for many portals".

    with Hosting(workdir, portals=3, customers=150, amocrm=True, workers=2) as h:
        h.install_all(); h.wait_synced(); h.cli("sync", "--all-tenants")
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlparse

import requests

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 6, 15)  # the shop's history is anchored here, so every run plans the same
SEED = 7
PG_PORT = 55439  # the hosting harness's own (tests/store_engines.py uses 55432)
REDIS_PORT = int(os.environ.get("RS_TEST_HOSTING_REDIS_PORT", "31390"))  # below the ephemeral ports: a
# client connection once held 56390 and redis-server could not listen (CI); another port: two runs side by side
REDIS_SERVER = "/usr/bin/redis-server"
APP_ID, APP_SECRET = "app.7c1d2e3f4a5b60.70809010", "hosted-marketplace-app-secret-0123456789"
AMO_ID, AMO_SECRET = "6b1c2d3e-4f5a-6b7c-8d9e-0a1b2c3d4e5f", "hosted-integration-secret-0123456789abcdefABCD"
ADMIN = "hosting-admin-token-0123456789abcdef"
MARKER = re.compile(r"rs:(v\d+:\S+)")
PLAYBOOK = """extends = "default.en"
[guards.holdout]
enabled = false
[guards.cap]
max_touches = 10
"""


def wait_for(predicate, timeout: float = 60.0, step: float = 0.2, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout:.0f} s")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    from tests.store_engines import pg_bindir as found

    return found()


class Postgres:
    """A private PostgreSQL as tests/store_engines.py starts one: initdb into a temp dir, a Unix socket only,
    trust auth, run as `postgres` (or `nobody`) when we are root."""

    def __init__(self, workdir: Path, port: int = PG_PORT) -> None:
        self.dir, self.port = workdir, port
        self.bindir = pg_bindir()
        self.prefix: list[str] = []
        if os.getuid() == 0:
            user = next(u for u in ("postgres", "nobody") if _user_exists(u))
            self.prefix = ["runuser", "-u", user, "--"]
            self.user = pwd.getpwnam(user)
        else:
            self.user = None

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.prefix, *args], capture_output=True, text=True, cwd=self.dir, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr or done.stdout}")

    def start(self) -> Postgres:
        if self.bindir is None:
            raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are missing: apt-get install postgresql")
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off -c full_page_writes=off " \
                  "-c synchronous_commit=off -c max_connections=300"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options, "-l",
                  str(self.dir / "log"), "-w", "-t", "60", "start")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={quote(str(self.dir))}&port={self.port}"

    def stop(self) -> None:
        if self.bindir is not None and (self.dir / "data" / "postmaster.pid").exists():
            subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m",
                            "immediate", "stop"], capture_output=True, cwd=self.dir, timeout=60)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the server `server_url` points at; its URL (every tenant's schemas in it)."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parsed = urlparse(server_url)
    return parsed._replace(path=f"/{name}").geturl()


class Redis:
    """Debian's redis-server in a temp dir, append-only (a restart keeps what it had)."""

    def __init__(self, workdir: Path, port: int = REDIS_PORT) -> None:
        self.dir, self.port = workdir, port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        import redis

        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--dir", str(self.dir)],
                                     stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return self.proc.poll() is not None or bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, timeout=15, step=0.05, what="redis-server answering")
        if self.proc.poll() is not None or client.info("server")["process_id"] != self.proc.pid:
            raise RuntimeError(f"redis-server did not start on {self.port} (busy port?): "
                               f"{(self.dir / 'redis.log').read_text()[-400:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it writes its append-only file and exits
            self.proc.wait(15)
        self.proc = None

    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


def markers(emu) -> Counter:
    """What runs wrote, per `rs:<key>` marker: a portal's tasks and the e-mails it sent, an account's tasks."""
    if hasattr(emu, "tasks_by_marker"):
        return emu.tasks_by_marker()
    with emu.store.lock:
        tasks = Counter(k for t in emu.store.tasks.rows.values() for k in MARKER.findall(t.description or ""))
        emails = Counter(k for a in emu.store.activities.rows.values() if a.type_id == 4
                         for k in MARKER.findall(a.origin_id or ""))
    return tasks + emails


# what a sync writes into a portal's CRM data, compared with the single-portal run (an app install also
# registers events, robots and placements, which a webhook run does not)
CRM_OBJECTS = ("task", "tasks", "deal", "deals", "activity", "activities", "contact", "contacts", "userfield",
               "userfields", "field_values", "comment", "comments", "timeline_comment")


def crm_state(emu) -> dict:
    """A portal's CRM data as a sync leaves it: object counts and the markers' multiset."""
    counts = emu.stats()["objects"]
    return {"objects": {k: v for k, v in counts.items() if not _app_registration(k)},
            "markers": dict(markers(emu))}


def _app_registration(key: str) -> bool:
    return any(word in key.lower() for word in ("event", "robot", "placement", "bind", "webhook", "app"))


class Hosting:
    """PostgreSQL + Redis + `portals` Bitrix24 portals of one app (+ an amoCRM account) + serve + workers."""

    def __init__(self, workdir: Path, *, portals: int = 3, customers: int = 150, amocrm: bool = True,
                 workers: int = 2, serve_workers: int = 1, queue: bool = True, pg_url: str | None = None,
                 rate_limit: bool = False, bitrix_rps: float = 50, extra: dict | None = None) -> None:
        self.dir = Path(workdir)
        self.n_portals, self.customers, self.with_amocrm = portals, customers, amocrm
        self.n_workers, self.serve_workers, self.queue = workers, serve_workers, queue
        self.given_pg, self.rate_limit, self.bitrix_rps, self.extra = pg_url, rate_limit, bitrix_rps, extra or {}
        self.pg: Postgres | None = None
        self.redis: Redis | None = None
        self.portals: list = []
        self.amo = None
        self.serve: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.serve_url = ""
        self.state_url = ""

    # --- up and down ---------------------------------------------------------------------------------

    def __enter__(self) -> Hosting:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Hosting:
        from emulators.amocrm import AmoEmulator
        from emulators.bitrix import BitrixEmulator

        self.dir.mkdir(parents=True, exist_ok=True)
        server = self.given_pg
        if server == "sqlite":  # the state in one SQLite file instead (a comparison, or a machine without PostgreSQL)
            self.state_url = f"sqlite:///{self.dir / 'state.db'}"
        elif server is None:
            self.pg = Postgres(Path(os.environ.get("RS_HOSTING_TMP", "/tmp")) / f"rs-hosting-pg-{os.getpid()}")
            shutil.rmtree(self.pg.dir, ignore_errors=True)
            server = self.pg.start().url
        if server != "sqlite":
            self.state_url = fresh_database(server, f"hosted_{os.getpid()}_{int(time.time() * 1000) % 10**8}")  # any day: a unique name, not a date
        if self.queue:
            self.redis = Redis(self.dir / "redis").start()
        self.portals = [BitrixEmulator(customers=self.customers, seed=SEED, today=TODAY, rate_limit=self.rate_limit,
                                       app_client_id=APP_ID, app_client_secret=APP_SECRET).start()
                        for _ in range(self.n_portals)]
        if self.with_amocrm:
            self.amo = AmoEmulator(customers=self.customers, seed=SEED, today=TODAY, rate_limit=self.rate_limit,
                                   account_id=31_000_001, subdomain="hostedshop", client_id=AMO_ID,
                                   client_secret=AMO_SECRET).start()
        (self.dir / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
        self.start_serve()
        for _ in range(self.n_workers if self.queue else 0):
            self.start_worker()
        return self

    def stop(self) -> None:
        for proc in [*self.workers, self.serve]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.serve]:
            if proc is not None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for emu in [*self.portals, self.amo]:
            if emu is not None:
                emu.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
            shutil.rmtree(self.pg.dir, ignore_errors=True)

    # --- the processes -------------------------------------------------------------------------------

    def env(self) -> dict:
        """The settings every process of the hosted app runs with (README: Hosting it for many portals)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "QUEUE_", "STATE_"))}
        values = dict(CRM="bitrix", BITRIX_APP_CLIENT_ID=APP_ID, BITRIX_APP_CLIENT_SECRET=APP_SECRET,
                      BITRIX_OAUTH_URL=self.portals[0].base_url if self.portals else "",
                      BITRIX_REQUESTS_PER_SECOND=self.bitrix_rps, BITRIX_REQUEST_POOL=250,
                      STATE_URL=self.state_url, ADMIN_TOKEN=ADMIN, PLAYBOOK=str(self.dir / "playbook.toml"),
                      PLAYBOOK_LANG="en", EVENT_DEBOUNCE_SECONDS=1, LOG_LEVEL="INFO",
                      APP_PUBLIC_URL=self.serve_url or None, PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
        if self.amo is not None:
            values.update(AMOCRM_BASE_URL=self.amo.base_url, AMOCRM_CLIENT_ID=AMO_ID, AMOCRM_CLIENT_SECRET=AMO_SECRET,
                          AMOCRM_REDIRECT_URI=self.amo.redirect_uri)
        if self.redis is not None:
            values.update(QUEUE_URL=self.redis.url, QUEUE_REDELIVER_SECONDS=4)
        values.update(self.extra)
        return {**base, **{k: str(v) for k, v in values.items() if v is not None}}

    def start_serve(self) -> None:
        port = free_port()
        self.serve_url = f"http://127.0.0.1:{port}"
        log = open(self.dir / "serve.log", "ab")
        self.serve = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--port", str(port),
                                       "--workers", str(self.serve_workers)], env=self.env(), cwd=self.dir,
                                      stdout=log, stderr=subprocess.STDOUT)

        def answering() -> bool:
            if self.serve.poll() is not None:
                raise AssertionError(f"serve exited {self.serve.returncode}: {self.log('serve')}")
            try:
                return requests.get(self.serve_url + "/healthz", timeout=2).status_code < 500
            except requests.RequestException:
                return False

        wait_for(answering, timeout=90, what="serve answering")

    def start_worker(self) -> subprocess.Popen:
        log = open(self.dir / f"worker-{len(self.workers)}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "connector", "worker"], env=self.env(), cwd=self.dir,
                                stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-2500:]
                         for p in sorted(self.dir.glob("*.log")))

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`repeat-sales ARGS` with the hosted app's settings."""
        return subprocess.run([sys.executable, "-m", "connector", *args], env=self.env(), cwd=self.dir,
                              capture_output=True, text=True, timeout=timeout)

    # --- installs ------------------------------------------------------------------------------------

    def install(self, emu) -> None:
        """The portal's admin installs the app: the emulator posts the install to serve's handler. A 429
        (serve checks only a few new portals' installs at once) is tried again, as the admin would."""
        deadline = time.monotonic() + 900
        while True:
            r = requests.post(f"{emu.base_url}/_emulator/app/install", timeout=120,
                              json={"handler": self.serve_url + "/bitrix/install",
                                    "app_url": self.serve_url + "/bitrix/app"})
            if r.status_code != 200 or r.json()["status"] != 429 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert r.status_code == 200 and r.json()["status"] == 200, (r.text, self.log("serve"))

    def connect_amocrm(self) -> None:
        """The account's admin grants the integration: serve's OAuth redirect gets the code."""
        r = requests.get(self.serve_url + "/amocrm/connect", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        assert r.status_code == 200, (r.text, self.log("serve"))
        state = parse_qs(urlparse(r.json()["url"]).query)["state"][0]
        query = {"referer": urlparse(self.amo.base_url).netloc, "client_id": AMO_ID, "state": state,
                 "code": self.amo.issue_auth_code()}
        got = requests.get(f"{self.serve_url}/amocrm/oauth?{urlencode(query)}", timeout=60)
        assert got.status_code == 200, (got.text, self.log("serve"))

    def install_all(self) -> None:
        """The portals install at once (three at a time), as portals of a marketplace app do (each install is its
        own portal's tenant whatever the order, the first to arrive the default's); then the amoCRM account."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, min(len(self.portals), 3))) as pool:  # serve checks 5 new portals at once
            list(pool.map(self.install, self.portals))
        if self.amo is not None:
            self.connect_amocrm()

    # --- what the app knows --------------------------------------------------------------------------

    def settings(self):
        from connector.settings import load_settings

        return load_settings(**{k: v for k, v in self.env().items() if k.isupper() and k not in ("PYTHONPATH", "PATH")})

    def known(self) -> list[str]:
        """The tenants' ids, read in this process (cheap enough to poll)."""
        from connector import tenants

        with contextlib.chdir(self.dir):
            return [t.id for t in tenants.known(self.settings())]

    def tenants(self) -> list[dict]:
        done = self.cli("tenants", "list", "--format", "json", timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["tenants"]

    def runs(self) -> dict[str, list[dict]]:
        """Every tenant's runs, newest first, read from the state as `tenants show` does (in this process)."""
        from connector import tenants

        settings = self.settings()
        found = {}
        with contextlib.chdir(self.dir):  # where serve and the workers run (a tenant's state may be a relative file)
            for tenant in tenants.known(settings):
                found[tenant.id] = _runs_of(settings, tenant)
        return found

    def finished_runs(self) -> dict[str, int]:
        """Each tenant's finished runs among its last 100."""
        return {t: sum(1 for r in rows if r.get("finished")) for t, rows in self.runs().items()}

    def newest_runs(self) -> dict[str, int]:
        """Each tenant's newest finished run's id (0 before its first): grows with every sync."""
        return {t: max((r["id"] for r in rows if r.get("finished")), default=0) for t, rows in self.runs().items()}

    def wait_runs(self, at_least: int, tenants_expected: int, timeout: float = 600) -> dict[str, int]:
        """Until every tenant has `at_least` finished runs (the install's first sync, then a sync...)."""
        def enough():
            got = self.finished_runs()
            return got if len(got) >= tenants_expected and all(n >= at_least for n in got.values()) else None

        return wait_for(enough, timeout=timeout, step=1.0, what=f"{tenants_expected} tenants with {at_least} runs")

    def crm_states(self) -> list[dict]:
        return [crm_state(emu) for emu in [*self.portals, *([self.amo] if self.amo else [])]]


def _runs_of(settings, tenant) -> list[dict]:
    from connector import tenants
    from connector.state import State

    own = tenants.settings_for(settings, tenant.id, None if tenant.id == tenants.DEFAULT else tenant.crm)
    state = State(getattr(own, "state_target", own.state_path))
    try:
        return state.last_runs(100)
    finally:
        state.close()


def single_portal_state(workdir: Path, customers: int, crm: str = "bitrix", runs: int = 2, *, install: bool = True,
                        extra: dict | None = None) -> dict:
    """The same shop synced by the one-machine setup (a webhook or a long-lived token, `repeat-sales install`
    and `sync`, SQLite): what every hosted portal (`crm="bitrix"`) or account (`"amocrm"`) must end as."""
    from emulators.amocrm import AmoEmulator
    from emulators.bitrix import BitrixEmulator

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    make = BitrixEmulator if crm == "bitrix" else AmoEmulator
    with make(customers=customers, seed=SEED, today=TODAY) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "QUEUE_", "STATE_"))}
        env.update(CRM=crm, STATE_URL=f"sqlite:///{workdir / 'state.db'}",
                   PLAYBOOK=str(workdir / "playbook.toml"), PLAYBOOK_LANG="en", BITRIX_REQUESTS_PER_SECOND="50",
                   BITRIX_REQUEST_POOL="250", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat())
        if crm == "bitrix":
            env.update(BITRIX_WEBHOOK_URL=emu.webhook_url)
        else:
            env.update(AMOCRM_BASE_URL=emu.base_url, AMOCRM_ACCESS_TOKEN=emu.access_token)
        env.update({k: str(v) for k, v in (extra or {}).items()})
        for args in ([["install"]] if install else []) + [["sync"]] * runs:
            done = subprocess.run([sys.executable, "-m", "connector", *args], env=env, cwd=workdir,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-2000:]
        return crm_state(emu)
