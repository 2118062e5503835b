"""Tenants: every portal or account the app serves is one, with its own tokens, state and playbook.

An amoCRM account connected through the OAuth redirect (other than the `.env`'s own) is a tenant too,
`amo-<its host>`, at its own address.

`default` is the `.env`'s portal - the single-portal mode, its state the file STATE_URL names, exactly as
before tenants. Every other tenant is a Bitrix24 portal that installed the app (its id is the portal's
member_id, Doc: settings/oauth/index.md "member_id - the portal's unique id, kept when its address
changes"): its tokens sit in the installs table under its id, and everything else - cursor, snapshot,
ledger, runs, card values, saved playbook versions - in a state file of its own next to the default one,
so no query of one tenant can ever reach another's rows. The settings of a tenant are the `.env`'s with
its own state and none of the default portal's credentials (its webhook).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from connector.errors import InputError
from connector.installs import DEFAULT_TENANT, Installs

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


def settings_for(settings, tenant: str, crm: str | None = None, base_url: str | None = None):
    """The settings a tenant runs with: the `.env`'s, its own state, never the default portal's credentials
    (its webhook, its long-lived token or code); an amoCRM account's address is its own (`base_url`, else
    what its install stored)."""
    if tenant == DEFAULT:
        return settings
    path = state_path(settings, tenant)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    update = {"STATE_URL": f"sqlite:///{path}", "BITRIX_WEBHOOK_URL": None, "AMOCRM_ACCESS_TOKEN": None,
              "AMOCRM_AUTH_CODE": None}
    if crm:
        update["CRM"] = crm
    if crm == "amocrm":
        stored = registry(settings).for_tenant(tenant).get("amocrm") or {}
        update["AMOCRM_BASE_URL"] = base_url or stored.get("base_url") or None
    return settings.model_copy(update=update)


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
    """Delete a tenant's tokens and its state file; what was deleted (for the message)."""
    if tenant == DEFAULT:
        raise InputError("the tenant default is the .env's portal and is not removed",
                         hint="uninstall the app in that portal, or point STATE_URL at a new file")
    find(settings, tenant)
    gone = []
    if registry(settings).remove_tenant(tenant):
        gone.append("tokens")
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
