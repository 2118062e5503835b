"""Tenants: every portal or account the app serves is one, with its own tokens, state and playbook.

An amoCRM account connected through the OAuth redirect (other than the `.env`'s own) is a tenant too,
`amo-<its host>`, at its own address.

`default` is the `.env`'s portal - the single-portal mode, its state the file STATE_URL names, exactly as
before tenants. Every other tenant is a Bitrix24 portal that installed the app (its id is the portal's
member_id, Doc: settings/oauth/index.md "member_id - the portal's unique id, kept when its address
changes"): its tokens sit in the installs table under its id, and everything else - cursor, snapshot,
ledger, runs, card values, saved playbook versions - in a state of its own, so no query of one tenant can
ever reach another's rows: on SQLite a file next to the default one (`<state>.tenants/<id>.db`), on
PostgreSQL a schema of its own in the same database (created on first use, migrated like any state, and
chosen by the search_path of that tenant's connections; its name is always quoted as an identifier).
The settings of a tenant are the `.env`'s with its own state, its own overrides (`tenants set`,
connector/tenant_settings.py) and none of the default portal's credentials (its webhook).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from connector.errors import InputError
from connector.installs import DEFAULT_TENANT, Installs
from connector.store import engine

DEFAULT = DEFAULT_TENANT
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a member_id is 32 hex digits; the id names a file


def valid_id(tenant: str) -> bool:
    return bool(_ID.match(tenant or ""))


def check_id(tenant: str) -> str:
    if not valid_id(tenant):
        raise InputError(f"--tenant {tenant!r} is not a tenant id",
                         hint="use an id `repeat-sales tenants list` shows (letters, digits, - and _)")
    return tenant


def state_path(settings, tenant: str) -> Path:
    """Where the tenant's state lives: the default's is STATE_URL's file, the others' beside it."""
    base = settings.state_path
    if tenant == DEFAULT:
        return base
    return base.parent / f"{base.name}.tenants" / f"{check_id(tenant)}.db"


def state_target(settings, tenant: str) -> Path | str:
    """What opens the tenant's state: its SQLite file, or on PostgreSQL a URL whose search_path is its schema
    (the schema is created here on first use; the tables by the migrations when the state opens)."""
    if tenant == DEFAULT:
        return settings.state_target
    if not engine.is_postgres(settings.STATE_URL):
        return state_path(settings, tenant)
    schema = schema_name(settings.STATE_URL, tenant)
    _create_schema(settings.STATE_URL, schema, tenant)
    return with_search_path(settings.STATE_URL, schema)


def state_exists(settings, tenant: str) -> bool:
    if tenant == DEFAULT or not engine.is_postgres(settings.STATE_URL):
        return engine.exists(settings.state_target if tenant == DEFAULT else state_path(settings, tenant))
    return schema_name(settings.STATE_URL, tenant) in _schemas(settings.STATE_URL)


def where(settings, tenant: str) -> str:
    """The tenant's state as it may be shown (a file, or `schema <name>`; never a password)."""
    if tenant != DEFAULT and engine.is_postgres(settings.STATE_URL):
        return f"schema {schema_name(settings.STATE_URL, tenant)} in {engine.redact_url(settings.STATE_URL)}"
    target = state_target(settings, tenant)
    return engine.redact_url(target) if isinstance(target, str) else str(target)


# --- PostgreSQL: a schema per tenant ---------------------------------------------------------------

SCHEMA_PREFIX = "rs_tenant_"  # the default state's own schema (public) holds the registry
_SCHEMA_MAX = 63  # PostgreSQL cuts longer identifiers: a long id is shortened with its hash instead
_made: set[tuple[str, str]] = set()
_made_lock = threading.Lock()


def base_schema(url: str) -> str:
    """The schema the default state's URL selects (`options=-csearch_path=...`), else public."""
    options = dict(parse_qsl(urlsplit(url).query)).get("options", "")
    for part in options.replace("-c ", "-c").split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0].strip().strip('"') or "public"
    return "public"


def schema_name(url: str, tenant: str) -> str:
    """The tenant's schema: `rs_tenant_<id>` (or `<base schema>_tenant_<id>` when STATE_URL picks a schema);
    too long or an odd base name: shortened, with the id's hash keeping it unique."""
    check_id(tenant)
    base = base_schema(url)
    prefix = SCHEMA_PREFIX if base == "public" else f"{base}_tenant_"
    name = prefix + tenant
    if len(name) > _SCHEMA_MAX or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        digest = hashlib.sha256(tenant.encode()).hexdigest()[:16]
        name = re.sub(r"[^A-Za-z0-9_]", "_", prefix)[:30] + "h" + digest + "_" + tenant[:12]
    return name


def with_search_path(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` (quoted; its other options kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "options"]
    options = " ".join(p for p in dict(query).get("options", "").replace("-c ", "-c").split()
                       if not p.startswith("-csearch_path="))
    kept.append(("options", f'{options} -csearch_path="{schema}"'.strip()))
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _admin_db(url: str):
    return engine.connect(url, timeout=30)


def _create_schema(url: str, schema: str, tenant: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS and its migrations, once per process and schema while it stays; its comment
    names the tenant (`stored_tenants`). `tenants remove` in another process drops it: the next use here
    finds it gone (one catalog lookup) and makes it again - the portal installing again gets a new state."""
    import psycopg
    from psycopg import sql

    from connector.store import migrations

    key = (url, schema)
    with _made_lock:
        if key in _made and _schema_there(url, schema):
            return
        db = _admin_db(url)
        try:
            db.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            db.conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(schema), sql.Literal(f"repeat-sales tenant {tenant}")))
        except psycopg.Error as exc:  # one line, without the password
            raise engine.pg_failure(db.where, exc, db._secrets) from None
        finally:
            db.close()
        db = engine.connect(with_search_path(url, schema), timeout=30)
        try:
            migrations.prepare(db)
        finally:
            db.close()
        _made.add(key)


def _schema_there(url: str, schema: str) -> bool:
    with engine.pooled(url, timeout=30) as db:
        return db.execute("SELECT 1 FROM pg_namespace WHERE nspname=?", (schema,)).fetchone() is not None


def _schemas(url: str) -> dict[str, str]:
    """Every tenant schema of this database: its name -> the tenant id its comment names."""
    db = _admin_db(url)
    try:
        rows = db.execute("SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                          "WHERE obj_description(oid, 'pg_namespace') LIKE 'repeat-sales tenant %'").fetchall()
    finally:
        db.close()
    found = {}
    for name, comment in rows:
        tenant = comment.removeprefix("repeat-sales tenant ")
        if valid_id(tenant) and schema_name(url, tenant) == name:  # this STATE_URL's tenants only
            found[name] = tenant
    return found


def _drop_schema(url: str, tenant: str) -> bool:
    from psycopg import sql

    schema = schema_name(url, tenant)
    if schema not in _schemas(url):
        return False
    db = _admin_db(url)
    try:
        db.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    finally:
        db.close()
    with _made_lock:
        _made.discard((url, schema))
    return True


def drop_if_unused(settings, tenant: str) -> bool:
    """PostgreSQL: drop the schema made for an install the auth server then refused - only while the tenant
    has no install and its state holds no run and no customer (nothing anyone could miss)."""
    if tenant == DEFAULT or not engine.is_postgres(settings.STATE_URL) or not state_exists(settings, tenant):
        return False
    if any(row["tenant"] == tenant for row in registry(settings).tenants()):
        return False
    db = engine.connect(with_search_path(settings.STATE_URL, schema_name(settings.STATE_URL, tenant)), timeout=30)
    try:
        used = db.execute("SELECT EXISTS (SELECT 1 FROM runs) OR EXISTS (SELECT 1 FROM customers)").fetchone()[0]
    finally:
        db.close()
    return False if used else _drop_schema(settings.STATE_URL, tenant)


def stored_tenants(settings) -> list[str]:
    """Tenants with a state of their own (a file or a schema), installed or not."""
    if engine.is_postgres(settings.STATE_URL):
        return sorted(_schemas(settings.STATE_URL).values())
    folder = settings.state_path.parent / f"{settings.state_path.name}.tenants"
    return sorted(p.stem for p in folder.glob("*.db") if valid_id(p.stem)) if folder.is_dir() else []


def settings_for(settings, tenant: str, crm: str | None = None, base_url: str | None = None):
    """The settings a tenant runs with: the `.env`'s, its own state, never the default portal's credentials
    (its webhook, its long-lived token or code); an amoCRM account's address is its own (`base_url`, else
    what its install stored)."""
    if tenant == DEFAULT:
        return settings
    target = state_target(settings, tenant)
    if isinstance(target, Path):
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = f"sqlite:///{target}"
    update = {"STATE_URL": target, "BITRIX_WEBHOOK_URL": None, "AMOCRM_ACCESS_TOKEN": None,
              "AMOCRM_AUTH_CODE": None}
    if crm:
        update["CRM"] = crm
    installs = registry(settings)
    if crm == "amocrm":
        stored = installs.for_tenant(tenant).get("amocrm") or {}
        update["AMOCRM_BASE_URL"] = base_url or stored.get("base_url") or None
    from connector import tenant_settings

    return tenant_settings.apply(settings.model_copy(update=update), installs, tenant)


def amocrm_id(host: str) -> str:
    """An amoCRM account's tenant id, from its address (known before its first grant; `ref` is its id)."""
    return "amo-" + re.sub(r"[^A-Za-z0-9-]", "_", host.lower())[:60]


def registry(settings) -> Installs:
    """The installs of every tenant (in the default state file), bound to the default tenant."""
    return Installs(settings.state_target, settings.sealer())


@dataclass(frozen=True)
class Tenant:
    id: str
    crm: str
    ref: str  # member_id / account id ("" for a default without an app install)
    portal: str  # the portal's or account's address, as its install says
    installed_at: float | None


def known(settings, installs: Installs | None = None) -> list[Tenant]:
    """Every tenant: the default first (when the `.env` names a portal or one installed the app as the
    default), then the installed portals by id."""
    installs = installs or registry(settings)
    rows = installs.tenants()
    found: dict[str, Tenant] = {}
    for row in rows:
        if row["tenant"] in found and row["crm"] != settings.CRM:
            continue  # the default tenant's own CRM is the one shown
        data = installs.for_tenant(row["tenant"]).get(row["crm"]) or {}
        found[row["tenant"]] = Tenant(row["tenant"], row["crm"], row["ref"], _portal(data),
                                      data.get("installed_at"))
    if DEFAULT not in found and _env_portal(settings):  # the `.env` names a portal (its webhook, its account)
        found[DEFAULT] = Tenant(DEFAULT, settings.CRM, "", _env_portal(settings), None)
    return sorted(found.values(), key=lambda t: (t.id != DEFAULT, t.id))


def find(settings, tenant: str, installs: Installs | None = None) -> Tenant:
    for t in known(settings, installs):
        if t.id == tenant:
            return t
    raise InputError(f"no tenant {tenant!r}", hint="`repeat-sales tenants list` shows the tenants")


def forget(settings, tenant: str) -> list[str]:
    """Delete a tenant's tokens and its state (file or schema); what was deleted (for the message)."""
    if tenant == DEFAULT:
        raise InputError("the tenant default is the .env's portal and is not removed",
                         hint="uninstall the app in that portal, or point STATE_URL at a new file")
    find(settings, tenant)
    gone = []
    if registry(settings).remove_tenant(tenant):
        gone.append("tokens")
    if engine.is_postgres(settings.STATE_URL):
        if _drop_schema(settings.STATE_URL, tenant):
            gone.append(f"state schema {schema_name(settings.STATE_URL, tenant)}")
        return gone
    path = state_path(settings, tenant)
    for extra in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + extra)
        if part.exists():
            part.unlink()
            if not extra:
                gone.append(f"state {path}")
    return gone


def _portal(data: dict) -> str:
    """The portal's or account's address: Bitrix24's domain, amoCRM's host (its subdomain before addresses)."""
    from urllib.parse import urlsplit

    return str(data.get("domain") or urlsplit(str(data.get("base_url") or "")).netloc or data.get("subdomain") or "")


def _env_portal(settings) -> str:
    """The address of the portal or account the `.env` connects to directly, "" when it names none."""
    from urllib.parse import urlsplit

    name = {"bitrix": "BITRIX_WEBHOOK_URL", "amocrm": "AMOCRM_BASE_URL"}.get(settings.CRM, "")
    value = getattr(settings, name, None)
    if value is None:
        return ""
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return urlsplit(text).netloc
