"""The widget's side of `repeat-sales serve`: trade amoCRM's one-time token for a page address.

The widget's script (connector/amocrm/widget.py) calls `POST /amocrm/widget/session` through
`$authorizedAjax`, which adds `X-Auth-Token` (Doc: developers.kommo.com/docs/one-time-tokens). The
token is checked here (signature with the integration's secret, time, account); the answer is the
address of our page for that place, signed by us and valid for a few minutes, which the script
opens in a frame. A forged, expired or foreign token gets 401 and no address.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlparse

from connector.amocrm.widget_pages import WidgetPages
from connector.amocrm.widget_token import verify
from connector.errors import WebhookRejected
from connector.webapp.forms import text_field

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp

SESSION_PATH = "/amocrm/widget/session"
PAGE_PATH = "/amocrm/widget/page"
SETTINGS_PATH = "/amocrm/widget/settings"
PAGE_TTL_SECONDS = 600
PLACES = ("card", "settings")
ENTITIES = ("lcard", "ccard", "comcard", "")
# the account's pages call us from their own origin; the token, not a cookie, says who calls
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "X-Auth-Token, Content-Type, X-Requested-With",
        "Access-Control-Max-Age": "600"}


class WidgetRoutes:
    def __init__(self, host: WebApp) -> None:
        self.host = host
        self.settings = host.settings
        self.pages = WidgetPages(host)

    def routes(self) -> dict:
        return {("OPTIONS", SESSION_PATH): self.preflight, ("POST", SESSION_PATH): self.session,
                ("GET", PAGE_PATH): self.page, ("POST", PAGE_PATH): self.page,
                ("POST", SETTINGS_PATH): self.settings_page}

    def _key(self) -> bytes:
        secret = self.settings.AMOCRM_CLIENT_SECRET
        if secret is None or self.settings.AMOCRM_BASE_URL is None:
            raise WebhookRejected(404, "the amoCRM widget is not configured (AMOCRM_BASE_URL, AMOCRM_CLIENT_SECRET)")
        return secret.get_secret_value().encode()

    def _sign(self, fields: dict[str, str]) -> str:
        """Signed with a key of this account's own (the integration's secret and the account's address): accounts
        sharing the integration (tenants) never accept each other's page addresses."""
        text = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
        label = b"rs-widget-page:" + urlparse(self.settings.AMOCRM_BASE_URL.strip()).netloc.lower().encode()
        return hmac.new(hmac.new(self._key(), label, hashlib.sha256).digest(), text.encode(),
                        hashlib.sha256).hexdigest()

    def preflight(self, request):
        return 200, {}, CORS

    def session(self, request):
        """The page address for the user the one-time token names; 401 for any other token."""
        key = self._key().decode()
        account = urlparse(self.settings.AMOCRM_BASE_URL.strip()).netloc
        try:
            user = verify(request.headers.get("x-auth-token", ""), key, account_host=account, now=time.time())
        except WebhookRejected as exc:
            return exc.status, {"error": exc.message}, CORS
        form = request.form()
        place, entity, card = text_field(form, "place"), text_field(form, "entity"), text_field(form, "id")
        if place not in PLACES or entity not in ENTITIES or (card and not card.isdigit()):
            return 400, {"error": f"place must be one of {', '.join(PLACES)}; entity and id as the card gives"}, CORS
        lang = "en" if text_field(form, "lang") == "en" else "ru"
        fields = {"place": place, "entity": entity, "id": card, "user": str(user.user_id),
                  "account": str(user.account_id), "lang": lang, "exp": str(int(time.time()) + PAGE_TTL_SECONDS)}
        url = f"{self.host.public_url}{PAGE_PATH}?{urlencode({**fields, 'sig': self._sign(fields)})}"
        return 200, {"url": url, "expires_in": PAGE_TTL_SECONDS}, CORS

    def page(self, request):
        """Our page for a signed address: the card tab or the main page (widget_pages.py), as HTML; the
        settings page's "back" posts the same fields."""
        given = dict(request.query) if request.method == "GET" else request.form()
        try:
            fields = self.checked(_signed_fields(given))
        except WebhookRejected as exc:
            return self.pages.answer(None, exc)
        return self.pages.answer(fields)

    def settings_page(self, request):
        """The playbook settings; the form carries the signed address it was opened from."""
        form = request.form()
        try:
            fields = self.checked(_signed_fields(form))
        except WebhookRejected as exc:
            return self.pages.answer(None, exc)
        return self.pages.answer(fields, form=form)

    def checked(self, query: dict[str, str]) -> dict[str, str]:
        """The address's fields when we signed them and they are fresh; 401 otherwise."""
        q = dict(query)
        sig = q.pop("sig", "")
        if set(q) != {"place", "entity", "id", "user", "account", "lang", "exp"} \
                or not hmac.compare_digest(sig, self._sign(q)):
            raise WebhookRejected(401, "this page address is not ours or was changed")
        if not q["exp"].isdigit() or int(q["exp"]) < time.time():
            raise WebhookRejected(401, "this page address has expired: open the widget again")
        return {**q, "sig": sig}


def _signed_fields(given: dict) -> dict[str, str]:
    names = ("place", "entity", "id", "user", "account", "lang", "exp", "sig")
    return {k: text_field(given, k, max_len=128) for k in names}  # a blank field may not be posted at all
