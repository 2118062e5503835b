"""Queries of the webhook app and the amoCRM token store: installs, deliveries seen, OAuth states, tokens.

Secrets arrive here already sealed (connector/sealing.py); only their hashes are compared.
"""

from __future__ import annotations

import time

from connector.store.engine import Db

# --- installs (one per tenant and CRM; `ref` names the portal or account in the clear) ------------


def install(db: Db, tenant: str, crm: str) -> str | None:
    row = db.execute("SELECT data FROM tenant_installs WHERE tenant=? AND crm=?", (tenant, crm)).fetchone()
    return row[0] if row else None


def save_install(db: Db, tenant: str, crm: str, ref: str, sealed: str) -> None:
    db.execute("INSERT INTO tenant_installs VALUES (?, ?, ?, ?, ?) ON CONFLICT(tenant, crm) DO UPDATE SET "
               "ref=excluded.ref, data=excluded.data, updated_at=excluded.updated_at",
               (tenant, crm, ref, sealed, time.time()))


def delete_install(db: Db, tenant: str, crm: str) -> None:
    db.execute("DELETE FROM tenant_installs WHERE tenant=? AND crm=?", (tenant, crm))


def tenant_of(db: Db, crm: str, ref: str, default: str) -> str | None:
    """The tenant whose `crm` install is `ref` (the default tenant first when several are)."""
    row = db.execute("SELECT tenant FROM tenant_installs WHERE crm=? AND ref=? ORDER BY tenant=? DESC",
                     (crm, ref, default)).fetchone()
    return row[0] if row else None


def tenant_installs(db: Db) -> list[tuple[str, str, str, float]]:
    """(tenant, crm, ref, updated at) of every install, no secret."""
    return db.execute(f"SELECT tenant, crm, ref, updated_at FROM tenant_installs ORDER BY {db.by('tenant')}, "
                      f"{db.by('crm')}").fetchall()


def remove_tenant(db: Db, tenant: str) -> int:
    db.execute("DELETE FROM tenant_settings WHERE tenant=?", (tenant,))
    return db.execute("DELETE FROM tenant_installs WHERE tenant=?", (tenant,)).rowcount


def claim_default(db: Db, crm: str, ref: str, now: float, keep_seconds: float) -> str:
    """Claim the default tenant's `crm` install for `ref` unless another claimed it lately; who holds it."""
    db.execute("DELETE FROM tenant_claims WHERE crm=? AND claimed_at < ?", (crm, now - keep_seconds))
    db.execute("INSERT INTO tenant_claims VALUES (?, ?, ?) ON CONFLICT(crm) DO NOTHING", (crm, ref, now))
    return db.execute("SELECT ref FROM tenant_claims WHERE crm=?", (crm,)).fetchone()[0]


def release_default(db: Db, crm: str, ref: str) -> None:
    db.execute("DELETE FROM tenant_claims WHERE crm=? AND ref=?", (crm, ref))


# --- a tenant's settings overrides (a secret one sealed) -----------------------------------------

def tenant_settings(db: Db, tenant: str) -> list[tuple[str, str, bool]]:
    """(name, value, sealed) of the tenant's overrides, by name."""
    rows = db.execute(f"SELECT name, value, sealed FROM tenant_settings WHERE tenant=? ORDER BY {db.by('name')}",
                      (tenant,)).fetchall()
    return [(n, v, bool(s)) for n, v, s in rows]


def set_tenant_setting(db: Db, tenant: str, name: str, value: str, sealed: bool) -> None:
    db.execute("INSERT INTO tenant_settings VALUES (?, ?, ?, ?, ?) ON CONFLICT(tenant, name) DO UPDATE SET "
               "value=excluded.value, sealed=excluded.sealed, updated_at=excluded.updated_at",
               (tenant, name, value, int(sealed), time.time()))


def unset_tenant_setting(db: Db, tenant: str, name: str) -> int:
    return db.execute("DELETE FROM tenant_settings WHERE tenant=? AND name=?", (tenant, name)).rowcount


def settings_stamps(db: Db) -> dict[str, tuple[int, float]]:
    """Each tenant with overrides -> (how many, when the newest was set): changes with every `tenants set`,
    `unset` or `remove` of that tenant."""
    rows = db.execute("SELECT tenant, COUNT(*), MAX(updated_at) FROM tenant_settings GROUP BY tenant").fetchall()
    return {tenant: (int(count), float(newest or 0)) for tenant, count, newest in rows}


def sealed_tenant_settings(db: Db) -> list[tuple[str, str, str]]:
    return db.execute("SELECT tenant, name, value FROM tenant_settings WHERE sealed=1").fetchall()


def reseal_tenant_setting(db: Db, tenant: str, name: str, sealed: str) -> None:
    db.execute("UPDATE tenant_settings SET value=? WHERE tenant=? AND name=?", (sealed, tenant, name))


def unnamed_installs(db: Db) -> list[tuple[str, str, str]]:
    """(tenant, crm, sealed data) of installs migrated from before tenants, whose `ref` is not known yet."""
    return db.execute("SELECT tenant, crm, data FROM tenant_installs WHERE ref=''").fetchall()


def name_install(db: Db, tenant: str, crm: str, ref: str) -> None:
    db.execute("UPDATE tenant_installs SET ref=? WHERE tenant=? AND crm=?", (ref, tenant, crm))


def all_installs(db: Db) -> list[tuple[str, str, str]]:
    return db.execute("SELECT tenant, crm, data FROM tenant_installs").fetchall()


def reseal_install(db: Db, tenant: str, crm: str, sealed: str) -> None:
    db.execute("UPDATE tenant_installs SET data=? WHERE tenant=? AND crm=?", (sealed, tenant, crm))


# --- deliveries and OAuth states ---------------------------------------------------------------

def first_seen(db: Db, key_sha: str, now: float, keep_seconds: float) -> bool:
    db.execute("DELETE FROM app_seen WHERE seen_at < ?", (now - keep_seconds,))
    cur = db.execute("INSERT INTO app_seen VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key_sha, now))
    return cur.rowcount == 1


def forget_seen(db: Db, key_sha: str) -> None:
    db.execute("DELETE FROM app_seen WHERE key=?", (key_sha,))


def add_oauth_state(db: Db, state_sha: str, crm: str, now: float, ttl_seconds: float) -> None:
    db.execute("DELETE FROM app_oauth_states WHERE expires_at < ?", (now,))
    db.execute("INSERT INTO app_oauth_states VALUES (?, ?, ?)", (state_sha, crm, now + ttl_seconds))


def take_oauth_state(db: Db, state_sha: str, crm: str, now: float) -> bool:
    cur = db.execute("DELETE FROM app_oauth_states WHERE state_sha=? AND crm=? AND expires_at >= ?",
                     (state_sha, crm, now))
    return cur.rowcount == 1


# --- amoCRM tokens ----------------------------------------------------------------------------

def tokens(db: Db, account: str) -> tuple[str, str, float, str | None] | None:
    """(sealed access token, sealed refresh token, expires at, auth code hash)."""
    row = db.execute("SELECT access_token, refresh_token, expires_at, auth_code_sha FROM amocrm_tokens "
                     "WHERE account=?", (account,)).fetchone()
    return tuple(row) if row else None


def save_tokens(db: Db, account: str, access: str, refresh: str, expires_at: float,
                auth_code_sha: str | None) -> None:
    db.execute(
        "INSERT INTO amocrm_tokens VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT(account) DO UPDATE SET "
        "access_token=excluded.access_token, refresh_token=excluded.refresh_token, "
        "expires_at=excluded.expires_at, auth_code_sha=COALESCE(excluded.auth_code_sha, amocrm_tokens.auth_code_sha), "
        "rotated_at=excluded.rotated_at, generation=amocrm_tokens.generation+1",
        (account, access, refresh, expires_at, auth_code_sha, time.time()))


def token_generation(db: Db, account: str) -> int:
    row = db.execute("SELECT generation FROM amocrm_tokens WHERE account=?", (account,)).fetchone()
    return int(row[0]) if row else 0


def all_tokens(db: Db) -> list[tuple[str, str, str]]:
    return db.execute("SELECT account, access_token, refresh_token FROM amocrm_tokens").fetchall()


def reseal_tokens(db: Db, account: str, access: str, refresh: str) -> None:
    db.execute("UPDATE amocrm_tokens SET access_token=?, refresh_token=? WHERE account=?", (access, refresh, account))
