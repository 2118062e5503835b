"""The OAuth 2.0 token endpoint of amoCRM: exchange an authorization code, refresh a token pair.

Doc: developers.kommo.com/reference/get-token and /docs/oauth-20 - `POST /oauth2/access_token` on the
account's own host, JSON body, `redirect_uri` on refresh too; every refresh returns a new refresh
token and the old one dies once the new pair is used. These calls are never blind-retried: a lost
answer may already have rotated the token (see tokens.py for how that is survived).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from connector.amocrm.client import CRM, TOKEN_PATH, AmoClient
from connector.errors import CrmAuthError

CONSENT_URL = "https://www.amocrm.ru/oauth"  # Doc: developers.kommo.com/docs/oauth-20 (www.kommo.com/oauth)
REGRANT_HINT = ("amoCRM refused the integration's grant (access revoked, integration disabled, or the refresh "
                "token unused for 3 months): an account admin must grant access again - open the integration "
                "in amoCRM, take a fresh authorization code and set AMOCRM_AUTH_CODE (it lives 20 minutes), "
                "then run again")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: float  # wall-clock seconds


@dataclass(frozen=True)
class OAuthApp:
    """The integration's keys, from AMOCRM_CLIENT_ID / AMOCRM_CLIENT_SECRET / AMOCRM_REDIRECT_URI."""

    client_id: str
    client_secret: str
    redirect_uri: str


def consent_url(app: OAuthApp, state: str) -> str:
    """Where an admin grants access; amoCRM then redirects to `redirect_uri?code=...&referer=...`."""
    return f"{CONSENT_URL}?{urlencode({'client_id': app.client_id, 'state': state, 'mode': 'post_message'})}"


def _pair(answer: object, now: float) -> TokenPair:
    if not isinstance(answer, dict) or not answer.get("access_token") or not answer.get("refresh_token"):
        raise CrmAuthError("the token endpoint answered without a token pair", crm=CRM,
                           method=f"POST {TOKEN_PATH}", hint="check that AMOCRM_BASE_URL is the account's address")
    try:
        expires_in = float(answer.get("expires_in") or 86400)
    except (TypeError, ValueError):
        expires_in = 86400.0
    return TokenPair(str(answer["access_token"]), str(answer["refresh_token"]), now + expires_in)


def exchange_code(client: AmoClient, app: OAuthApp, code: str, *,
                  now: Callable[[], float] = time.time) -> TokenPair:
    """The first grant: an authorization code (single use, 20 minutes) -> a token pair."""
    body = {"client_id": app.client_id, "client_secret": app.client_secret, "grant_type": "authorization_code",
            "code": code, "redirect_uri": app.redirect_uri}
    return _pair(client.request("POST", TOKEN_PATH, json_body=body, kind="token"), now())


def refresh_pair(client: AmoClient, app: OAuthApp, refresh_token: str, *,
                 now: Callable[[], float] = time.time) -> TokenPair:
    """A refresh token -> a new pair (a new refresh token every time)."""
    body = {"client_id": app.client_id, "client_secret": app.client_secret, "grant_type": "refresh_token",
            "refresh_token": refresh_token, "redirect_uri": app.redirect_uri}
    return _pair(client.request("POST", TOKEN_PATH, json_body=body, kind="token"), now())
