"""One customer as the portal holds it now, for a robot's answer: computed in seconds from that
customer's card and won deals, never after a whole sync.

Two requests at most for a usual customer: a `batch` with the card and the first page of its won
deals (keyset order, `start: -1`, no count; Doc: settings/performance/huge-data.md), then the deals'
product rows by an `=ownerId` array (Doc: crm/universal/product-rows/crm-item-productrow-list.md).
Everyone else's history comes from the local snapshot, so RFM and tiers stay relative to the whole base.
"""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from connector.bitrix import mapping
from connector.bitrix.client import PAGE_SIZE, BitrixClient
from connector.errors import CrmRecordError, CrmRequestRejected
from connector.model import Customer, LineItem, Product, Purchase

DEAL_FIELDS = ["ID", "TITLE", "STAGE_SEMANTIC_ID", "CLOSEDATE", "OPPORTUNITY", "CURRENCY_ID", "CONTACT_ID",
               "COMPANY_ID", "ASSIGNED_BY_ID", "DATE_MODIFY"]
CONTACT_FIELDS = ["ID", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE", "ASSIGNED_BY_ID",
                  "COMPANY_ID", "PHONE", "EMAIL", "UF_*"]
COMPANY_FIELDS = ["ID", "TITLE", "ASSIGNED_BY_ID", "PHONE", "EMAIL", "UF_*"]


def read_customer(client: BitrixClient, customer_id: str, *, customer_key: str, tz: ZoneInfo | None,
                  gender: mapping.GenderSource | None = None,
                  products: dict[str, Product] | None = None) -> Customer | None:
    """The customer's card with every won deal and its product rows; None when the card is gone."""
    entity, to_customer, fields = (
        ("company", mapping.customer_from_company, COMPANY_FIELDS) if customer_key == "company" else
        ("contact", lambda raw: mapping.customer_from_contact(raw, gender), CONTACT_FIELDS))
    owner = "COMPANY_ID" if customer_key == "company" else "CONTACT_ID"
    won = {owner: customer_id, "STAGE_SEMANTIC_ID": mapping.WON}
    first = client.batch({
        "card": (f"crm.{entity}.list", {"filter": {"ID": customer_id}, "select": fields, "order": {"ID": "ASC"},
                                        "start": -1}),
        "deals": ("crm.deal.list", {"filter": won, "select": DEAL_FIELDS, "order": {"ID": "ASC"}, "start": -1})})
    if first.errors:
        label, err = next(iter(first.errors.items()))
        raise CrmRequestRejected(str(err.get("error_description") or err.get("error") or "refused"), crm="bitrix",
                                 method=f"crm.{entity}.list" if label == "card" else "crm.deal.list",
                                 crm_code=str(err.get("error", "")))
    cards = first.result.get("card")
    if not isinstance(cards, list) or not cards:
        return None
    customer = to_customer(cards[0])
    deals = list(first.result.get("deals") or [])
    page = deals
    while len(page) == PAGE_SIZE:  # a customer with more than 50 won deals: the next keyset page
        page = client.call("crm.deal.list", {"filter": {**won, ">ID": page[-1]["ID"]}, "select": DEAL_FIELDS,
                                             "order": {"ID": "ASC"}, "start": -1})["result"] or []
        deals += page
    rows = _rows(client, [mapping.text(d.get("ID")) for d in deals])
    purchases = []
    for raw in deals:
        try:
            purchase = mapping.purchase_from_deal(raw, rows.get(mapping.text(raw.get("ID")), []), customer_key, tz)
        except CrmRecordError:
            continue  # as the pull does: a deal that cannot be mapped is skipped
        purchases.append(_with_categories(purchase, products or {}))
    return replace(customer, purchases=tuple(sorted(purchases, key=lambda p: (p.date, p.id))))


def _rows(client: BitrixClient, deal_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {i: [] for i in deal_ids}
    for n in range(0, len(deal_ids), 250):
        ids, last = deal_ids[n:n + 250], "0"
        while True:
            answer = client.call("crm.item.productrow.list", {
                "filter": {"=ownerType": "D", "=ownerId": ids, ">id": last}, "order": {"id": "asc"}, "start": -1})
            page = (answer.get("result") or {}).get("productRows") or []
            for row in page:
                out.setdefault(str(row.get("ownerId", "")), []).append(row)
            if len(page) < PAGE_SIZE:
                break
            last = str(page[-1].get("id"))
    return out


def _with_categories(purchase: Purchase, products: dict[str, Product]) -> Purchase:
    items = tuple(replace(i, category=products[i.product_id].category) if i.product_id in products else i
                  for i in purchase.items)
    return replace(purchase, items=items) if items != purchase.items else purchase


__all__ = ["read_customer", "LineItem"]
