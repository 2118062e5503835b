"""The state's two engines for tests: `state_target` runs a test on SQLite and on PostgreSQL.

PostgreSQL is RS_TEST_PG_URL when set, else a private server started once per session from the
Debian packages' binaries (initdb into a temp folder, a Unix socket only, port 55432, trust auth).
Without those binaries the PostgreSQL cases fail under CI=true (CI skips nothing) and skip otherwise.
initdb refuses root: as root the server runs as the `postgres` user (or `nobody`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

PG_PORT = 55432
ENGINES = ("sqlite", "postgresql")
_schemas = itertools.count(1)


def pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian's /usr/lib/postgresql/<version>/bin (newest), else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_owner() -> tuple[list[str], str | None]:
    """The command prefix that runs the server as a plain user when we are root, and that user."""
    if os.getuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"], user
    pytest.fail("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL")


@pytest.fixture(scope="session")
def pg_url():
    """A database URL on a PostgreSQL only this test session uses."""
    given = os.environ.get("RS_TEST_PG_URL")
    if given:
        yield given
        return
    bindir = pg_bindir()
    if bindir is None:
        message = "PostgreSQL's server binaries (initdb, pg_ctl) are missing: apt-get install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    prefix, user = _as_owner()
    base = Path(tempfile.mkdtemp(prefix="rs-test-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, log = base / "data", base / "log"

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=base, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{args[0]} failed: {done.stderr or done.stdout}")

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = f"-p {PG_PORT} -k {base} -c listen_addresses='' -c fsync=off -c full_page_writes=off " \
              "-c synchronous_commit=off -c max_connections=200"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(base), "-p", str(PG_PORT), "-U", "postgres", "repeat_sales")
        yield f"postgresql://postgres@/repeat_sales?host={quote(str(base))}&port={PG_PORT}"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=base, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def fresh_schema(url: str, name: str) -> str:
    """A URL whose tables live in a new, empty schema (one test's own state)."""
    import psycopg

    schema = f"t{next(_schemas)}_{os.getpid()}_" + "".join(c for c in name if c.isalnum())[:20].lower()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=ENGINES)
def state_at(request, tmp_path):
    """`state_at("a.db")`: a state target of this test's engine; each name its own, empty state."""
    if request.param == "sqlite":
        return lambda name="s.db": tmp_path / name
    url = request.getfixturevalue("pg_url")
    made: dict[str, str] = {}

    def target(name: str = "s.db") -> str:
        if name not in made:
            made[name] = fresh_schema(url, name)
        return made[name]

    return target


@pytest.fixture
def state_target(state_at):
    """One state of this test's engine: a SQLite file path, or a postgresql:// URL."""
    return state_at("s.db")


def state_url(target) -> str:
    """STATE_URL for the CLI: `sqlite:///path` or the postgresql:// URL itself."""
    return target if isinstance(target, str) else f"sqlite:///{target}"
