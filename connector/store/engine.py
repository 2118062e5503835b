"""The two engines behind STATE_URL, and every difference between their SQL, in one place.

Query modules write one dialect: SQLite's, with `?` placeholders and `ON CONFLICT ... DO UPDATE`
(which both engines speak). `Db` turns it into PostgreSQL's where they differ: `%s` placeholders,
DDL types (`{real}`, `{serial}` in migrations), JSON paths, and transactions that take a write lock
up front (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock on a name).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from connector.errors import StateError
from connector.store.sqlite_file import connect_private

PG_PREFIXES = ("postgresql://",)
STREAM_ROWS = 2000
class _DataField(dict):
    """`{data[date]}` in a migration: the text of a top-level field of the row's `data` JSON."""

    def __init__(self, pg: bool) -> None:
        super().__init__()
        self.pg = pg

    def __missing__(self, key: str) -> str:
        return data_field(self.pg, "data", key)


def data_field(pg: bool, column: str, key: str) -> str:
    """The text (SQLite: the value) of top-level field `key` (a name from the code) of a JSON column."""
    return f"(({column})::jsonb ->> '{key}')" if pg else f"json_extract({column}, '$.{key}')"


# In migrations: `{real}`, `{serial}` the engine's types; `{data[key]}` a field of the row's JSON; `{bytes}`
# an index column ordered as ORDER BY db.by() orders; `{without_rowid}` a table kept in its key's order
# (SQLite); `{sqlite_only}` before a statement PostgreSQL skips (it makes the line a comment there).
DDL = {
    "sqlite": {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "data": _DataField(False),
               "bytes": "", "without_rowid": " WITHOUT ROWID",
               "sqlite_only": ""},
    "postgresql": {"real": "DOUBLE PRECISION", "serial": "BIGSERIAL PRIMARY KEY", "data": _DataField(True),
                   "bytes": ' COLLATE "C"', "without_rowid": "", "sqlite_only": "-- "},
}


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(PG_PREFIXES)


def sqlite_path(target: str | Path) -> Path:
    """A plain path or `sqlite:///path` as the file's path."""
    return Path(str(target).removeprefix("sqlite:///")) if isinstance(target, str) else Path(target)


def redact_url(url: str) -> str:
    """A PostgreSQL URL as it may be shown: the password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def lock_key(*names: str) -> int:
    """A name as a signed 64-bit key for PostgreSQL's advisory locks (the same name on every machine)."""
    digest = hashlib.sha256("\x1f".join(names).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Db:
    """One connection to the state, in autocommit mode; `tx()` opens an explicit transaction.

    `execute` returns a cursor (iterate it, `fetchone()`, `fetchall()`, `rowcount`) on both engines.
    """

    def __init__(self, engine: str, conn, where: str, secrets: tuple[str, ...] = ()) -> None:
        self.engine, self.conn, self.where, self._secrets = engine, conn, where, secrets
        self.pg = engine == "postgresql"
        self.scope = ""  # PostgreSQL: the schema; advisory locks are named within it
        self._streams = 0

    # --- SQL text ------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        if not self.pg:
            return text
        return text.replace("%", "%%").replace("?", "%s")

    def ddl(self, text: str) -> str:
        return text.format(**DDL[self.engine])

    def by(self, column: str) -> str:
        """ORDER BY text as bytes, as SQLite and Python compare it (PostgreSQL would use the locale's collation)."""
        return f'{column} COLLATE "C"' if self.pg else column

    def json_text(self, column: str, *keys: str) -> tuple[str, tuple]:
        """An expression for the text at `keys` inside a JSON column, and its parameters."""
        if self.pg:
            return f"(({column})::jsonb #>> ?::text[])", ("{" + ",".join(f'"{k}"' for k in keys) + "}",)
        return f"json_extract({column}, ?)", ("$." + ".".join(f'"{k}"' for k in keys),)

    def skip_locked(self) -> str:
        """A SELECT's tail that locks the rows it claims and skips those another transaction holds
        (PostgreSQL); SQLite's transaction already holds the whole file's write lock."""
        return " FOR UPDATE SKIP LOCKED" if self.pg else ""

    # --- running it ------------------------------------------------------------------------

    def execute(self, text: str, params: Sequence = ()):
        if not self.pg:
            return self.conn.execute(text, params)
        return self._pg(lambda cur: cur.execute(self.sql(text), params))

    def stream(self, text: str, params: Sequence = ()) -> Iterator[tuple]:
        """Rows of a big read a few thousand at a time (PostgreSQL: a server-side cursor, so a million
        purchases never sit in this process at once; SQLite's cursor streams already)."""
        if not self.pg:
            yield from self.conn.execute(text, params)
            return
        import psycopg

        self._streams += 1
        cur = self.conn.cursor(name=f"rs_stream_{self._streams}", withhold=True)  # autocommit: WITH HOLD
        cur.itersize = STREAM_ROWS
        try:
            cur.execute(self.sql(text), params)
            while rows := cur.fetchmany(STREAM_ROWS):
                yield from rows
        except psycopg.Error as exc:
            raise pg_failure(self.where, exc, self._secrets) from None
        finally:
            cur.close()

    def batches(self, text: str, params: Sequence = (), size: int = STREAM_ROWS) -> Iterator[list[tuple]]:
        """A big read as lists of `size` rows (a columnar reader turns each into arrays; no generator
        step per row). PostgreSQL: a server-side cursor, as `stream`."""
        if not self.pg:
            cur = self.conn.execute(text, params)
            while rows := cur.fetchmany(size):
                yield rows
            return
        import psycopg

        self._streams += 1
        cur = self.conn.cursor(name=f"rs_stream_{self._streams}", withhold=True)
        try:
            cur.execute(self.sql(text), params)
            while rows := cur.fetchmany(size):
                yield rows
        except psycopg.Error as exc:
            raise pg_failure(self.where, exc, self._secrets) from None
        finally:
            cur.close()

    def executemany(self, text: str, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        if not self.pg:
            self.conn.executemany(text, rows)
            return
        self._pg(lambda cur: cur.executemany(self.sql(text), rows))

    def script(self, text: str) -> None:
        """Several statements (a migration)."""
        if not self.pg:
            for statement in (s.strip() for s in text.split(";")):
                if statement:
                    self.conn.execute(statement)
            return
        self._pg(lambda cur: cur.execute(text))

    def _pg(self, run):
        import psycopg

        cur = self.conn.cursor()
        try:
            run(cur)
        except psycopg.Error as exc:
            raise pg_failure(self.where, exc, self._secrets) from None
        return cur

    @contextmanager
    def tx(self, lock: str | None = None) -> Iterator[Db]:
        """A transaction that holds the write lock from its start (SQLite: the file; PostgreSQL: `lock`)."""
        if self.pg:
            self.execute("BEGIN")
            if lock is not None:
                self.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(self.scope, lock),))
        else:
            self.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def try_session_lock(self, name: str) -> bool:
        """PostgreSQL: take `name`'s advisory lock for this session (freed by unlock or by the session's end)."""
        return bool(self.execute("SELECT pg_try_advisory_lock(?)", (lock_key(self.scope, name),)).fetchone()[0])

    def session_unlock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_unlock(?)", (lock_key(self.scope, name),))

    def close(self) -> None:
        self.conn.close()


def pg_failure(where: str, exc: Exception, secrets: tuple[str, ...] = ()) -> StateError:
    """A PostgreSQL error as one line without the password."""
    from connector.redact import redact

    text = redact(" ".join(str(exc).split()), secrets)
    return StateError(f"the state database {where} failed: {text}",
                      hint="check that PostgreSQL runs and that STATE_URL names a database this user may write")


def connect(target: str | Path, *, timeout: float) -> Db:
    """A connection to the state STATE_URL names (a path, `sqlite:///path` or `postgresql://...`)."""
    if is_postgres(target):
        return _connect_pg(str(target), timeout=timeout)
    path = sqlite_path(target)
    return Db("sqlite", connect_private(path, timeout=timeout), str(path))


# --- PostgreSQL: connections reused within a process -------------------------------------------------
# A webhook request makes a few short transactions (its tenant, its install, the delivery seen); a new
# PostgreSQL connection for each costs a fork on the server and a handshake. `pooled()` lends an idle one
# of this process (keyed by pid and URL - the URL names the tenant's schema, so a connection never changes
# tenant) and takes it back when it is clean: no transaction open, no error. A connection idle for long is
# asked `SELECT 1` before it is lent (a restarted server left it dead).

POOL_IDLE = 8  # idle connections kept per process and URL (each thread holds one only while it runs SQL)
POOL_PING_AFTER_SECONDS = 1.0  # a server restart takes longer: a connection it killed is never lent
_pool: dict[tuple[int, str], list[tuple[float, Db]]] = {}
_pool_lock = threading.Lock()


@contextmanager
def pooled(target: str | Path, *, timeout: float) -> Iterator[Db]:
    """A connection for one short use: PostgreSQL's from this process's pool, SQLite's new (a file open
    costs little, and its connections stay in the thread that made them)."""
    if not is_postgres(target):
        db = connect(target, timeout=timeout)
        try:
            yield db
        finally:
            db.close()
        return
    key = (os.getpid(), str(target))
    db = _lend(key)
    if db is None:
        db = _connect_pg(str(target), timeout=timeout)
    clean = False
    try:
        yield db
        clean = True
    finally:
        _take_back(key, db, clean)


def _lend(key: tuple[int, str]) -> Db | None:
    import psycopg

    while True:
        with _pool_lock:
            idle = _pool.get(key)
            if not idle:
                return None
            since, db = idle.pop()
        if time.monotonic() - since < POOL_PING_AFTER_SECONDS:
            return db
        try:
            db.conn.execute("SELECT 1")
            return db
        except psycopg.Error:
            db.conn.close()  # dead: try the next idle one, else a new connection


def _take_back(key: tuple[int, str], db: Db, clean: bool) -> None:
    from psycopg.pq import TransactionStatus

    if clean and not db.conn.closed and db.conn.info.transaction_status == TransactionStatus.IDLE:
        with _pool_lock:
            idle = _pool.setdefault(key, [])
            if len(idle) < POOL_IDLE:
                idle.append((time.monotonic(), db))
                return
    db.close()


def _connect_pg(url: str, *, timeout: float) -> Db:
    import psycopg

    from connector.redact import register_secret

    password = urlsplit(url).password or ""
    register_secret(password)  # a log line quoting the URL shows *** instead
    where = redact_url(url)
    secrets = (password,) if password else ()
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)))
            break
        except psycopg.OperationalError as exc:
            if "too many clients" in str(exc) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise StateError(f"cannot connect to the state database {where}: "
                             f"{pg_failure(where, exc, secrets).message.split(' failed: ', 1)[-1]}",
                             hint="check that PostgreSQL runs and that STATE_URL names its host, port, "
                                  "database and user") from None
    db = Db("postgresql", conn, where, secrets)
    # A tenant's tables start empty and grow during its first sync: a plan cached for a statement while its
    # ledger held 50 rows read the whole ledger for each of 3,444 updates later on (10 s, not 0.25 s; half a
    # worker's time in the 100-portal benchmark). Each execution is planned for its own values instead.
    db.execute("SET plan_cache_mode = force_custom_plan")
    db.scope = str(db.execute("SELECT current_schema()").fetchone()[0] or "")
    return db


def exists(target: str | Path) -> bool:
    """Whether the state exists yet (a database always does: migrations create its tables)."""
    return True if is_postgres(target) else sqlite_path(target).exists()


def sqlite_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error)


def process_holder() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
