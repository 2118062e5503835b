"""Who opened the page: trusted only once the portal the app is installed in confirms the `AUTH_ID`.

Doc: settings/oauth/simple-way.md (the app page's POST: `AUTH_ID` is the user's access token, `member_id`
the portal); api-reference/common/system/app-info.md (the token is this app's), common/users/user-current.md
(whose it is), common/users/user-admin.md (may they change the app's settings). The address asked is the
stored install's, never one from the request; a token the portal refuses (forged, expired) is a 401.
Confirmations are kept a few minutes by the token's digest so a page answers without three round trips.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from connector.errors import WebhookRejected

CONFIRMED_SECONDS = 300
PORTAL_TIMEOUT_SECONDS = 10
NAMES_SECONDS = 600


@dataclass(frozen=True)
class Visitor:
    user_id: str
    name: str
    admin: bool
    token: str  # the AUTH_ID, carried by the page's forms
    member_id: str


def _same(given: str, stored: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), stored.encode())


def form_key(client_secret: str) -> bytes:
    """The key of the forms' CSRF tokens, from the app's client secret: every `serve` process (and one
    restarted) accepts a form another drew; random per process when there is no secret."""
    if not client_secret:
        return secrets.token_bytes(32)
    return hmac.new(client_secret.encode(), b"rs-pages-csrf", "sha256").digest()


class PortalCheck:
    """Confirms visitors with the portal and signs their forms (CSRF tokens bound to the token and user)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._confirmed: dict[str, tuple[float, Visitor]] = {}
        self._names: tuple[float, dict[str, str]] = (0.0, {})

    def visitor(self, stored: dict | None, token: str, member_id: str) -> Visitor:
        if not (stored and token and _same(member_id, str(stored.get("member_id", "")))):
            raise WebhookRejected(401, "not from the portal that installed the app")
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._confirmed.get(digest)
            if hit and now - hit[0] < CONFIRMED_SECONDS:
                return hit[1]
        endpoint = str(stored.get("client_endpoint", ""))
        info = call(endpoint, "app.info", token)
        mine = stored.get("app") or {}
        if not isinstance(info, dict) or not mine or str(info.get("ID")) != str(mine.get("ID")) \
                or info.get("CODE") != mine.get("CODE"):
            raise WebhookRejected(401, "the portal does not confirm this token as the app's")
        me = call(endpoint, "user.current", token)
        if not isinstance(me, dict) or not me.get("ID"):
            raise WebhookRejected(401, "the portal does not know this user")
        admin = call(endpoint, "user.admin", token) is True
        name = " ".join(str(me.get(k) or "") for k in ("NAME", "LAST_NAME")).strip() or f"#{me['ID']}"
        found = Visitor(str(me["ID"]), name, admin, token, member_id)
        with self._lock:
            self._confirmed = {k: v for k, v in self._confirmed.items() if now - v[0] < CONFIRMED_SECONDS}
            self._confirmed[digest] = (now, found)
        return found

    def manager_names(self, stored: dict, token: str) -> dict[str, str]:
        """The portal's users by id (one page of user.get), kept ten minutes; {} when the portal refuses."""
        at, names = self._names
        if names and time.monotonic() - at < NAMES_SECONDS:
            return names
        try:
            rows = call(str(stored.get("client_endpoint", "")), "user.get", token)
        except WebhookRejected:
            return names
        names = {str(u.get("ID")): " ".join(str(u.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
                 for u in rows or [] if isinstance(u, dict)}
        self._names = (time.monotonic(), names)
        return names

    # --- CSRF ---

    def csrf(self, visitor: Visitor) -> str:
        message = f"{visitor.user_id}:{hashlib.sha256(visitor.token.encode()).hexdigest()}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()

    def check_csrf(self, visitor: Visitor, given: str) -> None:
        if not _same(given, self.csrf(visitor)):
            raise WebhookRejected(403, "the form's CSRF token is missing or wrong")


def call(endpoint: str, method: str, token: str):
    """One REST call with the visitor's token; 401 when the portal refuses it, 503 when it cannot be asked."""
    body = json.dumps({"auth": token}).encode()
    request = urllib.request.Request(endpoint.rstrip("/") + "/" + method, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=PORTAL_TIMEOUT_SECONDS) as answer:  # noqa: S310 - stored URL
            data = json.loads(answer.read().decode("utf-8") or "{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 401, 403):
            raise WebhookRejected(401, "the portal refused the token") from None
        raise WebhookRejected(503, f"the portal answered HTTP {exc.code}") from None
    except (OSError, ValueError):
        raise WebhookRejected(503, "cannot reach the portal to confirm the visitor") from None
    if not isinstance(data, dict) or "result" not in data:
        raise WebhookRejected(401, "the portal refused the token")
    return data["result"]
