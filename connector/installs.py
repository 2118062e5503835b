"""What the webhook app keeps in the state file: one install per CRM and tenant (tokens, verification
secrets), deliveries already seen (CRMs resend), and pending OAuth `state` values.

A tenant is one portal or account the app serves (connector.tenants): `default` is the `.env`'s; every
other install is filed under its own tenant id, with `ref` - the portal's member_id, the account's id -
in the clear, so a signed request finds its tenant without opening anyone's tokens. An `Installs` is bound
to one tenant (`for_tenant`): what it reads and writes is that tenant's only.

Each call opens its own short SQLite connection, so HTTP handler threads and the worker can share
the file safely; `locked()` is `BEGIN IMMEDIATE` for read-modify-write (token rotation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connector.errors import StateError
from connector.sealing import Sealer
from connector.state import connect_private, state_failure

SEEN_KEEP_SECONDS = 3 * 86400  # a delivery resent later than this is treated as new (sync is idempotent anyway)
LOCK_TIMEOUT_SECONDS = 30

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_installs (tenant TEXT NOT NULL, crm TEXT NOT NULL, ref TEXT NOT NULL,
    data TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (tenant, crm));
CREATE INDEX IF NOT EXISTS tenant_installs_ref ON tenant_installs (crm, ref);
CREATE TABLE IF NOT EXISTS app_seen (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS app_oauth_states (state_sha TEXT PRIMARY KEY, crm TEXT NOT NULL, expires_at REAL NOT NULL);
"""
# before tenants: one install per CRM, the `.env`'s portal - now the tenant `default`
MIGRATE_SINGLE = """
INSERT OR IGNORE INTO tenant_installs SELECT 'default', crm, '', data, updated_at FROM app_installs;
DROP TABLE app_installs;
"""
DEFAULT_TENANT = "default"


def install_ref(data: dict) -> str:
    """What names the install's portal or account in the clear: Bitrix24's member_id, amoCRM's account id."""
    return str(data.get("member_id") or data.get("account_id") or "")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Slot:
    """One install row inside a `locked()` transaction: read `data`, `save()` a new value."""

    def __init__(self, db: sqlite3.Connection, tenant: str, crm: str, data: dict | None, sealer: Sealer) -> None:
        self.db, self.tenant, self.crm, self.data, self.sealer = db, tenant, crm, data, sealer

    def save(self, data: dict) -> None:
        text = self.sealer.seal(json.dumps(data, separators=(",", ":")))  # tokens inside: sealed at rest
        self.db.execute("INSERT OR REPLACE INTO tenant_installs VALUES (?, ?, ?, ?, ?)",
                        (self.tenant, self.crm, install_ref(data), text, time.time()))
        self.data = data

    def delete(self) -> None:
        self.db.execute("DELETE FROM tenant_installs WHERE tenant=? AND crm=?", (self.tenant, self.crm))
        self.data = None


class Installs:
    def __init__(self, path: str | Path, sealer: Sealer | None = None, tenant: str = DEFAULT_TENANT) -> None:
        self.path = Path(path)
        self.sealer = sealer or Sealer()
        self.tenant = tenant
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='app_installs'").fetchone():
                db.executescript(MIGRATE_SINGLE)
                self._name_refs(db)

    def _name_refs(self, db: sqlite3.Connection) -> None:
        """Migrated installs get their `ref` (when this key opens them; else the next save names it)."""
        for tenant, crm, data in db.execute("SELECT tenant, crm, data FROM tenant_installs WHERE ref=''").fetchall():
            try:
                ref = install_ref(json.loads(self.sealer.open(data)))
            except (StateError, ValueError):
                continue
            db.execute("UPDATE tenant_installs SET ref=? WHERE tenant=? AND crm=?", (ref, tenant, crm))
        db.commit()

    def for_tenant(self, tenant: str) -> Installs:
        """The same file, bound to `tenant`: every read and write below is that tenant's only."""
        bound = object.__new__(Installs)
        bound.path, bound.sealer, bound.tenant = self.path, self.sealer, tenant
        return bound

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short connection; a damaged or read-only file surfaces as a StateError saying the fix."""
        db = connect_private(self.path, timeout=LOCK_TIMEOUT_SECONDS)
        try:
            yield db
        except sqlite3.Error as exc:
            raise state_failure(self.path, exc) from None
        finally:
            db.close()

    # --- installs ----------------------------------------------------------------------------

    def get(self, crm: str) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM tenant_installs WHERE tenant=? AND crm=?", (self.tenant, crm)).fetchone()
        return json.loads(self.sealer.open(row[0])) if row else None

    # --- tenants ------------------------------------------------------------------------------

    def tenant_of(self, crm: str, ref: str) -> str | None:
        """The tenant whose `crm` install is the portal or account `ref` (member_id, account id), if any."""
        if not ref:
            return None
        with self._connect() as db:
            row = db.execute("SELECT tenant FROM tenant_installs WHERE crm=? AND ref=? ORDER BY tenant='default' DESC",
                             (crm, ref)).fetchone()
        return row[0] if row else None

    def tenants(self) -> list[dict]:
        """Every install of every tenant: {tenant, crm, ref, updated_at}, no secret."""
        with self._connect() as db:
            rows = db.execute("SELECT tenant, crm, ref, updated_at FROM tenant_installs ORDER BY tenant, crm").fetchall()
        return [{"tenant": t, "crm": c, "ref": r, "updated_at": u} for t, c, r, u in rows]

    def remove_tenant(self, tenant: str) -> int:
        """Every install of `tenant` gone (its tokens with them); how many."""
        with self._connect() as db:
            return db.execute("DELETE FROM tenant_installs WHERE tenant=?", (tenant,)).rowcount

    @contextmanager
    def locked(self, crm: str) -> Iterator[Slot]:
        """BEGIN IMMEDIATE: one writer across threads and processes; committed on leaving, rolled back on error."""
        with self._connect() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StateError(f"the state file is locked: {exc}", hint="another process is writing; retry") from None
            try:
                row = db.execute("SELECT data FROM tenant_installs WHERE tenant=? AND crm=?",
                                 (self.tenant, crm)).fetchone()
                yield Slot(db, self.tenant, crm, json.loads(self.sealer.open(row[0])) if row else None, self.sealer)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def put(self, crm: str, data: dict) -> None:
        with self.locked(crm) as slot:
            slot.save(data)

    def delete(self, crm: str) -> None:
        with self.locked(crm) as slot:
            slot.delete()

    # --- deliveries ---------------------------------------------------------------------------

    def first_seen(self, key: str, *, now: float | None = None) -> bool:
        """True the first time `key` is offered (within SEEN_KEEP_SECONDS), False for a resend."""
        now = time.time() if now is None else now
        with self._connect() as db:
            db.execute("DELETE FROM app_seen WHERE seen_at < ?", (now - SEEN_KEEP_SECONDS,))
            cur = db.execute("INSERT OR IGNORE INTO app_seen VALUES (?, ?)", (_sha(key), now))
            return cur.rowcount == 1

    def forget_seen(self, key: str) -> None:
        """Undo `first_seen` when the delivery could not be queued (so a resend is not lost)."""
        with self._connect() as db:
            db.execute("DELETE FROM app_seen WHERE key=?", (_sha(key),))

    # --- OAuth state --------------------------------------------------------------------------

    def new_oauth_state(self, crm: str, ttl_seconds: float) -> str:
        state = secrets.token_urlsafe(32)
        now = time.time()
        with self._connect() as db:
            db.execute("DELETE FROM app_oauth_states WHERE expires_at < ?", (now,))
            db.execute("INSERT INTO app_oauth_states VALUES (?, ?, ?)", (_sha(state), crm, now + ttl_seconds))
        return state

    def take_oauth_state(self, crm: str, state: str) -> bool:
        """Single use: a known, unexpired state is consumed and True; anything else False.
        Looked up by its hash, so no comparison of the secret itself can leak timing."""
        with self._connect() as db:
            cur = db.execute("DELETE FROM app_oauth_states WHERE state_sha=? AND crm=? AND expires_at >= ?",
                             (_sha(state), crm, time.time()))
            return cur.rowcount == 1

    # --- keys ---------------------------------------------------------------------------------

    def reseal(self) -> int:
        """Every install sealed with STATE_KEY's first key (key rotation); how many were sealed anew."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT tenant, crm, data FROM tenant_installs").fetchall()
            for tenant, crm, data in rows:
                db.execute("UPDATE tenant_installs SET data=? WHERE tenant=? AND crm=?",
                           (self.sealer.reseal(data), tenant, crm))
            db.execute("COMMIT")
        return len(rows)
