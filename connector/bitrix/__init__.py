"""The Bitrix24 adapter: pulls contacts (or companies), won deals and product rows; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from connector.bitrix import mapping
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import ProductRowReader, list_pages, since_filter
from connector.bitrix.writes import TaskWriter
from connector.crm import CrmRef, Cursor, InstallReport, PullPage, WriteOutcome
from connector.errors import CrmRecordError
from connector.model import Action, ActionKind, Customer, LineItem, Product, Purchase

log = logging.getLogger(__name__)

CONTACT_SELECT = ["ID", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "ASSIGNED_BY_ID", "COMPANY_ID",
                  "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
COMPANY_SELECT = ["ID", "TITLE", "ASSIGNED_BY_ID", "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
DEAL_SELECT = ["ID", "TITLE", "STAGE_ID", "STAGE_SEMANTIC_ID", "CATEGORY_ID", "CLOSEDATE", "OPPORTUNITY",
               "CURRENCY_ID", "CONTACT_ID", "COMPANY_ID", "ASSIGNED_BY_ID", "DATE_MODIFY"]
PRODUCT_SELECT = ["ID", "NAME", "PRICE", "CURRENCY_ID", "SECTION_ID"]
CYCLE_PROPERTY_CODE = "RS_CYCLE_DAYS"  # product property: days one unit lasts (consumables)


class BitrixAdapter:
    name = "bitrix"
    capabilities = frozenset({ActionKind.TASK})

    def __init__(self, webhook_url: str, *, customer_key: str = "contact", timezone: str | None = None,
                 requests_per_second: float = 2.0, request_pool: int = 50, write_batch: int = 50,
                 fallback_user_id: int | None = None) -> None:
        self.client = BitrixClient(webhook_url, requests_per_second=requests_per_second,
                                   request_pool=request_pool)
        self.customer_key = customer_key
        self.tz = ZoneInfo(timezone) if timezone else None
        self.write_batch = write_batch
        self.account = f"bitrix:{self.client.portal}"
        self.fallback_user = str(fallback_user_id or self.client.webhook_user or 1)
        self._active_users: set[str] | None = None
        self.writer = TaskWriter(self.client, customer_key=customer_key, responsible=self._responsible)

    # --- pull ----------------------------------------------------------------------------

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Products, then customers, then deals with their product rows, streamed page by page."""
        high_water = since.modified_since if since else ""
        products = self._products()
        yield PullPage(products=list(products.values()))
        changed = since_filter(since.modified_since if since else None, mapping.moment)
        customer_method, select, to_customer = (
            ("crm.company.list", COMPANY_SELECT, mapping.customer_from_company)
            if self.customer_key == "company" else
            ("crm.contact.list", CONTACT_SELECT, mapping.customer_from_contact))
        for rows in list_pages(self.client, customer_method, {"filter": changed, "select": select}):
            page = PullPage()
            for raw in rows:
                high_water = max(high_water, mapping.text(raw.get("DATE_MODIFY")), key=_sortable)
                try:
                    page.customers.append(to_customer(raw))
                except CrmRecordError as exc:
                    log.warning("skipped customer record: %s", exc)
                    page.skipped += 1
            page.cursor = Cursor(high_water) if high_water else None
            yield page
        # incremental: every changed deal (a won deal may have been reopened); full: won deals only
        deal_filter = dict(changed) if since else {"STAGE_SEMANTIC_ID": mapping.WON}
        rows_reader = ProductRowReader(self.client)
        for rows in list_pages(self.client, "crm.deal.list", {"filter": deal_filter, "select": DEAL_SELECT}):
            page = PullPage()
            won = [r for r in rows if mapping.text(r.get("STAGE_SEMANTIC_ID")) == mapping.WON]
            page.removed_purchase_ids = [mapping.text(r.get("ID")) for r in rows
                                         if mapping.text(r.get("STAGE_SEMANTIC_ID")) != mapping.WON]
            lines = rows_reader.rows_for([mapping.text(r.get("ID")) for r in won]) if won else {}
            for raw in rows:
                high_water = max(high_water, mapping.text(raw.get("DATE_MODIFY")), key=_sortable)
            for raw in won:
                try:
                    purchase = mapping.purchase_from_deal(raw, lines.get(mapping.text(raw.get("ID")), []),
                                                          self.customer_key, self.tz)
                except CrmRecordError as exc:
                    log.warning("skipped deal record: %s", exc)
                    page.skipped += 1
                    continue
                page.purchases.append(_with_categories(purchase, products))
            page.cursor = Cursor(high_water) if high_water else None
            yield page

    def _products(self) -> dict[str, Product]:
        """Catalogue with categories (sections) and the consumption-cycle property found by its CODE.

        Product properties come back as PROPERTY_<id>; the id differs per portal, the code does not
        (Doc: api-reference/crm/outdated/products/crm-product-property-list.md).
        """
        sections: dict[str, str] = {}
        for rows in list_pages(self.client, "crm.productsection.list", {"select": ["ID", "NAME"]}):
            sections.update({mapping.text(r.get("ID")): mapping.text(r.get("NAME")) for r in rows})
        cycle_field = None
        for rows in list_pages(self.client, "crm.product.property.list", {"filter": {"CODE": CYCLE_PROPERTY_CODE}}):
            cycle_field = next((f"PROPERTY_{mapping.text(r.get('ID'))}" for r in rows
                                if mapping.text(r.get("CODE")) == CYCLE_PROPERTY_CODE), cycle_field)
        select = PRODUCT_SELECT + ([cycle_field] if cycle_field else [])
        products: dict[str, Product] = {}
        for rows in list_pages(self.client, "crm.product.list", {"select": select}):
            for raw in rows:
                try:
                    product = mapping.product_from_raw(raw, sections, cycle_field)
                except CrmRecordError as exc:
                    log.warning("skipped product record: %s", exc)
                    continue
                products[product.id] = product
        return products

    # --- write ---------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        return self.writer.write(actions)

    def find_written(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        keys = list(keys)
        return self.writer.find(keys) if keys else {}

    def all_written(self) -> dict[str, CrmRef]:
        return self.writer.all_markers()

    def _responsible(self, manager_id: str | None) -> str:
        """The customer's manager if still active, else the fallback user."""
        if self._active_users is None:
            self._active_users = set()
            for rows in list_pages(self.client, "user.get", {}):
                self._active_users.update(mapping.text(r.get("ID")) for r in rows
                                          if str(r.get("ACTIVE")).lower() in ("true", "y", "1"))
        return manager_id if manager_id and manager_id in self._active_users else self.fallback_user

    def install(self, *, uninstall: bool = False) -> InstallReport:
        return InstallReport()

    def request_count(self) -> int:
        return self.client.requests

    def close(self) -> None:
        self.client.close()


def _sortable(value: str) -> float:
    """Compare DATE_MODIFY values as moments, whatever offset each was written in."""
    try:
        moment = mapping.moment(value, field="DATE_MODIFY")
    except CrmRecordError:
        return 0.0
    return moment.timestamp() if moment else 0.0


def _with_categories(purchase: Purchase, products: dict[str, Product]) -> Purchase:
    if not purchase.items:
        return purchase
    items = tuple(
        LineItem(i.product_id, i.name, i.quantity, i.price,
                 products[i.product_id].category if i.product_id in products else None)
        for i in purchase.items)
    return Purchase(purchase.id, purchase.customer_id, purchase.date, purchase.amount, purchase.currency,
                    items, purchase.manager_id, purchase.title)


def make_adapter(settings) -> BitrixAdapter:
    settings.require("BITRIX_WEBHOOK_URL")
    return BitrixAdapter(
        settings.BITRIX_WEBHOOK_URL.get_secret_value(), customer_key=settings.CUSTOMER_KEY,
        timezone=settings.TIMEZONE, requests_per_second=settings.BITRIX_REQUESTS_PER_SECOND,
        request_pool=settings.BITRIX_REQUEST_POOL, write_batch=settings.BITRIX_WRITE_BATCH,
        fallback_user_id=settings.BITRIX_FALLBACK_USER_ID,
    )


__all__ = ["BitrixAdapter", "Customer", "make_adapter"]
