"""Bitrix24 payloads -> CRM-neutral records. Portal quirks are handled here and only here.

Legacy crm.* methods send numbers as strings ("1500.00"), unset values as "" or null, and dates
as ISO 8601 with the portal's offset (Doc: api-reference/data-types.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from connector import gender
from connector.errors import CrmRecordError
from connector.model import Customer, LineItem, Product, Purchase, nps_score

WON = "S"  # Doc: api-reference/crm/deals/crm-deal-list.md - STAGE_SEMANTIC_ID S = success
DEFAULT_CURRENCY = "RUB"
OPT_OUT_FIELD = "UF_CRM_RS_NO_MARKETING"  # the plugin's own "no marketing" field on contacts/companies
NEUTRAL_OPT_OUT = "no_marketing"  # the name playbooks use, whatever the CRM calls it
REFUSED_FIELD = "UF_CRM_RS_REFUSED_CHANNELS"  # channels the customer refused ("email, sms"); install makes it
NEUTRAL_REFUSED = "refused_channels"  # the playbook's `guards.opt_out.channels_field`
BONUS_PAID_FIELD = "UF_CRM_RS_BONUS_PAID"  # the plugin's deal field: bonuses the customer paid with
NEUTRAL_BONUS_PAID = "bonus_paid"  # its name in playbooks ([bonuses] paid_field)
# Doc: api-reference/crm/contacts/crm-contact-fields.md - HONORIFIC "Обращение" is a crm_status of the list
# ENTITY_ID "HONORIFIC" (api-reference/crm/status/index.md), read with crm.status.list; its items are the
# portal's to rename or add to. api-reference/crm/universal/crm-item-add.md: 'HNR_RU_1' = 'г-н'.
HONORIFIC = "HONORIFIC"
# what a Russian portal ships, until its own list is read (HNR_RU_2 "г-жа" is the second item there)
SHIPPED_HONORIFICS = {"HNR_RU_1": "г-н", "HNR_RU_2": "г-жа"}


def text(value: object) -> str:
    return "" if value is None else str(value).strip()


def number(value: object, *, field: str = "") -> float | None:
    """"1500.00" -> 1500.0; "" and None -> None; garbage raises CrmRecordError naming the field."""
    raw = text(value).replace(" ", "").replace("\u00a0", "")
    if not raw:
        return None
    try:
        return float(raw.replace(",", ".")) if raw.count(",") == 1 and "." not in raw else float(raw)
    except ValueError:
        raise CrmRecordError(f"{field} is not a number: {raw[:20]!r}", crm="bitrix") from None


def moment(value: object, *, field: str = "") -> datetime | None:
    raw = text(value)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CrmRecordError(f"{field} is not an ISO date: {raw[:30]!r}", crm="bitrix") from None


def local_date(value: datetime, tz: ZoneInfo | None) -> date:
    """The calendar day in the portal's own offset, or in TIMEZONE when it is set."""
    if tz is not None and value.tzinfo is not None:
        return value.astimezone(tz).date()
    return value.date()


def multifield(values: object) -> tuple[str, ...]:
    """PHONE/EMAIL multifields: [{"VALUE": "...", "VALUE_TYPE": "WORK", ...}] -> values."""
    if not isinstance(values, list):
        return ()
    out = []
    for item in values:
        if isinstance(item, dict) and text(item.get("VALUE")):
            out.append(text(item["VALUE"]))
    return tuple(dict.fromkeys(out))


def user_fields(raw: dict) -> dict[str, str]:
    """UF_* values as text, plus the plugin's opt-out and refused channels under their neutral names
    (`no_marketing`, `refused_channels`)."""
    out = {}
    for key, value in raw.items():
        if key.startswith("UF_") and value not in (None, "", [], False):
            out[key] = ",".join(map(str, value)) if isinstance(value, list) else text(value)
    if out.get(OPT_OUT_FIELD, "").upper() in ("Y", "1", "TRUE"):
        out[NEUTRAL_OPT_OUT] = "1"
    if out.get(REFUSED_FIELD):
        out.setdefault(NEUTRAL_REFUSED, out[REFUSED_FIELD])
    return out


@dataclass
class GenderSource:
    """Where a contact's gender is: HONORIFIC (the default) or a user field (BITRIX_GENDER_FIELD).

    `values` is the admin's mapping of raw values (BITRIX_GENDER_VALUES, e.g. a list field's item
    ids); HONORIFIC ids are also read by their names on this portal ("г-жа", "Mrs.").
    """

    field_name: str = HONORIFIC
    values: Mapping[str, str] = field(default_factory=dict)
    honorifics: dict[str, str] = field(default_factory=lambda: dict(SHIPPED_HONORIFICS))

    def learn_honorifics(self, rows: Iterable[dict]) -> None:
        """crm.status.list rows of ENTITY_ID HONORIFIC: STATUS_ID -> NAME as this portal shows it."""
        for row in rows:
            if text(row.get("STATUS_ID")):
                self.honorifics[text(row.get("STATUS_ID"))] = text(row.get("NAME"))

    def read(self, raw: dict) -> str | None:
        value = raw.get(self.field_name)
        if isinstance(value, list):  # a multiple user field: the first value
            value = value[0] if value else None
        found = gender.gender_of(value, self.values)
        if found is None and self.field_name == HONORIFIC:
            found = gender.gender_of(self.honorifics.get(text(value)))
        return found


def customer_from_contact(raw: dict, gender_source: GenderSource | None = None) -> Customer:
    """A contact; its gender (HONORIFIC, or the field named in settings) goes to fields["gender"]."""
    cid = text(raw.get("ID"))
    if not cid:
        raise CrmRecordError("a contact without ID", crm="bitrix")
    name = " ".join(x for x in (text(raw.get("NAME")), text(raw.get("SECOND_NAME")),
                                text(raw.get("LAST_NAME"))) if x)
    born = written_day(raw.get("BIRTHDATE"), field="BIRTHDATE")
    fields = user_fields(raw)
    found = (gender_source or GenderSource()).read(raw)
    if found:
        fields[gender.FIELD] = found
    return Customer(
        id=cid, name=name or f"#{cid}", kind="contact", emails=multifield(raw.get("EMAIL")),
        phones=multifield(raw.get("PHONE")), birthday=born,
        manager_id=text(raw.get("ASSIGNED_BY_ID")) or None, fields=fields, created=created_day(raw),
    )


def created_day(raw: dict) -> date | None:
    """DATE_CREATE, the day the card was created, as the portal wrote it (a welcome series counts from it)."""
    when = moment(raw.get("DATE_CREATE"), field="DATE_CREATE")
    return when.date() if when is not None else None


def customer_from_company(raw: dict) -> Customer:
    cid = text(raw.get("ID"))
    if not cid:
        raise CrmRecordError("a company without ID", crm="bitrix")
    return Customer(
        id=cid, name=text(raw.get("TITLE")) or f"#{cid}", kind="company", emails=multifield(raw.get("EMAIL")),
        phones=multifield(raw.get("PHONE")), manager_id=text(raw.get("ASSIGNED_BY_ID")) or None,
        fields=user_fields(raw), created=created_day(raw),
    )


def customer_ref(raw_deal: dict, customer_key: str) -> str | None:
    """The deal's customer: its (primary) contact, or its company in B2B mode."""
    field = "COMPANY_ID" if customer_key == "company" else "CONTACT_ID"
    value = text(raw_deal.get(field))
    return value if value and value != "0" else None


def written_day(value: object, *, field: str = "") -> date | None:
    """The day a date-only field (CLOSEDATE, BIRTHDATE) holds: its date part as the portal wrote it.

    The portal writes a day as its UTC midnight in the server's offset ("2024-09-09T02:00:00+02:00";
    Doc: api-reference/crm/deals/crm-deal-get.md, CLOSEDATE of type `date`, api-reference/data-types.md),
    so converting it to TIMEZONE would move it to the day before anywhere west of UTC.
    """
    when = moment(value, field=field)
    return when.date() if when is not None else None


NPS_FIELD = "UF_CRM_RS_NPS"  # deal: the 0-10 answer to the feedback question (a form or the manager fills it)
REFERRAL_FIELD = "UF_CRM_RS_REFERRAL_CODE"  # deal: the referral code a new customer brought


def purchase_from_deal(raw_deal: dict, rows: list[dict], customer_key: str, tz: ZoneInfo | None) -> Purchase:
    """A won deal -> Purchase. The purchase day is CLOSEDATE (design.md), the day the portal wrote;
    without it, the last change, a moment, seen in TIMEZONE."""
    deal_id = text(raw_deal.get("ID"))
    customer_id = customer_ref(raw_deal, customer_key)
    if not deal_id or customer_id is None:
        raise CrmRecordError(f"deal {deal_id or '?'} has no {customer_key}", crm="bitrix")
    day = written_day(raw_deal.get("CLOSEDATE"), field="CLOSEDATE")
    if day is None:
        changed = moment(raw_deal.get("DATE_MODIFY"), field="DATE_MODIFY")
        day = local_date(changed, tz) if changed is not None else None
    if day is None:
        raise CrmRecordError(f"deal {deal_id} has neither CLOSEDATE nor DATE_MODIFY", crm="bitrix")
    items = tuple(line_item(r) for r in rows)
    amount = number(raw_deal.get("OPPORTUNITY"), field="OPPORTUNITY")
    if amount is None:
        amount = sum(i.price * i.quantity for i in items)
    return Purchase(
        id=deal_id, customer_id=customer_id, date=day, amount=amount,
        currency=text(raw_deal.get("CURRENCY_ID")) or DEFAULT_CURRENCY, items=items,
        manager_id=text(raw_deal.get("ASSIGNED_BY_ID")) or None, title=text(raw_deal.get("TITLE")),
        fields=deal_fields(raw_deal), nps=nps_score(raw_deal.get(NPS_FIELD)),
        referral_code=text(raw_deal.get(REFERRAL_FIELD)),
    )


def deal_fields(raw_deal: dict) -> dict[str, str] | None:
    """The deal's user fields with a value, the plugin's bonuses paid also as `bonus_paid`; None: none."""
    out = {k: v for k, v in user_fields(raw_deal).items() if k != NEUTRAL_OPT_OUT}
    if out.get(BONUS_PAID_FIELD):
        out[NEUTRAL_BONUS_PAID] = out[BONUS_PAID_FIELD]
    return out or None


def line_item(row: dict) -> LineItem:
    """A crm.item.productrow.list row (camelCase; Doc: crm/universal/product-rows/crm-item-productrow-list.md)."""
    product_id = text(row.get("productId"))
    return LineItem(
        product_id=product_id if product_id and product_id != "0" else None,
        name=text(row.get("productName")) or "?",
        quantity=number(row.get("quantity"), field="quantity") or 1.0,
        price=number(row.get("price"), field="price") or 0.0,
        # money off one unit, whether the row's discount was a sum (type 1) or a percentage (type 2)
        discount=max(number(row.get("discountSum"), field="discountSum") or 0.0, 0.0),
    )


def days_property(raw: dict, key: str | None) -> int | None:
    """A whole number of days in a product property, or None when unset or not positive."""
    if not key:
        return None
    value = raw.get(key)
    if isinstance(value, dict):  # product properties come as {"valueId": .., "value": ..}
        value = value.get("value")
    days = number(value, field=key)
    return int(days) if days and days > 0 else None


def product_from_raw(raw: dict, sections: dict[str, str], cycle_field: str | None,
                     term_field: str | None = None) -> Product:
    pid = text(raw.get("ID"))
    cycle = days_property(raw, cycle_field)
    return Product(
        id=pid, name=text(raw.get("NAME")) or f"#{pid}",
        category=sections.get(text(raw.get("SECTION_ID"))) or None,
        price=number(raw.get("PRICE"), field="PRICE"), currency=text(raw.get("CURRENCY_ID")) or None,
        cycle_days=cycle, term_days=days_property(raw, term_field),
    )
