"""Keeps secrets out of log records: webhook codes in URLs and any configured secret value."""

from __future__ import annotations

import logging
import re
import threading

WEBHOOK_RE = re.compile(r"(/rest/\d+/)[A-Za-z0-9_-]+")
BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._-]+")
APP_HOOK_RE = re.compile(r"(/amocrm/webhook/)[^\s/?\"']+")  # the webapp's per-install secret path
_RUNTIME_SECRETS: dict[str, None] = {}  # tokens learnt while running (OAuth grants, app secrets), newest last
RUNTIME_SECRETS_KEPT = 256
_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Keep a secret that appears at run time (a new access token, a generated path secret) out of logs."""
    if value and len(value) >= 6:
        with _LOCK:
            _RUNTIME_SECRETS.pop(value, None)
            _RUNTIME_SECRETS[value] = None
            while len(_RUNTIME_SECRETS) > RUNTIME_SECRETS_KEPT:
                del _RUNTIME_SECRETS[next(iter(_RUNTIME_SECRETS))]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    with _LOCK:
        learnt = tuple(_RUNTIME_SECRETS)
    for secret in (*secrets, *learnt):
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    text = WEBHOOK_RE.sub(r"\1***", text)
    text = APP_HOOK_RE.sub(r"\1***", text)
    return BEARER_RE.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """Installed on the root handler: rewrites each record's final message."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)
