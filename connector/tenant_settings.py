"""Each tenant's own settings: what may differ from one portal to the next, kept in the registry.

A hosted app serves portals in different time zones and languages, with different channels bound
(`BITRIX_SMS_ROBOT`), plans (request budgets) and schedules. `repeat-sales tenants set ID KEY=VALUE`
overrides one of those for one tenant; everything else is the `.env`'s. The app's own settings - its
CRM, its client secrets, STATE_URL, STATE_KEY, ADMIN_TOKEN, the address it answers on - are one for all
tenants and refused here by name. A value is validated by the same Settings model as the `.env` (so a bad
one is refused when set, with the field named), stored as text, and a secret one (FEEDBACK_SECRET,
REFERRAL_SECRET) sealed with STATE_KEY like the tokens.
"""

from __future__ import annotations

from pydantic import SecretStr, ValidationError

from connector.errors import SettingsError
from connector.installs import Installs
from connector.store import app

PER_TENANT = (
    "TIMEZONE", "PLAYBOOK", "PLAYBOOK_LANG", "CUSTOMER_KEY", "DRY_RUN",
    "SCHEDULE_EVERY_MINUTES", "EVENT_DEBOUNCE_SECONDS",
    "BITRIX_SMS_ROBOT", "BITRIX_FALLBACK_USER_ID", "BITRIX_GENDER_FIELD", "BITRIX_GENDER_VALUES",
    "BITRIX_REQUESTS_PER_SECOND", "BITRIX_REQUEST_POOL", "BITRIX_WRITE_BATCH",
    "AMOCRM_SALESBOTS", "AMOCRM_SALESBOT_ID", "AMOCRM_FALLBACK_USER_ID", "AMOCRM_GENDER_FIELD",
    "AMOCRM_GENDER_VALUES", "AMOCRM_REQUESTS_PER_SECOND", "AMOCRM_WRITE_BATCH",
    "FEEDBACK_SECRET", "REFERRAL_SECRET",
)
HIDDEN = "***"


def check_name(settings, name: str) -> str:
    """`name` if a tenant may override it; else a SettingsError saying why (the app's own, or unknown)."""
    name = name.strip()
    if name in PER_TENANT:
        return name
    if name in type(settings).model_fields:
        raise SettingsError(name, "is the app's own setting, one for every tenant, and cannot differ per tenant",
                            hint="set it in the .env; a tenant may override: " + ", ".join(PER_TENANT))
    raise SettingsError(name, "is not a setting", hint="a tenant may override: " + ", ".join(PER_TENANT))


def is_secret(settings, name: str) -> bool:
    return SecretStr in getattr(type(settings).model_fields[name].annotation, "__args__", ())


def validated(settings, name: str, text: str):
    """`text` as the Settings model reads `name` (a bad value: SettingsError naming it, with the fix)."""
    copy = settings.model_copy()
    try:
        type(settings).__pydantic_validator__.validate_assignment(copy, name, text)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        expected = (first.get("ctx") or {}).get("expected")
        raise SettingsError(name, f"{msg}" + (f" ({expected})" if expected else ""),
                            hint=f"give a valid value: repeat-sales tenants set ID {name}=VALUE "
                                 "(see settings.example.env)") from None
    return getattr(copy, name)


def overrides(installs: Installs, tenant: str) -> dict[str, str]:
    """The tenant's overrides as stored text, a secret one opened."""
    with installs._connect() as db:
        rows = app.tenant_settings(db, tenant)
    return {name: installs.sealer.open(value) if sealed else value for name, value, sealed in rows}


def stamps(installs: Installs) -> dict[str, tuple[int, float]]:
    """What changes whenever a tenant's overrides change, per tenant: one cheap query, for a running `serve`
    to notice which tenants' settings to read again."""
    with installs._connect() as db:
        return app.settings_stamps(db)


def shown(settings, installs: Installs, tenant: str) -> dict[str, str]:
    """The overrides as `tenants show` prints them: a secret one as ***."""
    return {name: HIDDEN if is_secret(settings, name) else value
            for name, value in overrides(installs, tenant).items()}


def apply(settings, installs: Installs, tenant: str):
    """`settings` with the tenant's overrides in force (each validated again: the model may have grown)."""
    found = overrides(installs, tenant)
    if not found:
        return settings
    update = {}
    for name, text in found.items():
        if name in PER_TENANT:
            update[name] = validated(settings, name, text)
    return settings.model_copy(update=update)


def set_values(settings, installs: Installs, tenant: str, pairs: list[str]) -> dict[str, str]:
    """Validate every KEY=VALUE first (nothing is stored if one is bad), then store them all."""
    checked = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise SettingsError(pair.split("=")[0] or "KEY", "is not KEY=VALUE",
                                hint="write it as KEY=VALUE, e.g. TIMEZONE=Europe/Moscow")
        name = check_name(settings, name)
        validated(settings, name, text.strip())
        checked[name] = text.strip()
    with installs._connect() as db, db.tx(lock=f"tenant-settings:{tenant}"):
        for name, text in checked.items():
            secret = is_secret(settings, name)
            app.set_tenant_setting(db, tenant, name, installs.sealer.seal(text) if secret else text, secret)
    return {name: HIDDEN if is_secret(settings, name) else text for name, text in checked.items()}


def unset(settings, installs: Installs, tenant: str, name: str) -> bool:
    name = check_name(settings, name)
    with installs._connect() as db:
        return app.unset_tenant_setting(db, tenant, name) > 0


def reseal(installs: Installs) -> int:
    """Every sealed override sealed with STATE_KEY's first key (`state rotate-key`); how many."""
    with installs._connect() as db, db.tx(lock="tenant-settings"):
        rows = app.sealed_tenant_settings(db)
        for tenant, name, value in rows:
            app.reseal_tenant_setting(db, tenant, name, installs.sealer.reseal(value))
    return len(rows)
