"""The REST field table of each kind of row, and how legacy and camelCase methods write values.

Legacy `crm.*` methods write numbers as strings, money with two decimals, dates in ISO 8601
with the portal offset, `null` for unset links and Y/N flags.
Doc: api-reference/crm/deals/crm-deal-get.md, crm/contacts/crm-contact-get.md, crm/data-types.md
"""

from __future__ import annotations

from .protocol import day_floor, iso, iso_date
from .query import DATE, DATETIME, INT, LINK, MONEY, MULTI, NUM, RAWINT, RAWNUM, STR, YN, Field


def _f(name, kind, get, standard=True, readonly=False, index=None) -> tuple[str, Field]:
    return name, Field(name, kind, get, standard, readonly, index)


def _mf_values(type_id: str):
    return lambda r: tuple(v for _, _, v in (r.multi or {}).get(type_id, ()))


CONTACT_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id, readonly=True),
    _f("HONORIFIC", STR, lambda r: r.honorific),
    _f("NAME", STR, lambda r: r.name),
    _f("SECOND_NAME", STR, lambda r: r.second_name),
    _f("LAST_NAME", STR, lambda r: r.last_name),
    _f("POST", STR, lambda r: r.post),
    _f("TYPE_ID", STR, lambda r: r.type_id),
    _f("SOURCE_ID", STR, lambda r: r.source_id),
    _f("COMPANY_ID", LINK, lambda r: r.company_id),
    _f("BIRTHDATE", DATE, lambda r: r.birthdate),
    _f("EXPORT", YN, lambda r: r.export),
    _f("HAS_PHONE", YN, lambda r: bool((r.multi or {}).get("PHONE")), readonly=True),
    _f("HAS_EMAIL", YN, lambda r: bool((r.multi or {}).get("EMAIL")), readonly=True),
    _f("HAS_IMOL", YN, lambda r: False, readonly=True),
    _f("ASSIGNED_BY_ID", LINK, lambda r: r.assigned),
    _f("CREATED_BY_ID", LINK, lambda r: r.created_by, readonly=True),
    _f("MODIFY_BY_ID", LINK, lambda r: r.modify_by, readonly=True),
    _f("DATE_CREATE", DATETIME, lambda r: r.created, readonly=True),
    _f("DATE_MODIFY", DATETIME, lambda r: r.modified, readonly=True),
    _f("OPENED", YN, lambda r: r.opened),
    _f("COMMENTS", STR, lambda r: r.comments),
    _f("LEAD_ID", LINK, lambda r: None, readonly=True),
    _f("ORIGINATOR_ID", STR, lambda r: None),
    _f("ORIGIN_ID", STR, lambda r: None),
    _f("LAST_ACTIVITY_TIME", DATETIME, lambda r: r.modified, readonly=True),
    _f("PHONE", MULTI, _mf_values("PHONE"), standard=False),
    _f("EMAIL", MULTI, _mf_values("EMAIL"), standard=False),
    _f("WEB", MULTI, _mf_values("WEB"), standard=False),
    _f("IM", MULTI, _mf_values("IM"), standard=False),
])

COMPANY_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id, readonly=True),
    _f("TITLE", STR, lambda r: r.title),
    _f("COMPANY_TYPE", STR, lambda r: r.company_type),
    _f("INDUSTRY", STR, lambda r: r.industry),
    _f("HAS_PHONE", YN, lambda r: bool((r.multi or {}).get("PHONE")), readonly=True),
    _f("HAS_EMAIL", YN, lambda r: bool((r.multi or {}).get("EMAIL")), readonly=True),
    _f("ASSIGNED_BY_ID", LINK, lambda r: r.assigned),
    _f("CREATED_BY_ID", LINK, lambda r: r.created_by, readonly=True),
    _f("MODIFY_BY_ID", LINK, lambda r: r.modify_by, readonly=True),
    _f("DATE_CREATE", DATETIME, lambda r: r.created, readonly=True),
    _f("DATE_MODIFY", DATETIME, lambda r: r.modified, readonly=True),
    _f("OPENED", YN, lambda r: r.opened),
    _f("COMMENTS", STR, lambda r: r.comments),
    _f("LAST_ACTIVITY_TIME", DATETIME, lambda r: r.modified, readonly=True),
    _f("PHONE", MULTI, _mf_values("PHONE"), standard=False),
    _f("EMAIL", MULTI, _mf_values("EMAIL"), standard=False),
    _f("WEB", MULTI, _mf_values("WEB"), standard=False),
    _f("IM", MULTI, _mf_values("IM"), standard=False),
])

DEAL_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id, readonly=True),
    _f("TITLE", STR, lambda r: r.title if r.title is not None else f"Заказ #{r.id}"),
    _f("TYPE_ID", STR, lambda r: r.type_id),
    _f("STAGE_ID", STR, lambda r: r.stage_id),
    _f("PROBABILITY", NUM, lambda r: None),
    _f("CURRENCY_ID", STR, lambda r: r.currency),
    _f("OPPORTUNITY", MONEY, lambda r: r.opportunity),
    _f("IS_MANUAL_OPPORTUNITY", YN, lambda r: r.is_manual),
    _f("TAX_VALUE", MONEY, lambda r: 0.0),
    _f("LEAD_ID", LINK, lambda r: None, readonly=True),
    _f("COMPANY_ID", LINK, lambda r: r.company_id),
    _f("CONTACT_ID", LINK, lambda r: r.contact_ids[0] if r.contact_ids else None),
    _f("QUOTE_ID", LINK, lambda r: None, readonly=True),
    _f("BEGINDATE", DATE, lambda r: r.begindate if r.begindate is not None else day_floor(r.created)),
    _f("CLOSEDATE", DATE, lambda r: r.closedate),
    _f("ASSIGNED_BY_ID", LINK, lambda r: r.assigned),
    _f("CREATED_BY_ID", LINK, lambda r: r.created_by, readonly=True),
    _f("MODIFY_BY_ID", LINK, lambda r: r.modify_by, readonly=True),
    _f("DATE_CREATE", DATETIME, lambda r: r.created, readonly=True),
    _f("DATE_MODIFY", DATETIME, lambda r: r.modified, readonly=True),
    _f("OPENED", YN, lambda r: r.opened),
    _f("CLOSED", YN, lambda r: r.semantic != "P"),
    _f("COMMENTS", STR, lambda r: r.comments),
    _f("ADDITIONAL_INFO", STR, lambda r: None),
    _f("LOCATION_ID", STR, lambda r: None),
    _f("CATEGORY_ID", INT, lambda r: r.category_id),
    _f("STAGE_SEMANTIC_ID", STR, lambda r: r.semantic, readonly=True),
    _f("IS_NEW", YN, lambda r: r.stage_id.endswith("NEW"), readonly=True),
    _f("IS_RECURRING", YN, lambda r: False),
    _f("IS_RETURN_CUSTOMER", YN, lambda r: r.is_return),
    _f("IS_REPEATED_APPROACH", YN, lambda r: False),
    _f("SOURCE_ID", STR, lambda r: r.source_id),
    _f("SOURCE_DESCRIPTION", STR, lambda r: None),
    _f("ORIGINATOR_ID", STR, lambda r: r.originator_id),
    _f("ORIGIN_ID", STR, lambda r: r.origin_id),
    _f("MOVED_BY_ID", LINK, lambda r: r.modify_by, readonly=True),
    _f("MOVED_TIME", DATETIME, lambda r: r.moved_time, readonly=True),
    _f("LAST_ACTIVITY_TIME", DATETIME, lambda r: r.modified, readonly=True),
    _f("LAST_ACTIVITY_BY", LINK, lambda r: r.modify_by, readonly=True),
    _f("UTM_SOURCE", STR, lambda r: None),
    _f("UTM_MEDIUM", STR, lambda r: None),
    _f("UTM_CAMPAIGN", STR, lambda r: None),
    _f("UTM_CONTENT", STR, lambda r: None),
    _f("UTM_TERM", STR, lambda r: None),
])

PRODUCT_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id, readonly=True),
    _f("CATALOG_ID", INT, lambda r: r.catalog_id),
    _f("PRICE", MONEY, lambda r: r.price),
    _f("CURRENCY_ID", STR, lambda r: r.currency),
    _f("NAME", STR, lambda r: r.name),
    _f("CODE", STR, lambda r: r.xml_id),
    _f("DESCRIPTION", STR, lambda r: r.description),
    _f("DESCRIPTION_TYPE", STR, lambda r: "text"),
    _f("ACTIVE", YN, lambda r: r.active),
    _f("SECTION_ID", LINK, lambda r: r.section_id),
    _f("SORT", INT, lambda r: 500),
    _f("VAT_ID", LINK, lambda r: None),
    _f("VAT_INCLUDED", YN, lambda r: True),
    _f("MEASURE", INT, lambda r: r.measure),
    _f("XML_ID", STR, lambda r: r.xml_id),
    _f("DATE_CREATE", DATETIME, lambda r: r.created, readonly=True),
    _f("TIMESTAMP_X", DATETIME, lambda r: r.created, readonly=True),
    _f("CREATED_BY", LINK, lambda r: 1, readonly=True),
    _f("MODIFIED_BY", LINK, lambda r: 1, readonly=True),
])

SECTION_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("CATALOG_ID", INT, lambda r: r.catalog_id),
    _f("SECTION_ID", LINK, lambda r: None),
    _f("NAME", STR, lambda r: r.name),
    _f("XML_ID", STR, lambda r: r.code),
    _f("CODE", STR, lambda r: r.code),
])

# Legacy product rows (crm.deal.productrows.get, crm.productrow.list): numbers stay numbers
# except ID/OWNER_ID and the account price. Doc: api-reference/crm/deals/crm-deal-productrows-get.md
PRODUCTROW_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("OWNER_ID", INT, lambda r: r.owner_id, index="OWNER_ID"),
    _f("OWNER_TYPE", STR, lambda r: r.owner_type),
    _f("PRODUCT_ID", RAWINT, lambda r: r.product_id),
    _f("PRODUCT_NAME", STR, lambda r: r.product_name),
    _f("ORIGINAL_PRODUCT_NAME", STR, lambda r: r.product_name),
    _f("PRODUCT_DESCRIPTION", STR, lambda r: None),
    _f("PRICE", RAWNUM, lambda r: r.price),
    _f("PRICE_EXCLUSIVE", RAWNUM, lambda r: r.price),
    _f("PRICE_NETTO", RAWNUM, lambda r: r.price),
    _f("PRICE_BRUTTO", RAWNUM, lambda r: r.price),
    _f("PRICE_ACCOUNT", MONEY, lambda r: r.price),
    _f("QUANTITY", RAWNUM, lambda r: r.quantity),
    _f("DISCOUNT_TYPE_ID", RAWINT, lambda r: r.discount_type_id),
    _f("DISCOUNT_RATE", RAWNUM, lambda r: r.discount_rate),
    _f("DISCOUNT_SUM", RAWNUM, lambda r: r.discount_sum),
    _f("TAX_RATE", RAWNUM, lambda r: r.tax_rate),
    _f("TAX_INCLUDED", YN, lambda r: r.tax_included),
    _f("CUSTOMIZED", YN, lambda r: True),
    _f("MEASURE_CODE", RAWINT, lambda r: r.measure_code),
    _f("MEASURE_NAME", STR, lambda r: r.measure_name),
    _f("SORT", RAWINT, lambda r: r.sort),
    _f("XML_ID", STR, lambda r: None),
    _f("TYPE", RAWINT, lambda r: 1),
    _f("STORE_ID", RAWINT, lambda r: 0),
])

# crm.item.productrow.list: camelCase, numbers as numbers.
# Doc: api-reference/crm/universal/product-rows/crm-item-productrow-list.md, crm/data-types.md
ITEM_PRODUCTROW_FIELDS: dict[str, Field] = dict([
    _f("id", INT, lambda r: r.id),
    _f("ownerId", INT, lambda r: r.owner_id, index="OWNER_ID"),
    _f("ownerType", STR, lambda r: r.owner_type),
    _f("productId", INT, lambda r: r.product_id),
    _f("productName", STR, lambda r: r.product_name),
    _f("price", MONEY, lambda r: r.price),
    _f("priceAccount", MONEY, lambda r: r.price),
    _f("priceExclusive", MONEY, lambda r: r.price),
    _f("priceNetto", MONEY, lambda r: r.price),
    _f("priceBrutto", MONEY, lambda r: r.price),
    _f("quantity", NUM, lambda r: r.quantity),
    _f("discountTypeId", INT, lambda r: r.discount_type_id),
    _f("discountRate", NUM, lambda r: r.discount_rate),
    _f("discountSum", NUM, lambda r: r.discount_sum),
    _f("taxRate", NUM, lambda r: r.tax_rate),
    _f("taxIncluded", YN, lambda r: r.tax_included),
    _f("customized", YN, lambda r: True),
    _f("measureCode", INT, lambda r: r.measure_code),
    _f("measureName", STR, lambda r: r.measure_name),
    _f("sort", INT, lambda r: r.sort),
    _f("xmlId", STR, lambda r: ""),
    _f("type", INT, lambda r: 1),
    _f("storeId", INT, lambda r: None),
])


def legacy_value(f: Field, v):
    """One value as a legacy crm.* method writes it."""
    kind = f.kind
    if kind == RAWNUM and v is not None and float(v).is_integer():
        return int(v)  # as PHP writes 1.0
    if kind in (RAWINT, RAWNUM):
        return v
    if v is None:
        return None
    if kind == INT:
        return str(v)
    if kind == LINK:
        return str(v) if v else None
    if kind == MONEY:
        return f"{v:.2f}"
    if kind == NUM:
        return str(int(v)) if float(v).is_integer() else str(v)
    if kind == DATETIME:
        return iso(v)
    if kind == DATE:
        return iso_date(v)
    if kind == YN:
        return "Y" if v else "N"
    return v


def item_value(f: Field, v):
    """One value as camelCase `crm.item.*` methods write it: numbers as numbers."""
    if v is None:
        return None
    if f.kind == YN:
        return "Y" if v else "N"
    if f.kind in (MONEY, NUM):
        fv = float(v)
        return int(fv) if fv.is_integer() else fv
    return v


def multifield_out(row, type_id: str) -> list[dict] | None:
    values = (row.multi or {}).get(type_id)
    if not values:
        return None
    return [{"ID": str(mid), "VALUE_TYPE": vt, "VALUE": val, "TYPE_ID": type_id} for mid, vt, val in values]


def resolve_select(select, fields: dict[str, Field], uf_names: list[str],
                   extra_prefix: str | None = None, extra_names: list[str] | None = None) -> list[str]:
    """Which keys a legacy list returns. Doc: api-reference/crm/deals/crm-deal-list.md (select):
    `*` = standard fields without user fields and multifields, `UF_*` = user fields,
    default `*` + `UF_*`; multifields only when named. ID always comes back.
    """
    names = [str(s).strip() for s in select if str(s).strip()] if select else []
    if not names:
        names = ["*", "UF_*"]
    out: dict[str, None] = {"ID": None}
    for name in names:
        up = name.upper()
        if name == "*":
            out.update((k, None) for k, f in fields.items() if f.standard)
        elif up == "UF_*":
            out.update((k, None) for k in uf_names)
        elif extra_prefix and up == extra_prefix + "*":
            out.update((k, None) for k in extra_names or ())
        elif up in fields or up in uf_names or (extra_names and up in extra_names):
            out[up] = None
    return list(out)


def render(row, keys: list[str], fields: dict[str, Field], extra=None) -> dict:
    """A row as a legacy crm.* dict with the given keys; `extra(row, key)` fills the rest."""
    out = {}
    uf = getattr(row, "uf", None) or {}
    for key in keys:
        f = fields.get(key)
        if f is not None:
            if f.kind == MULTI:
                values = multifield_out(row, key)
                if values:
                    out[key] = values
            else:
                out[key] = legacy_value(f, f.get(row))
        elif key.startswith("UF_"):
            out[key] = uf.get(key)
        elif extra is not None:
            out[key] = extra(row, key)
    return out


STATUS_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("ENTITY_ID", STR, lambda r: r.entity_id),
    _f("STATUS_ID", STR, lambda r: r.status_id),
    _f("NAME", STR, lambda r: r.name),
    _f("NAME_INIT", STR, lambda r: r.name if r.system else ""),
    _f("SORT", INT, lambda r: r.sort),
    _f("SYSTEM", YN, lambda r: r.system),
    _f("CATEGORY_ID", LINK, lambda r: r.category_id),
    _f("COLOR", STR, lambda r: r.color),
    _f("SEMANTICS", STR, lambda r: r.semantics),
])

USER_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("ACTIVE", YN, lambda r: r.active),
    _f("NAME", STR, lambda r: r.name),
    _f("LAST_NAME", STR, lambda r: r.last_name),
    _f("EMAIL", STR, lambda r: r.email),
    _f("WORK_POSITION", STR, lambda r: r.position),
    _f("USER_TYPE", STR, lambda r: "employee"),
    _f("IS_ONLINE", YN, lambda r: False),
])

# tasks.task.list filter keys. Doc: api-reference/tasks/tasks-task-list.md
TASK_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("TITLE", STR, lambda r: r.title),
    _f("DESCRIPTION", STR, lambda r: r.description),
    _f("RESPONSIBLE_ID", INT, lambda r: r.responsible_id, index="RESPONSIBLE_ID"),
    _f("CREATED_BY", INT, lambda r: r.created_by),
    _f("CREATED_DATE", DATETIME, lambda r: r.created),
    _f("CHANGED_DATE", DATETIME, lambda r: r.changed),
    _f("CLOSED_DATE", DATETIME, lambda r: r.closed),
    _f("DEADLINE", DATETIME, lambda r: r.deadline),
    _f("REAL_STATUS", INT, lambda r: r.status),
    _f("STATUS", INT, lambda r: r.status),
    _f("PRIORITY", INT, lambda r: r.priority),
    _f("GROUP_ID", INT, lambda r: r.group_id),
    _f("TAG", MULTI, lambda r: r.tags, index="TAG"),
    _f("UF_CRM_TASK", MULTI, lambda r: r.crm, index="UF_CRM_TASK"),
])

COMMENT_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("ENTITY_ID", INT, lambda r: r.entity_id, index="ENTITY_ID"),
    _f("ENTITY_TYPE", STR, lambda r: r.entity_type),
    _f("CREATED", DATETIME, lambda r: r.created),
    _f("COMMENT", STR, lambda r: r.comment),
    _f("AUTHOR_ID", INT, lambda r: r.author_id),
])

ACTIVITY_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("OWNER_ID", INT, lambda r: r.owner_id, index="OWNER_ID"),
    _f("OWNER_TYPE_ID", INT, lambda r: r.owner_type_id),
    _f("TYPE_ID", INT, lambda r: r.type_id),
    _f("PROVIDER_ID", STR, lambda r: "CRM_EMAIL" if r.type_id == 4 else "CRM_TODO"),
    _f("PROVIDER_TYPE_ID", STR, lambda r: "EMAIL" if r.type_id == 4 else "TODO"),
    _f("DIRECTION", INT, lambda r: r.direction),
    _f("ORIGIN_ID", STR, lambda r: r.origin_id),
    _f("ORIGINATOR_ID", STR, lambda r: r.originator_id),
    _f("SUBJECT", STR, lambda r: r.title),
    _f("DESCRIPTION", STR, lambda r: r.description),
    _f("DEADLINE", DATETIME, lambda r: r.deadline),
    _f("RESPONSIBLE_ID", INT, lambda r: r.responsible_id),
    _f("CREATED", DATETIME, lambda r: r.created),
    _f("COMPLETED", YN, lambda r: r.completed),
])

USERFIELD_FIELDS: dict[str, Field] = dict([
    _f("ID", INT, lambda r: r.id),
    _f("ENTITY_ID", STR, lambda r: r.entity_id),
    _f("FIELD_NAME", STR, lambda r: r.field_name),
    _f("USER_TYPE_ID", STR, lambda r: r.user_type_id),
    _f("XML_ID", STR, lambda r: r.xml_id),
    _f("SORT", INT, lambda r: r.sort),
    _f("MULTIPLE", YN, lambda r: r.multiple),
    _f("MANDATORY", YN, lambda r: r.mandatory),
    _f("SHOW_FILTER", STR, lambda r: r.show_filter),
    _f("SHOW_IN_LIST", YN, lambda r: r.show_in_list),
    _f("EDIT_IN_LIST", YN, lambda r: r.edit_in_list),
    _f("IS_SEARCHABLE", YN, lambda r: r.is_searchable),
])


def uf_fields(names: list[str]) -> dict[str, Field]:
    """Filterable user fields of an entity."""
    return {n: Field(n, STR, (lambda r, n=n: (r.uf or {}).get(n)), standard=False) for n in names}
