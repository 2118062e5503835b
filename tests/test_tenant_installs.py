"""The installs table by tenant: a state file from before tenants keeps its install as the default tenant's,
and one tenant's view of the table never shows another's install."""

from __future__ import annotations

import json
import sqlite3

from connector import sealing, tenant_settings, tenants
from connector.amocrm.oauth import TokenPair
from connector.amocrm.tokens import TokenStore
from connector.cli import main
from connector.installs import Installs
from connector.sealing import Sealer
from connector.settings import load_settings
from connector.state import State
from connector.store import engine
from tests.store_engines import fresh_schema, state_url


def test_a_state_file_from_before_tenants_keeps_its_install_as_the_default_tenants(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE app_installs (crm TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO app_installs VALUES ('bitrix', ?, 1.0)",
               (Sealer().seal(json.dumps({"member_id": "m-old", "access_token": "t"})),))
    db.commit()
    db.close()
    installs = Installs(path)
    assert installs.get("bitrix") == {"member_id": "m-old", "access_token": "t"}
    assert [(t["tenant"], t["ref"]) for t in installs.tenants()] == [("default", "m-old")]
    assert installs.tenant_of("bitrix", "m-old") == "default"
    assert Installs(path).get("bitrix")["member_id"] == "m-old"  # opened again: migrated once, nothing lost


def test_each_tenants_view_sees_its_own_install_only(state_target):
    installs = Installs(state_target)
    installs.for_tenant("b" * 32).put("bitrix", {"member_id": "b" * 32, "access_token": "tb"})
    installs.put("bitrix", {"member_id": "a" * 32, "access_token": "ta"})
    assert installs.get("bitrix")["access_token"] == "ta"
    assert installs.for_tenant("b" * 32).get("bitrix")["access_token"] == "tb"
    assert installs.for_tenant("c" * 32).get("bitrix") is None
    assert installs.tenant_of("bitrix", "b" * 32) == "b" * 32 and installs.tenant_of("bitrix", "a" * 32) == "default"
    assert installs.tenant_of("bitrix", "c" * 32) is None and installs.tenant_of("amocrm", "b" * 32) is None
    assert installs.remove_tenant("b" * 32) == 1 and installs.for_tenant("b" * 32).get("bitrix") is None
    assert installs.get("bitrix")["access_token"] == "ta"


def test_rotate_key_reseals_every_tenants_tokens_and_secret_settings(state_target, monkeypatch, tmp_path, capsys):
    """Tenant B's amoCRM tokens live in B's own state (file or schema), its install and its sealed settings in
    the registry: `state rotate-key` reseals all of them, so the old key can go."""
    old, new = sealing.new_key(), sealing.new_key()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STATE_URL", state_url(state_target))
    monkeypatch.setenv("STATE_KEY", old)
    settings = load_settings(CRM="amocrm")
    registry = tenants.registry(settings)
    registry.for_tenant("amo-b").put("amocrm", {"account_id": 22, "access_token": "b-install-secret"})
    tenant_settings.set_values(settings, registry, "amo-b", ["REFERRAL_SECRET=b-referral-secret-0123456789"])
    store = TokenStore(tenants.state_target(settings, "amo-b"), "22", Sealer(old))
    with store.locked():
        store.save(TokenPair("b-access", "b-refresh", 2e9))
    store.close()
    monkeypatch.setenv("STATE_KEY", f"{new},{old}")
    assert main(["state", "rotate-key"]) == 0
    out = capsys.readouterr().out
    assert "1 app install(s), 1 amoCRM token pair(s), 1 secret tenant setting(s)" in out
    monkeypatch.setenv("STATE_KEY", new)  # the old key dropped: everything still opens
    settings = load_settings(CRM="amocrm")
    store = TokenStore(tenants.state_target(settings, "amo-b"), "22", Sealer(new))
    try:
        assert store.load()[0].refresh_token == "b-refresh"
    finally:
        store.close()
    assert tenants.registry(settings).for_tenant("amo-b").get("amocrm")["access_token"] == "b-install-secret"
    own = tenants.settings_for(settings, "amo-b", "amocrm")
    assert own.REFERRAL_SECRET.get_secret_value() == "b-referral-secret-0123456789"


def test_installs_reuse_their_postgresql_connections_and_outlive_a_dropped_one(pg_url, monkeypatch):
    """A webhook request makes several short calls: on PostgreSQL they share one pooled connection, and one
    the server dropped while it sat idle (a restart, an idle timeout) is replaced, never handed out."""
    import psycopg

    state_target = fresh_schema(pg_url, "pool")  # PostgreSQL only: a SQLite connection is a file open, not pooled
    installs = Installs(state_target)
    installs.put("bitrix", {"member_id": "a" * 32, "access_token": "ta"})
    with installs._connect() as db:
        first = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    for _ in range(5):
        assert installs.get("bitrix")["access_token"] == "ta"
    with installs._connect() as db:
        assert db.execute("SELECT pg_backend_pid()").fetchone()[0] == first  # no new connection per call
    with psycopg.connect(state_target, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(?)".replace("?", "%s"), (first,))
    monkeypatch.setattr(engine, "POOL_PING_AFTER_SECONDS", 0.0)  # as if it sat idle for a while
    assert installs.get("bitrix")["access_token"] == "ta"
    with installs._connect() as db:
        assert db.execute("SELECT pg_backend_pid()").fetchone()[0] != first


def test_a_refused_installs_empty_schema_is_dropped_a_used_one_kept(pg_url, tmp_path):
    """A made-up member_id gets a TenantHost (and on PostgreSQL a schema) until the auth server answers; once
    refused, its empty schema goes - a tenant with an install or with data never loses its state here."""
    settings = load_settings(CRM="bitrix", STATE_URL=fresh_schema(pg_url, "refused"))
    made_up, real = "1" * 32, "2" * 32
    for tenant in (made_up, real):
        tenants.settings_for(settings, tenant, "bitrix")
    assert tenants.stored_tenants(settings) == [made_up, real]
    state = State(tenants.state_target(settings, real))
    state.finish_run(state.start_run("bitrix:b.example", "sync", False), {})
    state.close()
    assert tenants.drop_if_unused(settings, made_up) and not tenants.drop_if_unused(settings, real)
    assert tenants.stored_tenants(settings) == [real]
    tenants.registry(settings).for_tenant(made_up).put("bitrix", {"member_id": made_up, "access_token": "t"})
    tenants.settings_for(settings, made_up, "bitrix")  # installed after all: its schema is made again, and kept
    assert not tenants.drop_if_unused(settings, made_up) and tenants.stored_tenants(settings) == [made_up, real]
