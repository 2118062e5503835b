"""The amoCRM adapter: pulls contacts (or companies), won leads and their catalog products; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.adapter import WritebackAdapter
from connector.amocrm import mapping
from connector.amocrm.client import REQUESTS_PER_SECOND, AmoClient
from connector.amocrm.oauth import OAuthApp
from connector.amocrm.pull import pages, updated_since, won_statuses
from connector.amocrm.tokens import LongLivedToken, OAuthTokens, TokenStore
from connector.amocrm.writeback import AmoWriteback
from connector.amocrm.writes import WRITE_BATCH
from connector.crm import BatchPolicy, Cursor, PullPage
from connector.errors import CrmRecordError
from connector.model import Product

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Moscow"


class AmoAdapter(WritebackAdapter):
    name = "amocrm"
    field_settings = {"gender": "AMOCRM_GENDER_FIELD"}  # where a card field a playbook matches comes from

    def __init__(self, base_url: str, *, access_token: str | None = None, oauth: OAuthApp | None = None,
                 auth_code: str | None = None, state_path=None, customer_key: str = "contact",
                 timezone: str | None = None, requests_per_second: float = REQUESTS_PER_SECOND,
                 write_batch: int = WRITE_BATCH, sleep: Callable[[float], None] | None = None,
                 max_attempts: int | None = None, salesbots: dict[str, int] | None = None,
                 fallback_user_id: int | None = None, gender_field: str | None = None,
                 gender_values: dict[str, str] | None = None) -> None:
        kw = {"requests_per_second": requests_per_second}
        if sleep is not None:
            kw["sleep"] = sleep
        if max_attempts is not None:
            kw["max_attempts"] = max_attempts
        self.client = AmoClient(base_url, **kw)
        self.account = f"amocrm:{self.client.host}"
        self.tokens: TokenStore | None = None
        if access_token:
            self.client.auth = LongLivedToken(access_token)
        elif oauth is not None and state_path is not None:
            self.tokens = TokenStore(state_path, self.account)
            self.client.auth = OAuthTokens(self.client, self.tokens, oauth, auth_code=auth_code)
        else:
            raise ValueError("amoCRM needs a long-lived access token or an OAuth app with a state path")
        self.customer_key = customer_key
        self.batch = BatchPolicy(size=write_batch)
        self._tz_name = timezone
        self._account_info: dict | None = None
        self._active_users: set[int] | None = None
        self.fallback_user_id = fallback_user_id
        # amoCRM has no gender of its own: a contact field named in settings, or none
        self.gender = mapping.GenderField(gender_field, gender_values or {}) if gender_field else None
        # tasks always; card fields, repeat deals and Salesbot starts once `repeat-sales install` ran
        self.writer = AmoWriteback(self.client, customer_key=customer_key, responsible=self._responsible,
                                   timezone=self._timezone, salesbots=salesbots)

    # --- account facts -----------------------------------------------------------------------

    def _account(self) -> dict:
        if self._account_info is None:
            info = self.client.request("GET", "/api/v4/account", params={"with": "datetime_settings"}) or {}
            self._account_info = info if isinstance(info, dict) else {}
        return self._account_info

    def _timezone(self) -> ZoneInfo:
        """TIMEZONE when set, else the account's own zone (Doc: /api/v4/account?with=datetime_settings)."""
        name = self._tz_name or ((self._account().get("_embedded") or {}).get("datetime_settings") or {}).get("timezone")
        try:
            return ZoneInfo(name or DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(DEFAULT_TIMEZONE)

    def _currency(self) -> str:
        return mapping.text(self._account().get("currency")) or "RUB"

    # --- pull ----------------------------------------------------------------------------------

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Products, then customers, then leads with their products, streamed page by page.

        Full: won leads only (status 142 in every pipeline). Incremental: every lead changed since the
        cursor (minus a lag), so a won lead moved elsewhere goes to `removed_purchase_ids`.
        """
        tz, currency = self._timezone(), self._currency()
        high_water = int(float(since.modified_since)) if since else 0
        products = self._products(currency)
        yield PullPage(products=list(products.values()))
        changed = updated_since(since.modified_since if since else None)
        path, to_customer = (("/api/v4/companies", mapping.customer_from_company) if self.customer_key == "company"
                             else ("/api/v4/contacts", lambda raw, tz: mapping.customer_from_contact(raw, tz, self.gender)))
        key = path.rsplit("/", 1)[1]
        for rows in pages(self.client, path, key, {**changed, **({} if since else {"order[id]": "asc"})}):
            page = PullPage()
            for raw in rows:
                high_water = max(high_water, _stamp(raw.get("updated_at")))
                try:
                    page.customers.append(to_customer(raw, tz))
                except CrmRecordError as exc:
                    log.warning("skipped customer record: %s", exc)
                    page.skipped += 1
            page.cursor = Cursor(str(high_water)) if high_water else None
            yield page
        lead_filter = dict(changed) if since else {**won_statuses(self._pipelines(), mapping.WON_STATUS_ID),
                                                   "order[id]": "asc"}
        lead_filter["with"] = "contacts,catalog_elements"
        for rows in pages(self.client, "/api/v4/leads", "leads", lead_filter):
            page = PullPage()
            for raw in rows:
                high_water = max(high_water, _stamp(raw.get("updated_at")))
                if not mapping.is_won(raw):
                    page.removed_purchase_ids.append(mapping.text(raw.get("id")))
                    continue
                try:
                    page.purchases.append(mapping.purchase_from_lead(raw, products, self.customer_key, tz, currency))
                except CrmRecordError as exc:
                    log.warning("skipped lead record: %s", exc)
                    page.skipped += 1
            page.cursor = Cursor(str(high_water)) if high_water else None
            yield page

    def _pipelines(self) -> list[dict]:
        body = self.client.request("GET", "/api/v4/leads/pipelines") or {}
        return [p for p in (body.get("_embedded") or {}).get("pipelines") or [] if isinstance(p, dict)]

    def _products(self, currency: str) -> dict[str, Product]:
        products: dict[str, Product] = {}
        for catalogs in pages(self.client, "/api/v4/catalogs", "catalogs"):
            for catalog in catalogs:
                if catalog.get("type") != "products":
                    continue
                for rows in pages(self.client, f"/api/v4/catalogs/{catalog['id']}/elements", "elements",
                                  short_page_ends=False):
                    for raw in rows:
                        try:
                            product = mapping.product_from_element(raw, currency)
                        except CrmRecordError as exc:
                            log.warning("skipped product record: %s", exc)
                            continue
                        products[product.id] = product
        return products

    # --- write ---------------------------------------------------------------------------------

    def _responsible(self, manager_id: str | None) -> int:
        """The customer's manager if still active, else the token's own user."""
        if self._active_users is None:
            self._active_users = set()
            for rows in pages(self.client, "/api/v4/users", "users"):
                self._active_users.update(int(u["id"]) for u in rows
                                          if (u.get("rights") or {}).get("is_active", True) and u.get("id"))
        fallback = self.fallback_user_id or int(self._account().get("current_user_id") or 0)
        if manager_id and manager_id.isdigit() and int(manager_id) in self._active_users:
            return int(manager_id)
        return fallback or min(self._active_users, default=0)

    def request_count(self) -> int:
        return self.client.requests

    def close(self) -> None:
        self.client.close()
        if self.tokens is not None:
            self.tokens.close()


def _stamp(value: object) -> int:
    try:
        return int(float(value)) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def make_adapter(settings, installs=None) -> AmoAdapter:
    """AMOCRM_BASE_URL plus a long-lived AMOCRM_ACCESS_TOKEN, or the OAuth keys (first run: AMOCRM_AUTH_CODE).

    `installs` is not needed: the OAuth tokens live in the state file the adapter opens.
    """
    from connector.errors import SettingsError
    from connector.settings import is_loopback

    settings.require("AMOCRM_BASE_URL")
    parsed = urlparse(settings.AMOCRM_BASE_URL.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError("AMOCRM_BASE_URL", "must be the account's address", hint="e.g. https://subdomain.amocrm.ru")
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        raise SettingsError("AMOCRM_BASE_URL", "a real account needs https:// (plain http is only for a local "
                            "emulator)", hint="e.g. https://subdomain.amocrm.ru")
    if settings.AMOCRM_ACCESS_TOKEN is None and settings.AMOCRM_CLIENT_ID is None:
        raise SettingsError("AMOCRM_ACCESS_TOKEN", "is not set", hint="set a long-lived token, or the OAuth keys "
                            "AMOCRM_CLIENT_ID, AMOCRM_CLIENT_SECRET, AMOCRM_REDIRECT_URI and (first run) AMOCRM_AUTH_CODE")
    common = {"customer_key": settings.CUSTOMER_KEY, "timezone": settings.TIMEZONE,
              "requests_per_second": settings.AMOCRM_REQUESTS_PER_SECOND, "write_batch": settings.AMOCRM_WRITE_BATCH,
              "salesbots": settings.salesbots(), "fallback_user_id": settings.AMOCRM_FALLBACK_USER_ID,
              "gender_field": settings.AMOCRM_GENDER_FIELD, "gender_values": settings.gender_values("AMOCRM_GENDER_VALUES")}
    base = settings.AMOCRM_BASE_URL.strip()
    if settings.AMOCRM_ACCESS_TOKEN is not None:
        return AmoAdapter(base, access_token=settings.AMOCRM_ACCESS_TOKEN.get_secret_value(), **common)
    settings.require("AMOCRM_CLIENT_ID", "AMOCRM_CLIENT_SECRET", "AMOCRM_REDIRECT_URI")
    app = OAuthApp(settings.AMOCRM_CLIENT_ID, settings.AMOCRM_CLIENT_SECRET.get_secret_value(),
                   settings.AMOCRM_REDIRECT_URI)
    code = settings.AMOCRM_AUTH_CODE.get_secret_value() if settings.AMOCRM_AUTH_CODE is not None else None
    return AmoAdapter(base, oauth=app, auth_code=code, state_path=settings.state_path, **common)


__all__ = ["AmoAdapter", "make_adapter"]
