"""The Bitrix24 adapter: pulls contacts (or companies), won deals and product rows; writes tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from zoneinfo import ZoneInfo

from connector.adapter import WritebackAdapter
from connector.bitrix import mapping
from connector.bitrix.budget import OperatingBudget
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import KeysetRead, list_pages
from connector.bitrix.reading import PortalRead
from connector.bitrix.writeback import BitrixWriteback
from connector.crm import BatchPolicy, Cursor, PullPage
from connector.errors import CrmRecordError
from connector.model import Customer, Product, Purchase

log = logging.getLogger(__name__)

# HONORIFIC ("Обращение") carries gender; it is a standard field, outside "UF_*"
CONTACT_SELECT = ["ID", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "ASSIGNED_BY_ID",
                  "COMPANY_ID", "DATE_CREATE", "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
COMPANY_SELECT = ["ID", "TITLE", "ASSIGNED_BY_ID", "DATE_CREATE", "DATE_MODIFY", "PHONE", "EMAIL", "UF_*"]
DEAL_SELECT = ["ID", "TITLE", "STAGE_ID", "STAGE_SEMANTIC_ID", "CATEGORY_ID", "CLOSEDATE", "OPPORTUNITY",
               "CURRENCY_ID", "CONTACT_ID", "COMPANY_ID", "ASSIGNED_BY_ID", "DATE_MODIFY",
               "UF_*"]  # deal user fields: the bonuses paid (UF_CRM_RS_BONUS_PAID) or a field a playbook names
# PROPERTY_* brings product properties as PROPERTY_<id> (Doc: crm/outdated/products/crm-product-list.md)
PRODUCT_SELECT = ["ID", "NAME", "PRICE", "CURRENCY_ID", "SECTION_ID", "PROPERTY_*"]
CYCLE_PROPERTY_CODE = "RS_CYCLE_DAYS"  # product property: days one unit lasts (consumables)
TERM_PROPERTY_CODE = "RS_TERM_DAYS"  # product property: days a subscription, licence or service plan runs


class BitrixAdapter(WritebackAdapter):
    name = "bitrix"
    field_settings = {"gender": "BITRIX_GENDER_FIELD"}  # where a card field a playbook matches comes from

    def __init__(self, webhook_url: str, *, customer_key: str = "contact", timezone: str | None = None,
                 requests_per_second: float = 2.0, request_pool: int = 50, write_batch: int = 50,
                 fallback_user_id: int | None = None, oauth_token=None, gender_field: str = mapping.HONORIFIC,
                 gender_values: dict[str, str] | None = None, budget: OperatingBudget | None = None,
                 sms_robot: bool = False) -> None:
        # oauth_token: the local app's async token function (webhook_url is then the portal's /rest/ root);
        # budget: the portal's operating-time limits as this adapter lives within them (budget.py);
        # sms_robot: the admin bound the robot "Send SMS" to our trigger (sms.py)
        self.client = BitrixClient(webhook_url, requests_per_second=requests_per_second,
                                   request_pool=request_pool, oauth_token=oauth_token, budget=budget)
        self.customer_key = customer_key
        self.tz = ZoneInfo(timezone) if timezone else None
        self.batch = BatchPolicy(size=write_batch)
        self.account = f"bitrix:{self.client.portal}"
        self.fallback_user = str(fallback_user_id or self.client.webhook_user or 1)
        self.gender = mapping.GenderSource(gender_field, gender_values or {})
        self._active_users: set[str] | None = None
        # tasks always; card fields, repeat deals and automation once `repeat-sales install` ran
        self.writer = BitrixWriteback(self.client, customer_key=customer_key, responsible=self._responsible,
                                      sms_robot=sms_robot)

    # --- pull ----------------------------------------------------------------------------

    contact_select, company_select, deal_select = CONTACT_SELECT, COMPANY_SELECT, DEAL_SELECT

    def pull(self, since: Cursor | None, resume_at: dict | None = None) -> Iterator[PullPage]:
        """Catalogue, customers, then won deals with their product rows, streamed batch by batch.

        Full: won deals only. Incremental: every deal changed since the cursor, so a won deal that
        was reopened or lost leaves the history (`removed_purchase_ids`). Every list is read by
        keyset, 50 pages a request (pull.py). A CrmError carries `resume_at`, where the next run
        goes on when it passes that back (reading.py).
        """
        return PortalRead(self, since, resume_at).pages()

    def catalogue_reads(self) -> list[KeysetRead]:
        reads = [
            KeysetRead("sections", "crm.productsection.list", {"select": ["ID", "NAME"]}, optional=True, priority=0),
            KeysetRead("cycle", "crm.product.property.list", {"filter": {"CODE": CYCLE_PROPERTY_CODE}},
                       optional=True, priority=0),
            KeysetRead("term", "crm.product.property.list", {"filter": {"CODE": TERM_PROPERTY_CODE}},
                       optional=True, priority=0),
            KeysetRead("products", "crm.product.list", {"select": PRODUCT_SELECT}, priority=0),
            KeysetRead("users", "user.get", {}, optional=True, priority=0)]
        if self.customer_key == "contact" and self.gender.field_name == mapping.HONORIFIC:
            # this portal's names of the HONORIFIC ids; it rides in the first batch, before any contact
            reads.append(KeysetRead("honorific", "crm.status.list", {"filter": {"ENTITY_ID": mapping.HONORIFIC}},
                                    optional=True, priority=0))
        return reads

    def to_customer(self, raw: dict) -> Customer:
        if self.customer_key == "company":
            return mapping.customer_from_company(raw)
        return mapping.customer_from_contact(raw, self.gender)

    def to_purchase(self, raw: dict, rows: list[dict], products: dict[str, Product]) -> Purchase:
        return _with_categories(mapping.purchase_from_deal(raw, rows, self.customer_key, self.tz), products)

    def catalogue(self, raw: dict[str, list[dict]], page: PullPage) -> dict[str, Product]:
        """Products with their section (category) and cycle property; active users on the side."""
        sections = {mapping.text(r.get("ID")): mapping.text(r.get("NAME")) for r in raw["sections"]}
        cycle_field, term_field = (next((f"PROPERTY_{mapping.text(r.get('ID'))}" for r in raw.get(read, ())
                                         if mapping.text(r.get("CODE")) == code), None)
                                   for read, code in (("cycle", CYCLE_PROPERTY_CODE), ("term", TERM_PROPERTY_CODE)))
        if raw["users"]:
            self._active_users = (self._active_users or set()) | {
                mapping.text(r.get("ID")) for r in raw["users"] if str(r.get("ACTIVE")).lower() in ("true", "y", "1")}
        page.products = self.map_records(raw["products"], lambda r: mapping.product_from_raw(r, sections, cycle_field, term_field),
                                         page)
        return {p.id: p for p in page.products}

    @staticmethod
    def map_records(rows: list[dict], to_record, page: PullPage) -> list:
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


def _with_categories(purchase: Purchase, products: dict[str, Product]) -> Purchase:
    """The purchase with each line item's category from the catalogue; every other field kept as it is."""
    if not purchase.items:
        return purchase
    items = tuple(replace(i, category=products[i.product_id].category) if i.product_id in products
                  else replace(i, category=None) for i in purchase.items)
    return replace(purchase, items=items)


SHARED_BUDGET_SPARE = 2  # requests kept free in the portal's bucket: two may arrive closer than they left us


def share_budget(client: BitrixClient, settings) -> BitrixClient:
    """QUEUE_URL set: the portal's leaky bucket (BITRIX_REQUEST_POOL in a burst, BITRIX_REQUESTS_PER_SECOND
    draining; Doc: settings/performance/limits.md) shared by every worker in Redis (connector/jobs/budget.py)."""
    if settings.QUEUE_URL is not None:
        from connector.jobs.budget import shared

        client.gate = shared(settings, f"bitrix:{client.portal}", shape="leaky",
                             size=settings.BITRIX_REQUEST_POOL - SHARED_BUDGET_SPARE,
                             per_second=settings.BITRIX_REQUESTS_PER_SECOND)
    return client


def make_adapter(settings, installs=None) -> BitrixAdapter:
    """The incoming webhook when set; without it, the installed local app's OAuth grant (`serve`)."""
    common = {"customer_key": settings.CUSTOMER_KEY, "timezone": settings.TIMEZONE,
              "requests_per_second": settings.BITRIX_REQUESTS_PER_SECOND, "request_pool": settings.BITRIX_REQUEST_POOL,
              "write_batch": settings.BITRIX_WRITE_BATCH, "fallback_user_id": settings.BITRIX_FALLBACK_USER_ID,
              "gender_field": settings.BITRIX_GENDER_FIELD,
              "gender_values": settings.gender_values("BITRIX_GENDER_VALUES"), "sms_robot": settings.BITRIX_SMS_ROBOT}
    if settings.BITRIX_WEBHOOK_URL is None and installs is not None and installs.get("bitrix"):
        from connector.bitrix.app_auth import app_tokens

        tokens = app_tokens(settings, installs)  # the app's OAuth grant: `/rest/` + `auth`
        adapter = BitrixAdapter(tokens.grant().client_endpoint, oauth_token=tokens.token_func, **common)
    else:
        settings.require("BITRIX_WEBHOOK_URL")
        adapter = BitrixAdapter(settings.BITRIX_WEBHOOK_URL.get_secret_value(), **common)
    share_budget(adapter.client, settings)
    return adapter


__all__ = ["BitrixAdapter", "Customer", "make_adapter"]
