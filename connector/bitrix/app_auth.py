"""The local application's OAuth grant: verified at install, stored in the state file, renewed safely.

Doc: settings/oauth/auto-renewal.md - `GET {oauth}/oauth/token/?grant_type=refresh_token&client_id
&client_secret&refresh_token`; access tokens live 1 h, refresh tokens 180 days, and every renewal
returns a new refresh token that must be stored (the old one is spent). Renew when the token is
refused (401 `expired_token`) or known to be past its hour - never on a timer, never per call.
The auth server is a setting (BITRIX_OAUTH_URL), never an address taken from a request: the client
secret goes there. An ONAPPINSTALL is trusted only after that server renewed its refresh token for
our client_id and secret (Doc: api-reference/events/safe-event-handlers.md - check the install's
tokens, then keep its application_token).

A robot call without `auth[application_token]` (Doc: tutorials/bizproc/activity.md lists only
`auth[domain|access_token|refresh_token]`) is trusted when the portal the app was installed in confirms its
access token with `app.info` as this very app (Doc: api-reference/common/system/app-info.md; sdk/b24pysdk/
index.md - "проверка входящих данных через app.info"): the address is the stored one, never the request's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlparse

import aiohttp

from connector.errors import CrmAuthError, CrmUnavailable
from connector.installs import Installs
from connector.redact import register_secret

log = logging.getLogger(__name__)

CRM = "bitrix"
TOKEN_PATH = "/oauth/token/"
RENEW_AHEAD_SECONDS = 60  # a token this close to its hour is renewed before use, not after a 401
OAUTH_TIMEOUT_SECONDS = 15
# fast-bitrix24 retries 401s forever: a token refused this often within the window is fatal, not retried
MAX_REFUSALS = 3
REFUSAL_WINDOW_SECONDS = 120
REINSTALL_HINT = ("reinstall the app in Bitrix24 (Applications -> Developer resources -> the local app), "
                  "check BITRIX_APP_CLIENT_ID / BITRIX_APP_CLIENT_SECRET / BITRIX_OAUTH_URL")
DEFAULT_OAUTH_URL = "https://oauth.bitrix.info"


@dataclass(frozen=True)
class AppGrant:
    member_id: str
    domain: str
    client_endpoint: str
    application_token: str
    access_token: str
    refresh_token: str
    expires_at: float
    user_id: int = 1
    scope: str = ""

    @classmethod
    def from_json(cls, data: dict) -> AppGrant:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def portal(self) -> str:
        return urlparse(self.client_endpoint).netloc


def endpoint_ok(url: str) -> bool:
    """A portal's REST root must be https (plain http only on loopback, for the emulator)."""
    from connector.settings import is_loopback

    parsed = urlparse(url)
    return bool(parsed.hostname) and (parsed.scheme == "https" or (parsed.scheme == "http"
                                                                     and is_loopback(parsed.hostname)))


class AppTokens:
    """Access tokens of the installed app for fast-bitrix24's `token_func`, rotated under the state lock."""

    def __init__(self, installs: Installs, client_id: str, client_secret: str, oauth_url: str, *,
                 now: Callable[[], float] = time.time) -> None:
        self.installs, self.client_id, self.client_secret = installs, client_id, client_secret
        self.oauth_url = oauth_url.rstrip("/")
        self.now = now
        self.renewals = 0  # calls to the auth server by this object
        self._given: str | None = None
        self._refusals: list[float] = []
        register_secret(client_secret)

    def grant(self) -> AppGrant:
        data = self.installs.get(CRM)
        if not data:
            raise CrmAuthError("the app is not installed in a portal yet", crm=CRM, hint=REINSTALL_HINT)
        return AppGrant.from_json(data)

    # --- fast-bitrix24's token_func: called before the first request and after every 401 ---

    async def token_func(self) -> str:
        stale = self._given
        if stale is not None:  # called again: the portal refused the token we gave
            moment = time.monotonic()
            self._refusals = [t for t in self._refusals if moment - t < REFUSAL_WINDOW_SECONDS] + [moment]
            if len(self._refusals) > MAX_REFUSALS:
                raise CrmAuthError("the portal keeps refusing the app's renewed tokens", crm=CRM, status=401,
                                   hint=REINSTALL_HINT)
        grant = await self._fresh(stale)
        self._given = grant.access_token
        register_secret(grant.access_token)
        return grant.access_token

    async def _fresh(self, stale: str | None) -> AppGrant:
        grant = self.grant()
        if grant.access_token != stale and grant.expires_at - self.now() > RENEW_AHEAD_SECONDS:
            return grant  # the cheap path: the stored token is good (another process may have renewed it)
        with self.installs.locked(CRM) as slot:  # re-read under the lock: renew once, for every process
            if not slot.data:
                raise CrmAuthError("the app was uninstalled", crm=CRM, hint=REINSTALL_HINT)
            grant = AppGrant.from_json(slot.data)
            if grant.access_token != stale and grant.expires_at - self.now() > RENEW_AHEAD_SECONDS:
                return grant
            answer = await self._renew(grant.refresh_token)
            fresh = replace(grant, access_token=str(answer["access_token"]),
                            refresh_token=str(answer["refresh_token"]), expires_at=_expires(answer, self.now()))
            slot.save({**slot.data, **fresh.to_json()})  # committed before the new token is ever sent
        log.info("bitrix app tokens=renewed portal=%s", fresh.portal)
        return fresh

    # --- install ---

    def adopt(self, install_auth: dict) -> AppGrant:
        """Verify an ONAPPINSTALL's `auth[...]` by renewing its refresh token with our client secret, then
        store the grant (new tokens, member_id and client_endpoint as the auth server states them)."""
        refresh = str(install_auth.get("refresh_token") or "")
        answer = asyncio.run(self._renew(refresh))
        member = str(answer.get("member_id") or "")
        endpoint = str(answer.get("client_endpoint") or "")
        if member != str(install_auth.get("member_id") or "") or not endpoint_ok(endpoint):
            raise CrmAuthError("the auth server's answer does not match the install", crm=CRM, hint=REINSTALL_HINT)
        grant = AppGrant(member_id=member, domain=urlparse(endpoint).netloc, client_endpoint=endpoint,
                         application_token=str(install_auth.get("application_token") or ""),
                         access_token=str(answer["access_token"]), refresh_token=str(answer["refresh_token"]),
                         expires_at=_expires(answer, self.now()), user_id=_int(answer.get("user_id"), 1),
                         scope=str(answer.get("scope") or install_auth.get("scope") or ""))
        with self.installs.locked(CRM) as slot:
            if slot.data and str(slot.data.get("member_id") or member) != member:  # never over another portal's
                raise CrmAuthError("the app is installed in another portal of this tenant", crm=CRM,
                                   hint="uninstall it there first")
            slot.save({**grant.to_json(), "installed_at": self.now()})
        register_secret(grant.access_token)
        return grant

    def app_info(self, access_token: str) -> dict | None:
        """`app.info` on the installed portal with `access_token`: the app it belongs to, or None when the
        portal refuses the token (401 NO_AUTH_FOUND / expired_token, 400 outside an app)."""
        return asyncio.run(self._app_info(access_token))

    async def _app_info(self, access_token: str) -> dict | None:
        url = self.grant().client_endpoint.rstrip("/") + "/app.info"
        try:
            status, body = await _json_answer("POST", url, json={"auth": access_token})
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CrmUnavailable(f"cannot reach the portal to check a token ({type(exc).__name__})", crm=CRM,
                                 method="app.info", hint="check the network; the portal resends nothing") from None
        if status in (400, 401, 403):
            return None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise CrmUnavailable(f"the portal answered app.info with HTTP {status}", crm=CRM, method="app.info",
                                 hint="try again later")
        return body["result"]

    async def _renew(self, refresh_token: str) -> dict:
        """One call to the auth server; never retried blindly (a lost answer may have spent the token)."""
        self.renewals += 1
        params = {"grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self.client_secret,
                  "refresh_token": refresh_token}
        try:
            status, body = await _json_answer("GET", self.oauth_url + TOKEN_PATH, params=params)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CrmUnavailable(f"cannot reach the OAuth server ({type(exc).__name__})", crm=CRM,
                                 method="oauth/token", hint="check BITRIX_OAUTH_URL and the network") from None
        if status != 200 or not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
            code = str(body.get("error", "")) if isinstance(body, dict) else ""
            raise CrmAuthError("the OAuth server refused to renew the app's token", crm=CRM, method="oauth/token",
                               status=status, crm_code=code[:40], hint=REINSTALL_HINT)
        return body


def _expires(answer: dict, now: float) -> float:
    return now + float(_int(answer.get("expires_in"), 3600))


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def app_tokens(settings, installs: Installs) -> AppTokens:
    """The installed local app's tokens (BITRIX_APP_CLIENT_ID/SECRET name the app)."""
    settings.require("BITRIX_APP_CLIENT_ID", "BITRIX_APP_CLIENT_SECRET")
    return AppTokens(installs, settings.BITRIX_APP_CLIENT_ID, settings.BITRIX_APP_CLIENT_SECRET.get_secret_value(),
                     settings.BITRIX_OAUTH_URL or DEFAULT_OAUTH_URL)


async def _json_answer(method: str, url: str, **kw) -> tuple[int, object]:
    """One request to the portal or its auth server: the status and the JSON body (None if not JSON)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=OAUTH_TIMEOUT_SECONDS)) as s:
        async with s.request(method, url, **kw) as response:
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, None
