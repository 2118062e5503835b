"""Keeps secrets out of log records: webhook codes in URLs and any configured secret value."""

from __future__ import annotations

import logging
import re

WEBHOOK_RE = re.compile(r"(/rest/\d+/)[A-Za-z0-9_-]+")
BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._-]+")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    text = WEBHOOK_RE.sub(r"\1***", text)
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
