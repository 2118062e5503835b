"""The amoCRM side of the webhook app: the OAuth redirect target and the account webhook receiver.

Doc: developers.kommo.com/docs/oauth-20 - the redirect brings `code`, `state`, `referer` (the account
host) and `client_id`; the code is single-use and lives 20 minutes. amocrm.ru/developers/content/
crm_platform/webhooks-api - `POST /api/v4/webhooks {destination, settings}`; account webhooks carry
no signature, so the destination holds an unguessable per-install secret and every delivery must
name the installed account (`account[id]`, `account[subdomain]`). developers.kommo.com/docs/webhooks-general
- answer within 2 s with 2xx or the hook is eventually disabled: verify, queue, answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from connector.amocrm.oauth import OAuthApp, consent_url
from connector.errors import CrmError, WebhookRejected
from connector.redact import register_secret
from connector.state import State
from connector.webapp.forms import text_field
from connector.webapp.worker import Job

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

log = logging.getLogger(__name__)

CRM = "amocrm"
STATE_TTL_SECONDS = 3600
WEBHOOK_PREFIX = "/amocrm/webhook/"  # + the per-install secret
# a lead moved (e.g. to 142, won) or was deleted: the purchase history changed (Doc: A-wh settings codes)
WEBHOOK_EVENTS = ["status_lead", "delete_lead"]


def _same(given: str, stored: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), stored.encode())


class AmoApp:
    def __init__(self, host: WebApp) -> None:
        self.host = host
        self.settings = host.settings
        self.installs = host.installs

    def routes(self) -> dict:
        """(method, path) -> handler, served by `repeat-sales serve` (design.md "Webhook app routes")."""
        from connector.amocrm.widget_app import WidgetRoutes

        return {("GET", "/amocrm/connect"): self.connect, ("GET", "/amocrm/oauth"): self.on_oauth,
                **WidgetRoutes(self.host).routes()}

    def prefix_routes(self) -> dict:
        """POST <prefix><secret>: the rest of the path is the request's `param`."""
        return {WEBHOOK_PREFIX: self.on_webhook}

    @staticmethod
    def install_status(stored: dict) -> dict:
        """The connected account as GET /status shows it (no secret)."""
        return {"subdomain": stored.get("subdomain"), "account_id": stored.get("account_id"),
                "installed_at": stored.get("installed_at")}

    def _oauth_app(self) -> OAuthApp:
        s = self.settings
        if s.AMOCRM_BASE_URL is None or s.AMOCRM_CLIENT_ID is None or s.AMOCRM_CLIENT_SECRET is None \
                or s.AMOCRM_REDIRECT_URI is None or s.AMOCRM_ACCESS_TOKEN is not None:
            raise WebhookRejected(404, "amoCRM OAuth is not configured (AMOCRM_BASE_URL, AMOCRM_CLIENT_ID, "
                                       "AMOCRM_CLIENT_SECRET, AMOCRM_REDIRECT_URI; no AMOCRM_ACCESS_TOKEN)")
        return OAuthApp(s.AMOCRM_CLIENT_ID, s.AMOCRM_CLIENT_SECRET.get_secret_value(), s.AMOCRM_REDIRECT_URI)

    # --- GET /amocrm/connect (admin) -----------------------------------------------------------

    def connect(self, request):
        self.host.require_admin(request)
        app = self._oauth_app()
        state = self.installs.new_oauth_state(CRM, STATE_TTL_SECONDS)
        return 200, {"url": consent_url(app, state), "expires_in": STATE_TTL_SECONDS}

    # --- GET /amocrm/oauth ---------------------------------------------------------------------

    def on_oauth(self, request):
        app = self._oauth_app()
        q = request.query
        state = q.get("state", "")
        if not state or len(state) > 200 or not self.installs.take_oauth_state(CRM, state):
            raise WebhookRejected(401, "unknown, used or expired state: start again from /amocrm/connect")
        if q.get("error"):
            return 400, {"error": "access was not granted", "reason": q.get("error", "")[:64]}
        code = q.get("code", "")
        if not code or len(code) > 4096:
            raise WebhookRejected(400, "the redirect carries no code")
        if q.get("client_id") and not _same(q["client_id"], app.client_id):
            raise WebhookRejected(403, "the grant is for another integration")
        expected = urlparse(self.settings.AMOCRM_BASE_URL.strip()).netloc
        if q.get("referer") and q["referer"].lower() != expected.lower():
            raise WebhookRejected(403, "the grant is for another account than AMOCRM_BASE_URL")
        register_secret(code)
        self.host.submit(Job("amocrm.oauth", run=partial(self.complete_oauth, code), sync=True))
        return 200, {"ok": True, "status": "connecting", "message": "access granted; the account is being connected"}

    def complete_oauth(self, code: str, state: State) -> None:
        """Exchange the code (tokens stored first), learn the account, add the status webhook."""
        from connector.amocrm import make_adapter

        adapter = make_adapter(self.settings)
        try:
            adapter.client.auth.accept_code(code)
            account = adapter.client.request("GET", "/api/v4/account") or {}
            secret = secrets.token_urlsafe(32)
            register_secret(secret)
            destination = f"{self.host.public_url}{WEBHOOK_PREFIX}{secret}"
            previous = self.installs.get(CRM)
            # stored before the webhook exists, so its first delivery already finds the secret
            self.installs.put(CRM, {"account_id": int(account["id"]), "subdomain": str(account["subdomain"]),
                                    "secret": secret, "destination": destination, "installed_at": time.time(),
                                    "base_url": self.settings.AMOCRM_BASE_URL.strip()})
            adapter.client.request("POST", "/api/v4/webhooks", kind="write",
                                   json_body={"destination": destination, "settings": WEBHOOK_EVENTS})
            if previous and previous.get("destination") and previous["destination"] != destination:
                try:
                    adapter.client.request("DELETE", "/api/v4/webhooks", kind="write",
                                           json_body={"destination": previous["destination"]})
                except CrmError as exc:  # an old hook left behind only gets 401s from us
                    log.warning("amocrm old webhook not removed: %s", exc)
            self._prepare(adapter)
            log.info("amocrm app=connected account=%s", account.get("subdomain"))
        finally:
            adapter.close()

    def _prepare(self, adapter) -> None:
        """The account prepared as `repeat-sales install` does (its fields), before the first sync the connect
        queues; what was made is kept with the install (`tenants show`). A refusal is said, never fatal: the
        account stays connected and `repeat-sales install --tenant ID` prepares it again."""
        try:
            prepared = adapter.install()
            fields, missing = prepared.created + prepared.existing, list(prepared.missing)
        except CrmError as exc:
            fields, missing, prepared = [], [f"the fields were not created: {exc}"], None
        with self.installs.locked(CRM) as slot:
            if slot.data:
                slot.save({**slot.data, "fields": fields, "missing": missing})
        for line in missing:
            log.warning("amocrm app install: %s", line)
        for line in (prepared.admin_steps if prepared else []):
            log.info("amocrm app install, for the admin: %s", line)

    # --- POST /amocrm/webhook/<secret> ------------------------------------------------------

    def on_webhook(self, request):
        stored = self.installs.get(CRM)
        if not stored:
            raise WebhookRejected(403, "no amoCRM account is connected")
        if not _same(request.param, str(stored.get("secret", ""))):
            raise WebhookRejected(401, "unknown webhook address")
        form = request.form()
        account_ok = _same(text_field(form, "account", "id"), str(stored.get("account_id", "")))
        subdomain_ok = _same(text_field(form, "account", "subdomain").lower(), str(stored.get("subdomain", "")).lower())
        if not (account_ok and subdomain_ok):
            raise WebhookRejected(403, "the delivery names another account")
        digest = hashlib.sha256(json.dumps(form, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        key = f"amocrm-webhook:{stored['account_id']}:{digest}"
        if not self.installs.first_seen(key):
            return 200, {"ok": True, "duplicate": True}
        try:  # maybe the echo of the app's own write: the sync checks before it plans (connector.quiet)
            self.host.request_sync(crm_event=True)
        except Exception:
            self.installs.forget_seen(key)
            raise
        return 200, {"ok": True, "status": "queued"}
