"""The Bitrix24 adapter: pulls contacts (or companies), won deals and product rows; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from connector.bitrix import mapping
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import ListSpec, ProductRowReader, list_pages, read_lists, since_filter
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
# PROPERTY_* brings product properties as PROPERTY_<id> (Doc: crm/outdated/products/crm-product-list.md)
PRODUCT_SELECT = ["ID", "NAME", "PRICE", "CURRENCY_ID", "SECTION_ID", "PROPERTY_*"]
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
        """Catalogue, customers, then deals with their product rows, streamed batch by batch.

        Full: won deals only. Incremental: every deal changed since the cursor, so a won deal that
        was reopened or lost leaves the history (`removed_purchase_ids`).
        """
        high_water = since.modified_since if since else ""
        changed = since_filter(since.modified_since if since else None, mapping.moment)
        customer_method, select, to_customer = (
            ("crm.company.list", COMPANY_SELECT, mapping.customer_from_company)
            if self.customer_key == "company" else
            ("crm.contact.list", CONTACT_SELECT, mapping.customer_from_contact))
        specs = [
            ListSpec("sections", "crm.productsection.list", {"select": ["ID", "NAME"]}, optional=True),
            ListSpec("cycle", "crm.product.property.list", {"filter": {"CODE": CYCLE_PROPERTY_CODE}}, optional=True),
            ListSpec("products", "crm.product.list", {"select": PRODUCT_SELECT}),
            ListSpec("users", "user.get", {}, optional=True),
            ListSpec("customers", customer_method, {"filter": changed, "select": select}),
            # incremental: every changed deal (a won deal may have been reopened); full: won deals only
            ListSpec("deals", "crm.deal.list", {"filter": dict(changed) if since else {"STAGE_SEMANTIC_ID": mapping.WON},
                                                "select": DEAL_SELECT}),
        ]
        sections: dict[str, str] = {}
        cycle_field: str | None = None
        products: dict[str, Product] = {}
        rows_reader = ProductRowReader(self.client)
        for label, rows in read_lists(self.client, specs):
            page = PullPage()
            if label == "sections":
                sections.update({mapping.text(r.get("ID")): mapping.text(r.get("NAME")) for r in rows})
                continue
            if label == "cycle":
                cycle_field = next((f"PROPERTY_{mapping.text(r.get('ID'))}" for r in rows
                                    if mapping.text(r.get("CODE")) == CYCLE_PROPERTY_CODE), cycle_field)
                continue
            if label == "users":
                self._active_users = (self._active_users or set()) | {
                    mapping.text(r.get("ID")) for r in rows if str(r.get("ACTIVE")).lower() in ("true", "y", "1")}
                continue
            if label == "products":
                page.products = self._map(rows, lambda raw, cf=cycle_field: mapping.product_from_raw(raw, sections, cf), page)
                products.update({p.id: p for p in page.products})
            elif label == "customers":
                page.customers = self._map(rows, to_customer, page)
            else:
                won = [r for r in rows if mapping.text(r.get("STAGE_SEMANTIC_ID")) == mapping.WON]
                page.removed_purchase_ids = [mapping.text(r.get("ID")) for r in rows
                                             if mapping.text(r.get("STAGE_SEMANTIC_ID")) != mapping.WON]
                lines = rows_reader.rows_for([mapping.text(r.get("ID")) for r in won]) if won else {}
                page.purchases = [_with_categories(p, products) for p in self._map(
                    won, lambda raw, ln=lines: mapping.purchase_from_deal(
                        raw, ln.get(mapping.text(raw.get("ID")), []), self.customer_key, self.tz), page)]
            for raw in rows:
                high_water = max(high_water, mapping.text(raw.get("DATE_MODIFY")), key=_sortable)
            page.cursor = Cursor(high_water) if high_water else None
            yield page

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
