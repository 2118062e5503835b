"""The Bitrix24 adapter: pulls contacts (or companies), won deals and product rows; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from zoneinfo import ZoneInfo

from connector.adapter import WritebackAdapter
from connector.bitrix import mapping
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import (
    DEALS_PER_ROWS_READ,
    PagedRead,
    Pager,
    list_pages,
    rows_read,
    since_filter,
    take_rows,
)
from connector.bitrix.writeback import BitrixWriteback
from connector.crm import BatchPolicy, Cursor, PullPage
from connector.errors import CrmRecordError
from connector.model import Customer, Product, Purchase

log = logging.getLogger(__name__)

# HONORIFIC ("Обращение") carries gender; it is a standard field, outside "UF_*"
CONTACT_SELECT = ["ID", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "ASSIGNED_BY_ID",
                  "COMPANY_ID", "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
COMPANY_SELECT = ["ID", "TITLE", "ASSIGNED_BY_ID", "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
DEAL_SELECT = ["ID", "TITLE", "STAGE_ID", "STAGE_SEMANTIC_ID", "CATEGORY_ID", "CLOSEDATE", "OPPORTUNITY",
               "CURRENCY_ID", "CONTACT_ID", "COMPANY_ID", "ASSIGNED_BY_ID", "DATE_MODIFY"]
# PROPERTY_* brings product properties as PROPERTY_<id> (Doc: crm/outdated/products/crm-product-list.md)
PRODUCT_SELECT = ["ID", "NAME", "PRICE", "CURRENCY_ID", "SECTION_ID", "PROPERTY_*"]
CYCLE_PROPERTY_CODE = "RS_CYCLE_DAYS"  # product property: days one unit lasts (consumables)


class BitrixAdapter(WritebackAdapter):
    name = "bitrix"
    field_settings = {"gender": "BITRIX_GENDER_FIELD"}  # where a card field a playbook matches comes from

    def __init__(self, webhook_url: str, *, customer_key: str = "contact", timezone: str | None = None,
                 requests_per_second: float = 2.0, request_pool: int = 50, write_batch: int = 50,
                 fallback_user_id: int | None = None, oauth_token=None, gender_field: str = mapping.HONORIFIC,
                 gender_values: dict[str, str] | None = None) -> None:
        # oauth_token: the local app's async token function (webhook_url is then the portal's /rest/ root)
        self.client = BitrixClient(webhook_url, requests_per_second=requests_per_second,
                                   request_pool=request_pool, oauth_token=oauth_token)
        self.customer_key = customer_key
        self.tz = ZoneInfo(timezone) if timezone else None
        self.batch = BatchPolicy(size=write_batch)
        self.account = f"bitrix:{self.client.portal}"
        self.fallback_user = str(fallback_user_id or self.client.webhook_user or 1)
        self.gender = mapping.GenderSource(gender_field, gender_values or {})
        self._active_users: set[str] | None = None
        # tasks always; card fields, repeat deals and automation once `repeat-sales install` ran
        self.writer = BitrixWriteback(self.client, customer_key=customer_key, responsible=self._responsible)

    # --- pull ----------------------------------------------------------------------------

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Catalogue, customers, then won deals with their product rows, streamed batch by batch.

        Full: won deals only. Incremental: every deal changed since the cursor, so a won deal that
        was reopened or lost leaves the history (`removed_purchase_ids`). Every page of every list
        shares one queue (`Pager`), so each request carries 50 commands; raw deals wait in memory
        only until their rows read is in (a few thousand at most).
        """
        changed = since_filter(since.modified_since if since else None, mapping.moment)
        customer_method, select, to_customer = (
            ("crm.company.list", COMPANY_SELECT, mapping.customer_from_company)
            if self.customer_key == "company" else
            ("crm.contact.list", CONTACT_SELECT, lambda raw: mapping.customer_from_contact(raw, self.gender)))
        pager = Pager(self.client)
        catalogue = [pager.add(read) for read in (
            PagedRead("sections", "crm.productsection.list", {"select": ["ID", "NAME"]}, optional=True, priority=0),
            PagedRead("cycle", "crm.product.property.list", {"filter": {"CODE": CYCLE_PROPERTY_CODE}},
                      optional=True, priority=0),
            PagedRead("products", "crm.product.list", {"select": PRODUCT_SELECT}, priority=0),
            PagedRead("users", "user.get", {}, optional=True, priority=0))]
        if self.customer_key == "contact" and self.gender.field_name == mapping.HONORIFIC:
            # this portal's names of the HONORIFIC ids; it rides in the first batch, before any contact
            pager.add(PagedRead("honorific", "crm.status.list", {"filter": {"ENTITY_ID": mapping.HONORIFIC}},
                                optional=True, priority=0))
        pager.add(PagedRead("customers", customer_method, {"filter": changed, "select": select}, priority=2))
        # incremental: every changed deal (a won deal may have been reopened); full: won deals only
        deals = pager.add(PagedRead("deals", "crm.deal.list", {
            "filter": dict(changed) if since else {"STAGE_SEMANTIC_ID": mapping.WON}, "select": DEAL_SELECT},
            priority=3))
        raw_catalogue: dict[str, list[dict]] = {read.label: [] for read in catalogue}
        products: dict[str, Product] | None = None
        waiting: list[dict] = []  # won deals not yet in a rows read
        held: list[Purchase] = []  # purchases complete before the catalogue (their categories wait)
        high_water = _HighWater(since.modified_since if since else "")
        for results in pager.batches():
            page = PullPage()
            for result in results:
                label = result.read.label
                if label == "honorific":
                    self.gender.learn_honorifics(result.rows)
                elif label in raw_catalogue:
                    raw_catalogue[label].extend(result.rows)
                elif label == "rows":
                    group = take_rows(result)
                    if result.last:
                        held += self._map(group.deals, lambda raw, g=group: mapping.purchase_from_deal(
                            raw, g.rows[mapping.text(raw.get("ID"))], self.customer_key, self.tz), page)
                else:
                    high_water.see(result.rows)
                    if label == "customers":
                        page.customers += self._map(result.rows, to_customer, page)
                        continue
                    for raw in result.rows:
                        if mapping.text(raw.get("STAGE_SEMANTIC_ID")) == mapping.WON:
                            waiting.append(raw)
                        else:
                            page.removed_purchase_ids.append(mapping.text(raw.get("ID")))
            while len(waiting) >= DEALS_PER_ROWS_READ or (waiting and deals.finished):
                pager.add(rows_read(waiting[:DEALS_PER_ROWS_READ], priority=1))
                waiting = waiting[DEALS_PER_ROWS_READ:]
            if products is None and all(read.finished for read in catalogue):
                products = self._catalogue(raw_catalogue, page)
            if products is not None and held:
                page.purchases, held = [_with_categories(p, products) for p in held], []
            page.cursor = high_water.cursor()
            yield page

    def _catalogue(self, raw: dict[str, list[dict]], page: PullPage) -> dict[str, Product]:
        """Products with their section (category) and cycle property; active users on the side."""
        sections = {mapping.text(r.get("ID")): mapping.text(r.get("NAME")) for r in raw["sections"]}
        cycle_field = next((f"PROPERTY_{mapping.text(r.get('ID'))}" for r in raw["cycle"]
                            if mapping.text(r.get("CODE")) == CYCLE_PROPERTY_CODE), None)
        if raw["users"]:
            self._active_users = (self._active_users or set()) | {
                mapping.text(r.get("ID")) for r in raw["users"] if str(r.get("ACTIVE")).lower() in ("true", "y", "1")}
        page.products = self._map(raw["products"], lambda r: mapping.product_from_raw(r, sections, cycle_field), page)
        return {p.id: p for p in page.products}

    @staticmethod
    def _map(rows: list[dict], to_record, page: PullPage) -> list:
        """Map each raw record; one that cannot be mapped is skipped and counted, never fatal."""
        out = []
        for raw in rows:
            try:
                out.append(to_record(raw))
            except CrmRecordError as exc:
                log.warning("skipped record: %s", exc)
                page.skipped += 1
        return out

    # --- write ---------------------------------------------------------------------------

    def _responsible(self, manager_id: str | None) -> str:
        """The customer's manager if still active, else the fallback user."""
        if self._active_users is None and not self.writer.rights.allows("users"):
            return manager_id or self.fallback_user  # no `user` scope: the manager the card names
        if self._active_users is None:
            self._active_users = set()
            for rows in list_pages(self.client, "user.get", {}):
                self._active_users.update(mapping.text(r.get("ID")) for r in rows
                                          if str(r.get("ACTIVE")).lower() in ("true", "y", "1"))
        return manager_id if manager_id and manager_id in self._active_users else self.fallback_user

    def request_count(self) -> int:
        return self.client.requests

    def close(self) -> None:
        self.client.close()


class _HighWater:
    """The latest DATE_MODIFY seen, compared as moments whatever offset each was written in."""

    def __init__(self, start: str) -> None:
        self.value, self.stamp = start, _stamp(start) if start else 0.0

    def see(self, rows: list[dict]) -> None:
        for raw in rows:
            value = mapping.text(raw.get("DATE_MODIFY"))
            if value and value != self.value:
                stamp = _stamp(value)
                if stamp > self.stamp:
                    self.value, self.stamp = value, stamp

    def cursor(self) -> Cursor | None:
        return Cursor(self.value) if self.value else None


def _stamp(value: str) -> float:
    try:
        moment = mapping.moment(value, field="DATE_MODIFY")
    except CrmRecordError:
        return 0.0
    return moment.timestamp() if moment else 0.0


def _with_categories(purchase: Purchase, products: dict[str, Product]) -> Purchase:
    """The purchase with each line item's category from the catalogue; every other field kept as it is."""
    if not purchase.items:
        return purchase
    items = tuple(replace(i, category=products[i.product_id].category) if i.product_id in products
                  else replace(i, category=None) for i in purchase.items)
    return replace(purchase, items=items)


def make_adapter(settings, installs=None) -> BitrixAdapter:
    """The incoming webhook when set; without it, the installed local app's OAuth grant (`serve`)."""
    common = {"customer_key": settings.CUSTOMER_KEY, "timezone": settings.TIMEZONE,
              "requests_per_second": settings.BITRIX_REQUESTS_PER_SECOND, "request_pool": settings.BITRIX_REQUEST_POOL,
              "write_batch": settings.BITRIX_WRITE_BATCH, "fallback_user_id": settings.BITRIX_FALLBACK_USER_ID,
              "gender_field": settings.BITRIX_GENDER_FIELD,
              "gender_values": settings.gender_values("BITRIX_GENDER_VALUES")}
    if settings.BITRIX_WEBHOOK_URL is None and installs is not None and installs.get("bitrix"):
        from connector.bitrix.app_auth import app_tokens

        tokens = app_tokens(settings, installs)  # the app's OAuth grant: `/rest/` + `auth`
        return BitrixAdapter(tokens.grant().client_endpoint, oauth_token=tokens.token_func, **common)
    settings.require("BITRIX_WEBHOOK_URL")
    return BitrixAdapter(settings.BITRIX_WEBHOOK_URL.get_secret_value(), **common)


__all__ = ["BitrixAdapter", "Customer", "make_adapter"]
