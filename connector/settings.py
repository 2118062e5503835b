"""Settings from the environment and `.env`, validated once; a bad value names its variable.

Secrets (webhook URL, client secrets, tokens) are SecretStr so they never print by accident.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector import gender, registry, sealing
from connector.errors import SettingsError


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def name_ids(text: str | None) -> dict[str, int]:
    """`rs_feedback=101, rs_content=102` -> {"rs_feedback": 101, ...}; a bad pair raises ValueError."""
    out: dict[str, int] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        name, sep, number = pair.partition("=")
        if not sep or not name.strip() or not number.strip().isdigit():
            raise ValueError(f"expected name=id pairs separated by commas, got {pair.strip()!r}")
        out[name.strip()] = int(number.strip())
    return out


def parse_hours(text: str) -> tuple[int, int]:
    """`22-07` -> (22, 7): the hours from the first (inclusive) to the second (exclusive); may wrap midnight."""
    start, sep, end = text.strip().partition("-")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        raise ValueError(f"expected hours like 22-07 (from 22:00 to 07:00), got {text.strip()!r}")
    first, last = int(start), int(end)
    if not (0 <= first <= 23 and 0 <= last <= 24) or first == last % 24:
        raise ValueError(f"hours run 0-23 and the two must differ, got {text.strip()!r}")
    return first, last % 24


class Settings(BaseSettings):
    """Every setting the plugin reads; `settings.example.env` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=True)

    CRM: str = registry.DEFAULT  # one of the registry's names
    BITRIX_WEBHOOK_URL: SecretStr | None = None
    BITRIX_APP_CLIENT_ID: str | None = None
    BITRIX_APP_CLIENT_SECRET: SecretStr | None = None
    BITRIX_REQUESTS_PER_SECOND: float = Field(2.0, gt=0, le=50)
    BITRIX_REQUEST_POOL: int = Field(50, ge=1, le=250)
    BITRIX_WRITE_BATCH: int = Field(50, ge=1, le=50)
    BITRIX_FALLBACK_USER_ID: int | None = Field(None, ge=1)
    BITRIX_OAUTH_URL: str | None = "https://oauth.bitrix.info"
    BITRIX_GENDER_FIELD: str = "HONORIFIC"  # or a contact user field UF_CRM_...
    BITRIX_GENDER_VALUES: str | None = None  # 71=M,72=F: the field's raw values -> M / F
    BITRIX_SMS_ROBOT: bool = False  # the admin bound the robot "Send SMS" to the repeat-sales trigger
    AMOCRM_BASE_URL: str | None = None
    AMOCRM_ACCESS_TOKEN: SecretStr | None = None
    AMOCRM_CLIENT_ID: str | None = None
    AMOCRM_CLIENT_SECRET: SecretStr | None = None
    AMOCRM_REDIRECT_URI: str | None = None
    AMOCRM_AUTH_CODE: SecretStr | None = None
    AMOCRM_REQUESTS_PER_SECOND: float = Field(7.0, gt=0, le=7)
    AMOCRM_WRITE_BATCH: int = Field(50, ge=1, le=250)
    AMOCRM_FALLBACK_USER_ID: int | None = Field(None, ge=1)
    AMOCRM_SALESBOTS: str | None = None  # rs_feedback=101,rs_content=102: playbook template -> Salesbot id
    AMOCRM_SALESBOT_ID: int | None = Field(None, ge=1)  # the generic bot that sends RS_MESSAGE into the chat
    AMOCRM_GENDER_FIELD: str | None = None  # the contact custom field with gender: its code, id or name
    AMOCRM_GENDER_VALUES: str | None = None  # Мужской=M,Женский=F or enum ids: values -> M / F
    STATE_URL: str = "sqlite:///./repeat-sales.db"
    STATE_KEY: SecretStr | None = None  # Fernet key(s), comma-separated, first seals: tokens sealed at rest
    PLAYBOOK: str | None = None
    PLAYBOOK_LANG: Literal["ru", "en"] = "ru"
    CUSTOMER_KEY: Literal["contact", "company"] = "contact"
    TIMEZONE: str | None = None
    DRY_RUN: bool = False
    SYNC_PROCESSES: int = Field(1, ge=1, le=2)  # 2: a big plan (20,000+ due customers) and model made by two processes
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    APP_PUBLIC_URL: str | None = None
    ADMIN_TOKEN: SecretStr | None = None
    FEEDBACK_SECRET: SecretStr | None = None  # the <secret> of POST /feedback/<secret> (answers 0-10)
    REFERRAL_SECRET: SecretStr | None = None  # keys the customers' referral codes; never change it once given out
    SCHEDULE_EVERY_MINUTES: float = Field(60.0, gt=0, le=7 * 24 * 60)
    EVENT_DEBOUNCE_SECONDS: float = Field(1.0, ge=0, le=60)
    SCHEDULE_QUIET_HOURS: str | None = None  # 22-07: no scheduled run starts then (TIMEZONE's clock)
    QUEUE_URL: SecretStr | None = None  # redis://host:port/db: jobs go to `repeat-sales worker` processes
    QUEUE_REDELIVER_SECONDS: float = Field(600.0, ge=2, le=86400)  # a job unfinished this long runs again

    @field_validator("CRM")
    @classmethod
    def _crm(cls, value: str) -> str:
        if value not in registry.NAMES:
            expected = " or ".join(repr(name) for name in registry.NAMES)
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @field_validator("BITRIX_WEBHOOK_URL")
    @classmethod
    def _webhook_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = urlparse(value.get_secret_value().strip())
        parts = [p for p in url.path.split("/") if p]
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError("must be an http(s) URL like https://x.bitrix24.ru/rest/1/abc/")
        if url.scheme == "http" and not is_loopback(url.hostname):
            raise ValueError("a real portal needs https:// (plain http is only for a local emulator)")
        if len(parts) < 3 or parts[-3] != "rest" or not parts[-2].isdigit():
            raise ValueError("must end with /rest/<user id>/<webhook code>/, as Bitrix24 shows it")
        return SecretStr(value.get_secret_value().strip().rstrip("/") + "/")

    @field_validator("APP_PUBLIC_URL", "BITRIX_OAUTH_URL")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = urlparse(value.strip())
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError("must be an http(s) address without query, like https://rs.example.com")
        if url.scheme == "http" and not is_loopback(url.hostname):
            raise ValueError("needs https:// (plain http is only for 127.0.0.1)")
        return value.strip().rstrip("/")

    @field_validator("ADMIN_TOKEN", "FEEDBACK_SECRET", "REFERRAL_SECRET")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("AMOCRM_SALESBOTS")
    @classmethod
    def _salesbots(cls, value: str | None) -> str | None:
        name_ids(value)  # a bad pair is named in the ValueError
        return value or None

    def salesbots(self) -> dict[str, int]:
        return name_ids(self.AMOCRM_SALESBOTS)

    @field_validator("BITRIX_GENDER_FIELD")
    @classmethod
    def _bitrix_gender_field(cls, value: str) -> str:
        name = (value or "").strip().upper() or "HONORIFIC"
        if name != "HONORIFIC" and not re.fullmatch(r"UF_CRM_[A-Z0-9_]+", name):
            raise ValueError("must be HONORIFIC or a contact user field like UF_CRM_1700000000 "
                             "(CRM settings -> fields of the contact)")
        return name

    @field_validator("AMOCRM_GENDER_FIELD")
    @classmethod
    def _amocrm_gender_field(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name the contact field with gender: its code, id or name (or be unset)")
        return value.strip() if value else None

    @field_validator("BITRIX_GENDER_VALUES", "AMOCRM_GENDER_VALUES")
    @classmethod
    def _gender_values(cls, value: str | None) -> str | None:
        gender.parse_values(value)  # a bad pair is named in the ValueError
        return value or None

    def gender_values(self, name: str) -> dict[str, str]:
        """BITRIX_GENDER_VALUES / AMOCRM_GENDER_VALUES as raw value -> "M" | "F"."""
        return gender.parse_values(getattr(self, name))

    @field_validator("QUEUE_URL")
    @classmethod
    def _queue_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = urlparse(value.get_secret_value().strip())
        if url.scheme not in ("redis", "rediss") or not url.hostname:
            raise ValueError("must be a Redis address like redis://127.0.0.1:6379/0 (rediss:// for TLS)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("SCHEDULE_QUIET_HOURS")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_hours(value)  # a bad range is named in the ValueError
        return value.strip()

    def quiet_hours(self) -> tuple[int, int] | None:
        return parse_hours(self.SCHEDULE_QUIET_HOURS) if self.SCHEDULE_QUIET_HOURS else None

    @field_validator("STATE_URL")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://")):  # the value may hold a password: never echoed
            raise ValueError("must be sqlite:///PATH (e.g. sqlite:///./repeat-sales.db) or "
                             "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return value

    @field_validator("STATE_KEY")
    @classmethod
    def _state_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                sealing.parse_keys(value.get_secret_value())
            except SettingsError as exc:  # pydantic names the variable; the key itself is never echoed
                raise ValueError(exc.message.removeprefix("STATE_KEY: ") + "; " + exc.hint) from None
        return value

    def sealer(self) -> sealing.Sealer:
        return sealing.Sealer(self.STATE_KEY.get_secret_value() if self.STATE_KEY else None)

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError("must be an IANA zone name such as Europe/Moscow") from exc
        return value or None

    @field_validator("PLAYBOOK")
    @classmethod
    def _playbook(cls, value: str | None) -> str | None:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value or None

    @property
    def state_path(self) -> Path:
        """The SQLite file (only meaningful when STATE_URL is sqlite:///; see `state_target`)."""
        return Path(self.STATE_URL.removeprefix("sqlite:///"))

    @property
    def state_target(self) -> Path | str:
        """What State, Installs and TokenStore open: the SQLite file's path, or the postgresql:// URL."""
        return self.STATE_URL if self.STATE_URL.startswith("postgresql://") else self.state_path

    def require(self, *names: str) -> None:
        """Fail with the variable's name when a setting the chosen CRM needs is missing."""
        for name in names:
            if getattr(self, name) is None:
                raise SettingsError(name, "is not set", hint="set it in the environment or in .env; "
                                    "see settings.example.env")


class PlaybookSettings(BaseSettings):
    """Only what `analyze` needs: it works without a CRM, so no CRM setting may stop it."""

    model_config = Settings.model_config

    PLAYBOOK: str | None = None
    PLAYBOOK_LANG: Literal["ru", "en"] = "ru"

    @field_validator("PLAYBOOK")
    @classmethod
    def _playbook(cls, value: str | None) -> str | None:
        return Settings._playbook(value)


def load_settings(**overrides) -> Settings:
    """Read the environment (and .env); turn the first invalid value into a SettingsError."""
    return _validated(Settings, overrides)


def load_playbook_settings() -> PlaybookSettings:
    """PLAYBOOK and PLAYBOOK_LANG alone, validated like load_settings()."""
    return _validated(PlaybookSettings, {})


def _validated(model: type[BaseSettings], overrides: dict):
    try:
        return model(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else "settings"
        msg = first.get("msg", "invalid value").removeprefix("Value error, ")
        allowed = ""
        ctx = first.get("ctx") or {}
        if "expected" in ctx:
            allowed = f"expected {ctx['expected']}"
        raise SettingsError(name, msg, hint=allowed or "see settings.example.env") from None


def secret_text(value: SecretStr | None) -> str:
    """A secret setting's value, "" when unset (for code that takes the plain text)."""
    return value.get_secret_value() if value is not None else ""
