"""What the webhook app keeps in the state file: one install per CRM and tenant (tokens, verification
secrets), deliveries already seen (CRMs resend), and pending OAuth `state` values.

A tenant is one portal or account the app serves (connector.tenants): `default` is the `.env`'s; every
other install is filed under its own tenant id, with `ref` - the portal's member_id, the account's id -
in the clear, so a signed request finds its tenant without opening anyone's tokens. An `Installs` is bound
to one tenant (`for_tenant`): what it reads and writes is that tenant's only.

Each call takes its own short connection (on PostgreSQL one reused from the process's pool), so HTTP
handler threads and the worker can share the state safely; `locked()` holds the write lock for read-modify-write (token rotation). SQL: connector/store/app.py.
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
from connector.state import state_failure
from connector.store import app, engine, migrations

SEEN_KEEP_SECONDS = 3 * 86400  # a delivery resent later than this is treated as new (sync is idempotent anyway)
LOCK_TIMEOUT_SECONDS = 30
CLAIM_KEEP_SECONDS = 3600  # an install claiming the default that never completes (a crash) frees it after this

DEFAULT_TENANT = "default"


def install_ref(data: dict) -> str:
    """What names the install's portal or account in the clear: Bitrix24's member_id, amoCRM's account id."""
    return str(data.get("member_id") or data.get("account_id") or "")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Slot:
    """One install row inside a `locked()` transaction: read `data`, `save()` a new value."""

    def __init__(self, db: engine.Db, tenant: str, crm: str, data: dict | None, sealer: Sealer) -> None:
        self.db, self.tenant, self.crm, self.data, self.sealer = db, tenant, crm, data, sealer

    def save(self, data: dict) -> None:
        text = self.sealer.seal(json.dumps(data, separators=(",", ":")))  # tokens inside: sealed at rest
        app.save_install(self.db, self.tenant, self.crm, install_ref(data), text)
        self.data = data

    def delete(self) -> None:
        app.delete_install(self.db, self.tenant, self.crm)
        self.data = None


class Installs:
    def __init__(self, path: str | Path, sealer: Sealer | None = None, tenant: str = DEFAULT_TENANT) -> None:
        self.path = path if engine.is_postgres(path) else engine.sqlite_path(path)
        self.sealer = sealer or Sealer()
        self.tenant = tenant
        with self._connect() as db:
            migrations.prepare(db)  # migration 3 files a pre-tenants install as the tenant `default`'s
            self._name_refs(db)

    def _name_refs(self, db: engine.Db) -> None:
        """Migrated installs get their `ref` (when this key opens them; else the next save names it)."""
        for tenant, crm, data in app.unnamed_installs(db):
            try:
                ref = install_ref(json.loads(self.sealer.open(data)))
            except (StateError, ValueError):
                continue
            app.name_install(db, tenant, crm, ref)

    def for_tenant(self, tenant: str) -> Installs:
        """The same file, bound to `tenant`: every read and write below is that tenant's only."""
        bound = object.__new__(Installs)
        bound.path, bound.sealer, bound.tenant = self.path, self.sealer, tenant
        return bound

    @contextmanager
    def _connect(self) -> Iterator[engine.Db]:
        """A short connection (PostgreSQL: reused from the process's pool, engine.pooled); a damaged or
        read-only file surfaces as a StateError saying the fix."""
        with engine.pooled(self.path, timeout=LOCK_TIMEOUT_SECONDS) as db:
            try:
                yield db
            except sqlite3.Error as exc:
                raise state_failure(self.path, exc) from None

    # --- installs ----------------------------------------------------------------------------

    def get(self, crm: str) -> dict | None:
        with self._connect() as db:
            sealed = app.install(db, self.tenant, crm)
        return json.loads(self.sealer.open(sealed)) if sealed else None

    # --- tenants ------------------------------------------------------------------------------

    def tenant_of(self, crm: str, ref: str) -> str | None:
        """The tenant whose `crm` install is the portal or account `ref` (member_id, account id), if any."""
        if not ref:
            return None
        with self._connect() as db:
            return app.tenant_of(db, crm, ref, DEFAULT_TENANT)

    def claim_default(self, crm: str, ref: str, *, now: float | None = None) -> bool:
        """Whether the portal `ref` is (or now becomes) the one the tenant `default` is being installed for:
        the first install to arrive takes it, before any worker stored it, so a second portal's install
        arriving meanwhile is never taken for the default's. A claim whose install never came lapses."""
        now = time.time() if now is None else now
        with self._connect() as db:
            return app.claim_default(db, crm, ref, now, CLAIM_KEEP_SECONDS) == ref

    def release_default(self, crm: str, ref: str) -> None:
        """The auth server refused `ref`'s install: the default is free for the next one."""
        with self._connect() as db:
            app.release_default(db, crm, ref)

    def tenants(self) -> list[dict]:
        """Every install of every tenant: {tenant, crm, ref, updated_at}, no secret."""
        with self._connect() as db:
            rows = app.tenant_installs(db)
        return [{"tenant": t, "crm": c, "ref": r, "updated_at": u} for t, c, r, u in rows]

    def remove_tenant(self, tenant: str) -> int:
        """Every install of `tenant` gone (its tokens with them); how many."""
        with self._connect() as db:
            return app.remove_tenant(db, tenant)

    @contextmanager
    def locked(self, crm: str) -> Iterator[Slot]:
        """One writer across threads, processes and machines; committed on leaving, rolled back on error."""
        with self._connect() as db, db.tx(lock=f"install:{self.tenant}:{crm}"):
            sealed = app.install(db, self.tenant, crm)
            yield Slot(db, self.tenant, crm, json.loads(self.sealer.open(sealed)) if sealed else None, self.sealer)

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
            return app.first_seen(db, _sha(key), now, SEEN_KEEP_SECONDS)

    def forget_seen(self, key: str) -> None:
        """Undo `first_seen` when the delivery could not be queued (so a resend is not lost)."""
        with self._connect() as db:
            app.forget_seen(db, _sha(key))

    # --- OAuth state --------------------------------------------------------------------------

    def new_oauth_state(self, crm: str, ttl_seconds: float) -> str:
        state = secrets.token_urlsafe(32)
        now = time.time()
        with self._connect() as db:
            app.add_oauth_state(db, _sha(state), crm, now, ttl_seconds)
        return state

    def take_oauth_state(self, crm: str, state: str) -> bool:
        """Single use: a known, unexpired state is consumed and True; anything else False.
        Looked up by its hash, so no comparison of the secret itself can leak timing."""
        with self._connect() as db:
            return app.take_oauth_state(db, _sha(state), crm, time.time())

    # --- keys ---------------------------------------------------------------------------------

    def reseal(self) -> int:
        """Every install sealed with STATE_KEY's first key (key rotation); how many were sealed anew."""
        with self._connect() as db, db.tx(lock="installs"):
            rows = app.all_installs(db)
            for tenant, crm, data in rows:
                app.reseal_install(db, tenant, crm, self.sealer.reseal(data))
        return len(rows)
