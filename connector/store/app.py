"""Queries of the webhook app and the amoCRM token store: installs, deliveries seen, OAuth states, tokens.

Secrets arrive here already sealed (connector/sealing.py); only their hashes are compared.
"""

from __future__ import annotations

import time

from connector.store.engine import Db

# --- installs ---------------------------------------------------------------------------------


def install(db: Db, crm: str) -> str | None:
    row = db.execute("SELECT data FROM app_installs WHERE crm=?", (crm,)).fetchone()
    return row[0] if row else None


def save_install(db: Db, crm: str, sealed: str) -> None:
    db.execute("INSERT INTO app_installs VALUES (?, ?, ?) ON CONFLICT(crm) DO UPDATE SET data=excluded.data, "
               "updated_at=excluded.updated_at", (crm, sealed, time.time()))


def delete_install(db: Db, crm: str) -> None:
    db.execute("DELETE FROM app_installs WHERE crm=?", (crm,))


def installs(db: Db) -> list[tuple[str, str]]:
    return db.execute("SELECT crm, data FROM app_installs").fetchall()


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
