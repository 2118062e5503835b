"""The one-time token amoCRM's web interface gives a widget's `$authorizedAjax` request.

Doc: developers.kommo.com/docs/one-time-tokens - a JWT in the `X-Auth-Token` header, HS256 with the
integration's secret key; claims iss (account address), aud (redirect_uri's base), jti, iat, nbf,
exp, account_id, user_id, client_uuid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlparse


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def one_time_token(secret: str, *, account_url: str, account_id: int, user_id: int, client_id: str,
                   redirect_uri: str, ttl_seconds: int = 300, now: float | None = None) -> str:
    """A token as the account signs it; a negative `ttl_seconds` gives one that has expired."""
    issued = int(time.time() if now is None else now)
    aud = urlparse(redirect_uri)
    claims = {"iss": account_url.rstrip("/"), "aud": f"{aud.scheme}://{aud.netloc}", "jti": str(uuid.uuid4()),
              "iat": issued, "nbf": issued, "exp": issued + ttl_seconds, "account_id": account_id,
              "user_id": user_id, "client_uuid": client_id}
    head = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"
