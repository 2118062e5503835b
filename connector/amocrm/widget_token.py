"""amoCRM's one-time token: who opens our widget, checked on our side before a page is shown.

Doc: developers.kommo.com/docs/one-time-tokens - the widget's `self.$authorizedAjax()` sends the
`X-Auth-Token` header: a JWT signed HS256 with the integration's secret key, claims `iss` (the
account address), `aud` (from the integration's redirect_uri), `jti`, `iat`, `nbf`, `exp`,
`account_id`, `user_id`, `client_uuid`. Checked here with the standard library: the signature in
constant time, the algorithm pinned to HS256 (never `none`), the time window, and the account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import urlparse

from connector.errors import WebhookRejected

LEEWAY_SECONDS = 30  # clocks of the account and ours may differ a little


@dataclass(frozen=True)
class WidgetUser:
    account_host: str
    account_id: int
    user_id: int


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _refuse(why: str) -> WebhookRejected:
    return WebhookRejected(401, f"the widget's token is refused: {why}")


def verify(token: str, secret: str, *, account_host: str, now: float) -> WidgetUser:
    """The user the token names; 401 (WebhookRejected) when it is forged, expired or for another account."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not secret:
        raise _refuse("not a signed token")
    try:
        header, claims = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise _refuse("not a signed token") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise _refuse("not signed with HS256")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise _refuse("bad signature")
    try:
        exp, nbf = float(claims["exp"]), float(claims.get("nbf", claims.get("iat", 0)))
        account_id, user_id = int(claims["account_id"]), int(claims["user_id"])
    except (KeyError, TypeError, ValueError):
        raise _refuse("claims missing") from None
    if now > exp + LEEWAY_SECONDS or now < nbf - LEEWAY_SECONDS:
        raise _refuse("expired")
    issuer = str(claims.get("iss") or "")
    host = urlparse(issuer).netloc or issuer
    if host.lower() != account_host.lower():
        raise _refuse("another account")
    return WidgetUser(host, account_id, user_id)
