"""The emulated account's OAuth server: codes, token pairs, single-use rotating refresh tokens.

Doc: developers.kommo.com/docs/oauth-20 and /reference/get-token - a code lives 20 minutes and works
once; an access token lives 24 hours (a JWT); each refresh returns a new refresh token, and the old
one keeps working until the new pair is first used (so a lost answer can be retried), after which
every other refresh token of the grant is dead. A disabled integration revokes everything (401).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

CODE_TTL_SECONDS = 20 * 60
REFRESH_TTL_SECONDS = 90 * 86400
LONG_LIVED_TTL_SECONDS = 5 * 365 * 86400
OAUTH_ERROR_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


@dataclass
class _Refresh:
    grant: int
    activated: bool = False
    alive: bool = True
    issued: float = field(default_factory=time.time)


@dataclass
class _Access:
    grant: int
    refresh: str | None  # the refresh token issued with it (None for the long-lived token)
    expires_at: float


class AuthServer:
    def __init__(self, *, account_id: int, user_id: int, host: str, access_ttl: int = 86400,
                 clock=time.time) -> None:
        self.account_id, self.user_id, self.host = account_id, user_id, host
        self.access_ttl = access_ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.client_id = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-" \
                         f"{secrets.token_hex(2)}-{secrets.token_hex(6)}"
        self.client_secret = secrets.token_urlsafe(48)
        self.redirect_uri = "https://repeat-sales.example.com/amocrm/oauth"
        self.codes: dict[str, tuple[float, bool]] = {}
        self.refresh_tokens: dict[str, _Refresh] = {}
        self.access: dict[str, _Access] = {}
        self.revoked: set[int] = set()
        self.next_grant = 1
        self.exchanges = 0
        self.refreshes = 0
        self.long_lived = self._jwt(0, LONG_LIVED_TTL_SECONDS)
        self.access[self.long_lived] = _Access(0, None, self.clock() + LONG_LIVED_TTL_SECONDS)

    def _jwt(self, grant: int, ttl: int) -> str:
        now = int(self.clock())
        payload = {"aud": self.client_id, "jti": secrets.token_hex(16), "iat": now, "nbf": now, "exp": now + ttl,
                   "sub": str(self.user_id), "grant_type": "", "account_id": self.account_id,
                   "base_domain": self.host, "api_domain": self.host, "version": 2,
                   "scopes": ["crm", "notifications"], "grant": grant}
        return f"{_b64({'typ': 'JWT', 'alg': 'RS256'})}.{_b64(payload)}.{secrets.token_urlsafe(32)}"

    # --- control ---------------------------------------------------------------------------

    def issue_code(self) -> str:
        code = "def50200" + secrets.token_hex(60)
        with self.lock:
            self.codes[code] = (self.clock(), False)
        return code

    def expire_access_tokens(self, *, include_long_lived: bool = False) -> None:
        with self.lock:
            for access in self.access.values():
                if access.refresh is not None or include_long_lived:
                    access.expires_at = 0

    def revoke_grant(self) -> None:
        """The admin disabled the integration: every grant, the long-lived token included, is dead."""
        with self.lock:
            self.revoked.update(range(0, self.next_grant))

    def current_refresh_tokens(self) -> list[str]:
        with self.lock:
            return [t for t, r in self.refresh_tokens.items() if r.alive and r.grant not in self.revoked]

    # --- API side ----------------------------------------------------------------------------

    def check(self, token: str) -> bool:
        """A request's bearer token: valid, unexpired, grant not revoked. Using it activates its pair."""
        with self.lock:
            access = self.access.get(token)
            if access is None or access.grant in self.revoked or access.expires_at <= self.clock():
                return False
            if access.refresh is not None:
                self._activate(access.refresh)
            return True

    def _activate(self, refresh: str) -> None:
        entry = self.refresh_tokens.get(refresh)
        if entry is None or entry.activated:
            return
        entry.activated = True
        for token, other in self.refresh_tokens.items():
            if other.grant == entry.grant and token != refresh:
                other.alive = False

    def token_endpoint(self, body: object) -> tuple[int, dict]:
        """`POST /oauth2/access_token` -> (status, JSON answer)."""
        if not isinstance(body, dict):
            return _oauth_error(400, "Request body is not valid JSON")
        missing = [k for k in ("client_id", "client_secret", "grant_type", "redirect_uri") if not body.get(k)]
        if missing:
            return _oauth_error(400, f"Check the `{missing[0]}` parameter")
        if body["client_id"] != self.client_id or body["client_secret"] != self.client_secret:
            return _oauth_error(401, "Client authentication failed", title="Unauthorized")
        if body["redirect_uri"] != self.redirect_uri:
            return _oauth_error(400, "Redirect URI mismatch")
        with self.lock:
            if body["grant_type"] == "authorization_code":
                code = str(body.get("code") or "")
                issued = self.codes.get(code)
                if issued is None or issued[1]:
                    return _oauth_error(400, "Authorization code has been revoked")
                if self.clock() - issued[0] > CODE_TTL_SECONDS:
                    return _oauth_error(400, "Authorization code has expired")
                self.codes[code] = (issued[0], True)
                grant = self.next_grant
                self.next_grant += 1
                self.exchanges += 1
                return 200, self._pair(grant)
            if body["grant_type"] == "refresh_token":
                token = str(body.get("refresh_token") or "")
                entry = self.refresh_tokens.get(token)
                if entry is None or entry.grant in self.revoked:
                    return _oauth_error(400, "Token has been revoked")
                if not entry.alive or self.clock() - entry.issued > REFRESH_TTL_SECONDS:
                    return _oauth_error(400, "Token has expired" if entry.alive else "Token has been revoked")
                self._activate(token)
                self.refreshes += 1
                return 200, self._pair(entry.grant)
        return _oauth_error(400, "The authorization grant type is not supported by the authorization server.")

    def _pair(self, grant: int) -> dict:
        access = self._jwt(grant, self.access_ttl)
        refresh = "def50200" + secrets.token_hex(150)
        self.refresh_tokens[refresh] = _Refresh(grant, issued=self.clock())
        self.access[access] = _Access(grant, refresh, self.clock() + self.access_ttl)
        return {"token_type": "Bearer", "expires_in": self.access_ttl, "access_token": access,
                "refresh_token": refresh, "server_time": int(self.clock())}


def _oauth_error(status: int, hint: str, *, title: str = "Некорректный запрос") -> tuple[int, dict]:
    # Doc: reference §1 (community captures) - the token endpoint's problem+json carries a `hint`
    return status, {"hint": hint, "title": title, "type": OAUTH_ERROR_TYPE, "status": status,
                    "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}
