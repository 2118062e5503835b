"""amoCRM payloads -> CRM-neutral records. Account quirks are handled here and only here.

Dates are Unix seconds (read in the account's or TIMEZONE's zone); phone and email are system
multitext custom fields `PHONE`/`EMAIL`; a birthday is a custom field of type `birthday`; other
custom fields reach `Customer.fields` under their code in lower case (or their name), so a
playbook's opt-out field `no_marketing` matches the checkbox `NO_MARKETING`
(Doc: amocrm.ru/developers/content/crm_platform/custom-fields). amoCRM has no gender field of its
own: the contact field that holds it is named in settings (AMOCRM_GENDER_FIELD) and read by `GenderField`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from connector import gender
from connector.errors import CrmRecordError
from connector.model import Customer, LineItem, Product, Purchase, nps_score

CRM = "amocrm"
WON_STATUS_ID = 142  # Doc: amocrm.ru/developers/content/crm_platform/leads_pipelines - the same id in every pipeline
LOST_STATUS_ID = 143
SYSTEM_CODES = {"PHONE", "EMAIL", "POSITION", "IM", "WEB", "ADDRESS"}
PRODUCT_PRICE_CODE = "PRICE"  # Doc: amocrm.ru/developers/content/crm_platform/catalogs-api - product fields
PRODUCT_GROUP_CODE = "GROUP"
PRODUCT_CYCLE_CODE = "CYCLE_DAYS"  # ours: days one unit lasts (created by install when missing)
PRODUCT_TERM_CODE = "TERM_DAYS"  # ours: days a subscription, licence or service plan runs
LEAD_PROMO_CODE = "PROMO"  # a lead's promo code or campaign (a text field the shop fills): a discounted purchase
BONUS_PAID_CODE = "RS_BONUS_PAID"  # the plugin's lead field: bonuses the customer paid with (install makes it)
NEUTRAL_BONUS_PAID = "bonus_paid"  # its name in playbooks ([bonuses] paid_field)
LEAD_NPS_CODE = "RS_NPS"  # lead: the 0-10 answer to the feedback question (a form or the manager fills it)
LEAD_REFERRAL_CODE = "RS_REFERRAL_CODE"  # lead: the referral code a new customer brought
LEAD_CURRENCY_CODE = "CURRENCY"  # ours: a select on foreign-currency leads (amoCRM keeps one per account)
HALF_DAY = timedelta(hours=12)


def text(value: object) -> str:
    return "" if value is None else str(value).strip()


def number(value: object, *, field: str = "") -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    raw = text(value).replace(" ", "").replace("\u00a0", "").replace(",", ".")
    try:
        return float(raw)
    except ValueError:
        raise CrmRecordError(f"{field} is not a number: {raw[:20]!r}", crm=CRM) from None


def local_day(timestamp: object, tz: ZoneInfo, *, field: str) -> date | None:
    seconds = number(timestamp, field=field)
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, tz).date()


def calendar_day(value: object, tz: ZoneInfo, *, field: str) -> date | None:
    """A date-only field (birthday): a timestamp at midnight in some zone, or `dd.mm.yyyy` / ISO text.

    Whether the account stored local or UTC midnight, noon of that day names the same date.
    """
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        raw = value.strip()
        for fmt in ("%d.%m.%Y", "%Y-%m-%d"):
            try:
                return datetime.strptime(raw[:10], fmt).date()
            except ValueError:
                continue
        try:
            return datetime.fromisoformat(raw).date()
        except ValueError:
            raise CrmRecordError(f"{field} is not a date: {raw[:30]!r}", crm=CRM) from None
    seconds = number(value, field=field)
    if seconds is None:
        return None
    return (datetime.fromtimestamp(seconds, tz) + HALF_DAY).date()


def custom_values(raw: dict) -> list[dict]:
    values = raw.get("custom_fields_values")
    return [cf for cf in values if isinstance(cf, dict)] if isinstance(values, list) else []


def field_values(raw: dict, code: str) -> list[object]:
    for cf in custom_values(raw):
        if cf.get("field_code") == code:
            return [v.get("value") for v in cf.get("values") or [] if isinstance(v, dict)]
    return []


def first_value(raw: dict, code: str) -> object:
    values = field_values(raw, code)
    return values[0] if values else None


def _other_fields(raw: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for cf in custom_values(raw):
        code = text(cf.get("field_code"))
        if code in SYSTEM_CODES or cf.get("field_type") == "birthday":
            continue
        key = code.lower() if code else text(cf.get("field_name"))
        values = [v.get("value") for v in cf.get("values") or [] if isinstance(v, dict)]
        shown = ["1" if v is True else "0" if v is False else text(v) for v in values if v not in (None, "")]
        if key and shown:
            out[key] = ",".join(shown)
    return out


def _tags(raw: dict) -> frozenset[str]:
    embedded = raw.get("_embedded") if isinstance(raw.get("_embedded"), dict) else {}
    return frozenset(text(t.get("name")) for t in embedded.get("tags") or [] if isinstance(t, dict) and t.get("name"))


def _channels(raw: dict, code: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text(v) for v in field_values(raw, code) if text(v)))


def _birthday(raw: dict, tz: ZoneInfo) -> date | None:
    for cf in custom_values(raw):
        if cf.get("field_type") == "birthday" or text(cf.get("field_code")) == "BIRTHDAY":
            values = [v.get("value") for v in cf.get("values") or [] if isinstance(v, dict)]
            return calendar_day(values[0], tz, field="birthday") if values else None
    return None


@dataclass(frozen=True)
class GenderField:
    """The contact custom field with gender (AMOCRM_GENDER_FIELD): its id, code or name, any case.

    A select field's value is the option's text; `values` (AMOCRM_GENDER_VALUES) maps texts or
    option (enum) ids the usual words do not cover.
    Doc: amocrm.ru/developers/content/crm_platform/custom-fields - `custom_fields_values[]` items carry
    `field_id`, `field_name`, `field_code` and `values[]` of `{value, enum_id, enum_code}`.
    """

    name: str
    values: Mapping[str, str] = field(default_factory=dict)

    def matches(self, cf: dict) -> bool:
        wanted = self.name.casefold()
        return wanted in (text(cf.get("field_id")), text(cf.get("field_code")).casefold(),
                          text(cf.get("field_name")).casefold())

    def read(self, raw: dict) -> str | None:
        for cf in custom_values(raw):
            if not self.matches(cf):
                continue
            for v in cf.get("values") or []:
                if not isinstance(v, dict):
                    continue
                for candidate in (v.get("enum_id"), v.get("enum_code"), v.get("value")):
                    found = gender.gender_of(candidate, self.values) if candidate is not None else None
                    if found:
                        return found
        return None


def customer_from_contact(raw: dict, tz: ZoneInfo, gender_field: GenderField | None = None) -> Customer:
    """A contact; with `gender_field`, its value goes to fields["gender"] as "M" / "F"."""
    cid = text(raw.get("id"))
    if not cid:
        raise CrmRecordError("a contact without id", crm=CRM)
    name = text(raw.get("name")) or " ".join(x for x in (text(raw.get("first_name")), text(raw.get("last_name"))) if x)
    fields = _other_fields(raw)
    if gender_field is not None:
        fields.pop(gender.FIELD, None)  # a field coded GENDER holds raw text: only "M" / "F" go by that name
        found = gender_field.read(raw)
        if found:
            fields[gender.FIELD] = found
    return Customer(id=cid, name=name or f"#{cid}", kind="contact", emails=_channels(raw, "EMAIL"),
                    phones=_channels(raw, "PHONE"), birthday=_birthday(raw, tz),
                    manager_id=text(raw.get("responsible_user_id")) or None, tags=_tags(raw), fields=fields,
                    created=local_day(raw.get("created_at"), tz, field="created_at"))


def customer_from_company(raw: dict, tz: ZoneInfo) -> Customer:
    cid = text(raw.get("id"))
    if not cid:
        raise CrmRecordError("a company without id", crm=CRM)
    return Customer(id=cid, name=text(raw.get("name")) or f"#{cid}", kind="company", emails=_channels(raw, "EMAIL"),
                    phones=_channels(raw, "PHONE"), manager_id=text(raw.get("responsible_user_id")) or None,
                    tags=_tags(raw), fields=_other_fields(raw),
                    created=local_day(raw.get("created_at"), tz, field="created_at"))


def customer_ref(raw_lead: dict, customer_key: str) -> str | None:
    """The lead's customer: its main contact (else its first), or its company in B2B mode."""
    embedded = raw_lead.get("_embedded") if isinstance(raw_lead.get("_embedded"), dict) else {}
    if customer_key == "company":
        companies = [c for c in embedded.get("companies") or [] if isinstance(c, dict) and c.get("id")]
        return text(companies[0]["id"]) if companies else None
    contacts = [c for c in embedded.get("contacts") or [] if isinstance(c, dict) and c.get("id")]
    main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
    return text(main["id"]) if main else None


def is_won(raw_lead: dict) -> bool:
    return raw_lead.get("status_id") == WON_STATUS_ID


def purchase_from_lead(raw_lead: dict, products: dict[str, Product], customer_key: str, tz: ZoneInfo,
                       currency: str) -> Purchase:
    """A won lead -> Purchase. The purchase day is `closed_at` (design.md), else the last change."""
    lead_id = text(raw_lead.get("id"))
    customer_id = customer_ref(raw_lead, customer_key)
    if not lead_id or customer_id is None:
        raise CrmRecordError(f"lead {lead_id or '?'} has no {customer_key}", crm=CRM)
    day = (local_day(raw_lead.get("closed_at"), tz, field="closed_at")
           or local_day(raw_lead.get("updated_at"), tz, field="updated_at"))
    if day is None:
        raise CrmRecordError(f"lead {lead_id} has neither closed_at nor updated_at", crm=CRM)
    embedded = raw_lead.get("_embedded") if isinstance(raw_lead.get("_embedded"), dict) else {}
    items = tuple(line_item(e, products) for e in embedded.get("catalog_elements") or [] if isinstance(e, dict))
    amount = number(raw_lead.get("price"), field="price")
    if amount is None:
        amount = sum(i.price * i.quantity for i in items)
    return Purchase(id=lead_id, customer_id=customer_id, date=day, amount=amount,
                    currency=text(first_value(raw_lead, LEAD_CURRENCY_CODE)) or currency, items=items,
                    manager_id=text(raw_lead.get("responsible_user_id")) or None, title=text(raw_lead.get("name")),
                    fields=lead_fields(raw_lead), nps=nps_score(first_value(raw_lead, LEAD_NPS_CODE)),
                    referral_code=text(first_value(raw_lead, LEAD_REFERRAL_CODE)),
                    promo=text(first_value(raw_lead, LEAD_PROMO_CODE)))


def lead_fields(raw_lead: dict) -> dict[str, str] | None:
    """The lead's custom fields with a value (code in lower case, as a card's), the plugin's bonuses
    paid also as `bonus_paid`; None when it has none besides its currency and our action key."""
    out = {k: v for k, v in _other_fields(raw_lead).items() if k not in ("currency", "rs_action_key")}
    if out.get(BONUS_PAID_CODE.lower()):
        out[NEUTRAL_BONUS_PAID] = out[BONUS_PAID_CODE.lower()]
    return out or None


def line_item(element: dict, products: dict[str, Product]) -> LineItem:
    """A lead's `_embedded.catalog_elements[]` entry: ids and quantity only; the rest from the catalog."""
    product_id = text(element.get("id"))
    metadata = element.get("metadata") if isinstance(element.get("metadata"), dict) else {}
    product = products.get(product_id)
    return LineItem(product_id=product_id or None, name=product.name if product else f"#{product_id}",
                    quantity=number(metadata.get("quantity"), field="quantity") or 1.0,
                    price=(product.price or 0.0) if product else 0.0,
                    category=product.category if product else None)


def product_from_element(raw: dict, currency: str) -> Product:
    pid = text(raw.get("id"))
    if not pid:
        raise CrmRecordError("a catalog element without id", crm=CRM)
    cycle = number(first_value(raw, PRODUCT_CYCLE_CODE), field=PRODUCT_CYCLE_CODE)
    group = first_value(raw, PRODUCT_GROUP_CODE)
    return Product(id=pid, name=text(raw.get("name")) or f"#{pid}", category=text(group) or None,
                   price=number(first_value(raw, PRODUCT_PRICE_CODE), field=PRODUCT_PRICE_CODE), currency=currency,
                   cycle_days=int(cycle) if cycle and cycle > 0 else None, term_days=_days(raw, PRODUCT_TERM_CODE))


def _days(raw: dict, code: str) -> int | None:
    days = number(first_value(raw, code), field=code)
    return int(days) if days and days > 0 else None
