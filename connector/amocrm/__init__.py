"""The amoCRM adapter: pulls contacts (or companies), won leads and their catalog products; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.adapter import WritebackAdapter
from connector.amocrm import customers, mapping
from connector.amocrm.client import REQUESTS_PER_SECOND, AmoBlocked, AmoClient
from connector.amocrm.oauth import OAuthApp
from connector.amocrm.pull import pages
from connector.amocrm.reading import EVENTS_PAGE, Position, Series, read, since_seconds, stamp
from connector.amocrm.tokens import LongLivedToken, OAuthTokens, TokenStore
from connector.amocrm.writeback import AmoWriteback
from connector.amocrm.writes import WRITE_BATCH
from connector.crm import BatchPolicy, Cursor, PullPage
from connector.errors import CrmRecordError, CrmRequestRejected
from connector.model import Product
from connector.sealing import Sealer

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Moscow"
# Doc: developers.kommo.com/reference/account-parameters - customers_mode: unavailable, disabled, segments,
# dynamic (deprecated), periodicity (recurring purchases)
NOTICES = {
    "ru": {"customers_mode": "В amoCRM включены «Покупатели» (режим {mode}): покупки читаются и из транзакций "
                             "покупателей, а прогноз следующей покупки пишется в их дату следующей покупки.",
           "not_admin": "Токен amoCRM выдан не администратору: список пользователей закрыт, поэтому задачи ставятся "
                        "ответственному из карточки (уволенный менеджер не распознаётся) или пользователю из "
                        "AMOCRM_FALLBACK_USER_ID."},
    "en": {"customers_mode": "amoCRM has Customers on (mode {mode}): purchases are read from the customers' "
                             "transactions too, and the predicted next purchase is written to their next purchase date.",
           "not_admin": "The amoCRM token is not an administrator's: the users list is closed, so tasks go to the "
                        "responsible user on the card (a deactivated manager is not detected) or to "
                        "AMOCRM_FALLBACK_USER_ID."},
}


class AmoAdapter(WritebackAdapter):
    name = "amocrm"
    field_settings = {"gender": "AMOCRM_GENDER_FIELD"}  # where a card field a playbook matches comes from

    def __init__(self, base_url: str, *, access_token: str | None = None, oauth: OAuthApp | None = None,
                 auth_code: str | None = None, state_path=None, customer_key: str = "contact",
                 timezone: str | None = None, requests_per_second: float = REQUESTS_PER_SECOND,
                 write_batch: int = WRITE_BATCH, sleep: Callable[[float], None] | None = None,
                 max_attempts: int | None = None, salesbots: dict[str, int] | None = None,
                 fallback_user_id: int | None = None, gender_field: str | None = None,
                 gender_values: dict[str, str] | None = None, sealer: Sealer | None = None,
                 message_bot: int | None = None) -> None:
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
            self.tokens = TokenStore(state_path, self.account, sealer)
            self.client.auth = OAuthTokens(self.client, self.tokens, oauth, auth_code=auth_code)
        else:
            raise ValueError("amoCRM needs a long-lived access token or an OAuth app with a state path")
        self.customer_key = customer_key
        self.batch = BatchPolicy(size=write_batch)
        self._tz_name = timezone
        self._account_info: dict | None = None
        self._book: customers.Book | None = None  # Customers mode: read by the pull, used by the writes
        self._active_users: set[int] | None = None
        self.users_listed = True  # False once the users list answered 403 (not an administrator's token)
        self.fallback_user_id = fallback_user_id
        # amoCRM has no gender of its own: a contact field named in settings, or none
        self.gender = mapping.GenderField(gender_field, gender_values or {}) if gender_field else None
        # tasks always; card fields, repeat deals and Salesbot starts once `repeat-sales install` ran
        self.writer = AmoWriteback(self.client, customer_key=customer_key, responsible=self._responsible,
                                   timezone=self._timezone, salesbots=salesbots, message_bot=message_bot,
                                   customers_mode=self._customers_mode, customers_book=lambda: self._book)

    # --- account facts -----------------------------------------------------------------------

    def _account(self) -> dict:
        if self._account_info is None:
            info = self.client.request("GET", "/api/v4/account",
                                       params={"with": "datetime_settings,is_api_filter_enabled"}) or {}
            self._account_info = info if isinstance(info, dict) else {}
        return self._account_info

    def filters_enabled(self) -> bool:
        """Whether list filters apply here (Doc: amocrm.ru/developers/content/crm_platform/account-info,
        `with=is_api_filter_enabled`; filters-api: alpha, some accounts only). Not said: assumed on."""
        return self._account().get("is_api_filter_enabled") is not False

    def _timezone(self) -> ZoneInfo:
        """TIMEZONE when set, else the account's own zone (Doc: /api/v4/account?with=datetime_settings)."""
        name = self._tz_name or ((self._account().get("_embedded") or {}).get("datetime_settings") or {}).get("timezone")
        try:
            return ZoneInfo(name or DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(DEFAULT_TIMEZONE)

    def _customers_mode(self) -> str:
        return mapping.text(self._account().get("customers_mode"))

    def _currency(self) -> str:
        return mapping.text(self._account().get("currency")) or "RUB"

    # --- pull ----------------------------------------------------------------------------------

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Products, then customers, then leads with their products, streamed page by page.

        Full: won leads only (status 142, one pipeline at a time). Incremental: every lead changed since
        the cursor (minus a lag), so a won lead moved elsewhere goes to `removed_purchase_ids`, and the
        `lead_deleted` events since then, so a deleted one does too. A cursor that is a `Position`
        (an earlier run stopped) goes on from there.
        """
        tz, currency = self._timezone(), self._currency()
        resume = Position.parse(since.modified_since) if since else None
        base = resume.since if resume else (since.modified_since if since else "")
        filters_on = self.filters_enabled()
        if self._customers_mode() in customers.ON_MODES:
            self._book = customers.read_book(self.client, self.customer_key)
        high_water = since_seconds(base) or 0
        products = self._products(currency)
        yield PullPage(products=list(products.values()))
        plan = self._plan(base, filters_on)
        listed: set[str] = set()  # leads the lists still show: a delete event of theirs was undone (restored)
        names = [s.name for s in plan]
        # a series the plan no longer has (pipelines or filters changed meanwhile): read the window again
        first = names.index(resume.series) if resume and resume.series in names else 0
        for n, series in enumerate(plan[first:], first):
            start = resume if resume and n == first and resume.series == series.name else None
            for rows, position in read(self.client, series, since=base, filters_on=filters_on, start=start):
                page = self._page(series, rows, products, tz, currency)
                if series.key == "leads" and base:
                    listed.update(mapping.text(r.get("id")) for r in rows)
                elif series.key == "events":
                    page.removed_purchase_ids = [i for i in page.removed_purchase_ids if i not in listed]
                high_water = max([high_water, *(stamp(r.get("updated_at")) for r in rows
                                                if series.timestamp == "updated_at")])
                page.cursor = Cursor(str(high_water)) if high_water else None
                page.resume = Cursor(position.text())
                yield page
            if n + 1 < len(plan):  # this series is done: a stop from here on starts at the next one
                yield PullPage(resume=Cursor(Position(base, plan[n + 1].name).text()))

    def _plan(self, since: str, filters_on: bool) -> list[Series]:
        """The series a pull reads, in order: customers, leads (full and filtered: won, per pipeline),
        and on an incremental pull the leads deleted since the cursor."""
        path = "/api/v4/companies" if self.customer_key == "company" else "/api/v4/contacts"
        key = path.rsplit("/", 1)[1]
        plan = [Series(key, path, key)]
        leads = {"with": "contacts,catalog_elements"}
        if not since and filters_on:
            # Doc: developers.kommo.com/reference/leads-list - "you can filter only one stage in one pipeline"
            plan += [Series(f"leads:{p['id']}", "/api/v4/leads", "leads", {
                **leads, "filter[statuses][0][pipeline_id]": p["id"],
                "filter[statuses][0][status_id]": mapping.WON_STATUS_ID}) for p in self._pipelines()]
        else:
            plan.append(Series("leads", "/api/v4/leads", "leads", leads))
        if self._customers_mode() in customers.ON_MODES:  # repeat purchases kept as customers' transactions
            plan.append(Series("transactions", "/api/v4/customers/transactions", "transactions",
                               limit=customers.PAGE, timestamp="created_at"))
        if since:
            # Doc: amocrm.ru/developers/content/crm_platform/events-and-notes - `lead_deleted`, 100 a page;
            # a deleted lead leaves the lists, so only its event tells an incremental pull
            plan.append(Series("deleted", "/api/v4/events", "events", {"filter[type]": "lead_deleted"},
                               limit=EVENTS_PAGE, timestamp="created_at"))
        return plan

    def _page(self, series: Series, rows: list[dict], products: dict[str, Product], tz: ZoneInfo,
              currency: str) -> PullPage:
        page = PullPage()
        if series.key == "events":
            page.removed_purchase_ids += [mapping.text(r.get("entity_id")) for r in rows if r.get("entity_id")]
            return page
        if series.key == "transactions":
            for raw in rows:
                try:
                    page.purchases.append(customers.purchase_from_transaction(raw, self._book, tz, currency))
                except CrmRecordError as exc:
                    log.warning("skipped transaction record: %s", exc)
                    page.skipped += 1
            return page
        if series.key != "leads":
            to_customer = (mapping.customer_from_company if self.customer_key == "company"
                           else lambda raw, tz: mapping.customer_from_contact(raw, tz, self.gender))
            for raw in rows:
                try:
                    page.customers.append(to_customer(raw, tz))
                except CrmRecordError as exc:
                    log.warning("skipped customer record: %s", exc)
                    page.skipped += 1
            return page
        for raw in rows:
            if not mapping.is_won(raw):
                page.removed_purchase_ids.append(mapping.text(raw.get("id")))
                continue
            try:
                page.purchases.append(mapping.purchase_from_lead(raw, products, self.customer_key, tz, currency))
            except CrmRecordError as exc:
                log.warning("skipped lead record: %s", exc)
                page.skipped += 1
        return page

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
        """The customer's manager if still active, else AMOCRM_FALLBACK_USER_ID or the token's own user.

        Without an administrator's token the users list is closed (403): the manager is then taken as
        the CRM names them, and only a missing one goes to the fallback.
        """
        active = self._active()
        fallback = self.fallback_user_id or int(self._account().get("current_user_id") or 0)
        if manager_id and manager_id.isdigit() and (active is None or int(manager_id) in active):
            return int(manager_id)
        return fallback or min(active or (), default=0)

    def _active(self) -> set[int] | None:
        """Ids of the active users; None when the token's user may not list them.

        Doc: developers.kommo.com/reference/users-list - "available for administrator users only", 403
        "Insufficient rights to call this method" otherwise.
        """
        if self._active_users is None and self.users_listed:
            try:
                found: set[int] = set()
                for rows in pages(self.client, "/api/v4/users", "users"):
                    found.update(int(u["id"]) for u in rows
                                 if (u.get("rights") or {}).get("is_active", True) and u.get("id"))
                self._active_users = found
            except CrmRequestRejected as exc:
                if exc.status != 403 or isinstance(exc, AmoBlocked):
                    raise
                self.users_listed = False
                log.warning("amocrm users list refused (the token's user is not an administrator): "
                            "tasks go to the customers' managers as the CRM names them, else the fallback user")
        return self._active_users

    def account_notices(self, lang: str) -> list[str]:
        """What about this account the run summary should say: Customers mode, a non-admin token."""
        words = NOTICES.get(lang, NOTICES["ru"])
        out = []
        mode = mapping.text(self._account().get("customers_mode"))
        if mode in ("periodicity", "segments"):
            out.append(words["customers_mode"].format(mode=mode))
        if not self.users_listed:
            out.append(words["not_admin"])
        return out

    def request_count(self) -> int:
        return self.client.requests

    def close(self) -> None:
        self.client.close()
        if self.tokens is not None:
            self.tokens.close()


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
              "salesbots": settings.salesbots(), "message_bot": settings.AMOCRM_SALESBOT_ID,
              "fallback_user_id": settings.AMOCRM_FALLBACK_USER_ID,
              "gender_field": settings.AMOCRM_GENDER_FIELD, "gender_values": settings.gender_values("AMOCRM_GENDER_VALUES")}
    base = settings.AMOCRM_BASE_URL.strip()
    if settings.AMOCRM_ACCESS_TOKEN is not None:
        return share_budget(AmoAdapter(base, access_token=settings.AMOCRM_ACCESS_TOKEN.get_secret_value(), **common),
                            settings)
    settings.require("AMOCRM_CLIENT_ID", "AMOCRM_CLIENT_SECRET", "AMOCRM_REDIRECT_URI")
    app = OAuthApp(settings.AMOCRM_CLIENT_ID, settings.AMOCRM_CLIENT_SECRET.get_secret_value(),
                   settings.AMOCRM_REDIRECT_URI)
    code = settings.AMOCRM_AUTH_CODE.get_secret_value() if settings.AMOCRM_AUTH_CODE is not None else None
    return share_budget(AmoAdapter(base, oauth=app, auth_code=code, state_path=settings.state_target,
                                   sealer=settings.sealer(), **common), settings)


def share_budget(adapter: AmoAdapter, settings) -> AmoAdapter:
    """QUEUE_URL set: the account's 7 requests in any second (AMOCRM_REQUESTS_PER_SECOND) shared by every
    worker in Redis (connector/jobs/budget.py); the client's own limiter stands in while Redis is away."""
    if settings.QUEUE_URL is not None:
        from connector.jobs.budget import shared

        adapter.client.limiter = shared(settings, f"amocrm:{adapter.client.host}", shape="window",
                                        size=int(settings.AMOCRM_REQUESTS_PER_SECOND), fallback=adapter.client.limiter)
    return adapter


__all__ = ["AmoAdapter", "make_adapter"]
