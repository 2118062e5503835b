"""Product rows, the product catalogue, pipelines and stages.

The consumption cycle of a product is product property 101 (CODE "RS_CYCLE_DAYS"),
returned as `PROPERTY_101: {"valueId": ..., "value": "30"}` when selected (`PROPERTY_*` or by
name); the category is the product's section (SECTION_ID, crm.productsection.list).
"""

from __future__ import annotations

from .crm_methods import check_array, entity_id
from .fields import (
    ITEM_PRODUCTROW_FIELDS,
    PRODUCT_FIELDS,
    PRODUCTROW_FIELDS,
    SECTION_FIELDS,
    STATUS_FIELDS,
    item_value,
    render,
    resolve_select,
)
from .protocol import ApiError, as_int, as_list, bad_request, ci_get
from .query import parse_query
from .registry import Listing, method
from .store import (
    CATALOG_ID,
    CYCLE_PROPERTY_CODE,
    CYCLE_PROPERTY_ID,
    TERM_PROPERTY_CODE,
    TERM_PROPERTY_ID,
    Portal,
)

_CYCLE_KEY = f"PROPERTY_{CYCLE_PROPERTY_ID}"
_TERM_KEY = f"PROPERTY_{TERM_PROPERTY_ID}"


# ---- product rows -------------------------------------------------------------------------

def _legacy_rows(rows) -> list[dict]:
    keys = list(PRODUCTROW_FIELDS)
    return [render(r, keys, PRODUCTROW_FIELDS) for r in rows]


def _item_rows(rows) -> list[dict]:
    return [{k: item_value(f, f.get(r)) for k, f in ITEM_PRODUCTROW_FIELDS.items()} for r in rows]


@method("crm.deal.productrows.get")
def deal_rows_get(portal: Portal, params: dict) -> list:
    """Doc: api-reference/crm/deals/crm-deal-productrows-get.md (all rows, no paging)."""
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        raise bad_request("The parameter id is invalid or not defined.")
    if rid not in portal.deals.rows:
        raise bad_request("Not found")
    return _legacy_rows(portal.rows_of(rid))


@method("crm.deal.productrows.set")
def deal_rows_set(portal: Portal, params: dict) -> bool:
    """Doc: api-reference/crm/deals/crm-deal-productrows-set.md (replaces all rows)."""
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        raise bad_request("The parameter id is invalid or not defined.")
    deal = portal.deals.rows.get(rid)
    if deal is None:
        raise bad_request("Not found")
    portal.set_product_rows(deal, as_list(ci_get(params, "rows")))
    return True


@method("crm.item.productrow.list")
def item_rows_list(portal: Portal, params: dict) -> Listing:
    """`=ownerType` and `=ownerId` are required; `=` "works with arrays as well", so one call can
    read the rows of up to 50 deals. Doc: api-reference/crm/universal/product-rows/crm-item-productrow-list.md
    """
    filter_ = ci_get(params, "filter")
    if not isinstance(filter_, dict):
        raise ApiError(400, "100", "Could not find value for parameter {filter}")
    if "=ownerType" not in filter_ or "=ownerId" not in filter_:
        raise ApiError(400, "REQUIRED_ARG_MISSING", "Required fields: =ownerType, =ownerId")
    q = parse_query(ITEM_PRODUCTROW_FIELDS, filter_, check_array(params, "order"), ci_get(params, "start"),
                    fold_case=False, default_order="id")
    rows, total, nxt = portal.engine.run(portal.product_rows, q, id_field="id")
    return Listing({"productRows": _item_rows(rows)}, total, nxt)


@method("crm.item.productrow.set")
def item_rows_set(portal: Portal, params: dict) -> dict:
    """Replace the rows of a deal (ownerType "D"); camelCase rows in and out."""
    owner_type = str(ci_get(params, "ownerType") or "")
    owner_id = as_int(ci_get(params, "ownerId"))
    deal = portal.deals.rows.get(owner_id or 0) if owner_type == "D" else None
    if deal is None:
        raise ApiError(400, "NOT_FOUND", "Элемент не найден")
    items = []
    for row in as_list(ci_get(params, "productRows")):
        row = row if isinstance(row, dict) else {}
        items.append({"PRODUCT_ID": row.get("productId"), "PRODUCT_NAME": row.get("productName"),
                      "PRICE": row.get("price"), "QUANTITY": row.get("quantity"), "SORT": row.get("sort")})
    portal.set_product_rows(deal, items)
    return {"productRows": _item_rows(portal.rows_of(deal.id))}


@method("crm.productrow.list")
def productrow_list(portal: Portal, params: dict) -> Listing:
    """Legacy list; OWNER_TYPE and one OWNER_ID are required.
    Doc: api-reference/crm/outdated/productrow-old/crm-productrow-list.md
    """
    filter_ = check_array(params, "filter")
    upper = {str(k).upper().lstrip("="): v for k, v in filter_.items()}
    owner_id = upper.get("OWNER_ID")
    if not upper.get("OWNER_TYPE") or isinstance(owner_id, list | dict) or not as_int(owner_id):
        raise bad_request("The parameter 'OWNER_TYPE' or 'OWNER_ID' is not defined or invalid.")
    q = parse_query(PRODUCTROW_FIELDS, filter_, check_array(params, "order"), ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.product_rows, q)
    select = as_list(ci_get(params, "select"))
    keys = resolve_select(select, PRODUCTROW_FIELDS, []) if select else list(PRODUCTROW_FIELDS)
    return Listing([render(r, keys, PRODUCTROW_FIELDS) for r in rows], total, nxt)


# ---- catalogue ----------------------------------------------------------------------------

def _property(row, key: str):
    if key == _CYCLE_KEY:
        if row.cycle_days is None:
            return None
        return {"valueId": str(100000 + row.id), "value": str(row.cycle_days)}
    if key == _TERM_KEY and row.term_days is not None:
        return {"valueId": str(200000 + row.id), "value": str(row.term_days)}
    return None


@method("crm.product.list")
def product_list(portal: Portal, params: dict) -> Listing:
    """Doc: api-reference/crm/outdated/products/crm-product-list.md (PROPERTY_* in select)."""
    q = parse_query(PRODUCT_FIELDS, check_array(params, "filter"), check_array(params, "order"),
                    ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.products, q)
    select = as_list(ci_get(params, "select")) or ["*"]
    keys = resolve_select(select, PRODUCT_FIELDS, [], "PROPERTY_", [_CYCLE_KEY, _TERM_KEY])
    return Listing([render(r, keys, PRODUCT_FIELDS, _property) for r in rows], total, nxt)


@method("crm.product.get")
def product_get(portal: Portal, params: dict) -> dict:
    row = portal.products.rows.get(entity_id(params))
    if row is None:
        raise bad_request("Not found")
    return render(row, [*PRODUCT_FIELDS, _CYCLE_KEY, _TERM_KEY], PRODUCT_FIELDS, _property)


@method("crm.product.property.list")
def product_property_list(portal: Portal, params: dict) -> list:
    """Doc: api-reference/crm/outdated/products/crm-product-property-list.md (filter by CODE)."""
    rows = [_number_property(CYCLE_PROPERTY_ID, CYCLE_PROPERTY_CODE, "Цикл потребления, дней"),
            _number_property(TERM_PROPERTY_ID, TERM_PROPERTY_CODE, "Срок подписки или обслуживания, дней")]
    code = {str(k).upper(): v for k, v in check_array(params, "filter").items()}.get("CODE")
    return [r for r in rows if code is None or r["CODE"] == code]


def _number_property(pid: int, code: str, name: str) -> dict:
    return {"ID": str(pid), "IBLOCK_ID": str(CATALOG_ID), "NAME": name,
            "ACTIVE": "Y", "SORT": "500", "CODE": code, "DEFAULT_VALUE": "",
            "PROPERTY_TYPE": "N", "ROW_COUNT": "1", "COL_COUNT": "30", "LIST_TYPE": "L", "MULTIPLE": "N",
            "XML_ID": code, "FILE_TYPE": "", "LINK_IBLOCK_ID": "0", "IS_REQUIRED": "N",
            "USER_TYPE": None, "USER_TYPE_SETTINGS": None}


@method("crm.productsection.list")
def section_list(portal: Portal, params: dict) -> Listing:
    """Doc: api-reference/crm/outdated/product-section/crm-product-section-list.md"""
    filter_ = {k: v for k, v in check_array(params, "filter").items() if str(k).upper() != "CATALOG_ID"}
    q = parse_query(SECTION_FIELDS, filter_, check_array(params, "order"), ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.sections, q)
    keys = resolve_select(as_list(ci_get(params, "select")), SECTION_FIELDS, [])
    return Listing([render(r, keys, SECTION_FIELDS) for r in rows], total, nxt)


# ---- pipelines and stages -----------------------------------------------------------------

_EXTRA = {None: "process", "S": "success", "F": "failure"}


@method("crm.status.list")
def status_list(portal: Portal, params: dict) -> Listing:
    """Doc: api-reference/crm/status/crm-status-list.md"""
    q = parse_query(STATUS_FIELDS, check_array(params, "filter"),
                    check_array(params, "order") or {"SORT": "ASC"}, ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.statuses, q)
    out = []
    for r in rows:
        item = render(r, list(STATUS_FIELDS), STATUS_FIELDS)
        semantics = _EXTRA[r.semantics]
        if r.semantics == "F" and r.status_id.endswith("APOLOGY"):
            semantics = "apology"
        if r.entity_id.startswith("DEAL_STAGE"):
            item["EXTRA"] = {"SEMANTICS": semantics, "COLOR": r.color}
        out.append(item)
    return Listing(out, total, nxt)


@method("crm.category.list")
def category_list(portal: Portal, params: dict) -> Listing:
    """Doc: api-reference/crm/universal/category/crm-category-list.md"""
    type_id = as_int(ci_get(params, "entityTypeId"))
    if type_id is None:
        raise ApiError(400, "100", "Could not find value for parameter {entityTypeId}")
    if type_id == 1:
        raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type `LEAD` is not supported")
    if type_id == 2:
        cats = [{"id": cid, "name": name, "sort": 100 * (cid + 1), "entityTypeId": 2,
                 "isDefault": "Y" if cid == 0 else "N"} | ({} if cid == 0 else {"originId": "", "originatorId": ""})
                for cid, name in sorted(portal.categories.items())]
    elif type_id in (3, 4):
        cats = [{"id": 0, "name": "Контакты" if type_id == 3 else "Компании", "sort": 100,
                 "entityTypeId": type_id, "isDefault": "Y"}]
    else:
        raise ApiError(400, "NOT_FOUND", "Смарт-процесс не найден")
    return Listing({"categories": cats}, len(cats))
