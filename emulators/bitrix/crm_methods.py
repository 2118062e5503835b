"""crm.contact.*, crm.company.*, crm.deal.* and their user fields.

Legacy `crm.*` shapes: numbers as strings, `total` (+ `next`) on lists, `""` error codes with
HTTP 400 for validation. Doc: api-reference/crm/deals/*.md, crm/contacts/*.md,
crm/companies/crm-company-list.md, crm/deals/user-defined-fields/*.md, crm/contacts/userfield/*.md
"""

from __future__ import annotations

import re

from .fields import (
    COMPANY_FIELDS,
    CONTACT_FIELDS,
    DEAL_FIELDS,
    USERFIELD_FIELDS,
    render,
    resolve_select,
    uf_fields,
)
from .protocol import as_dict, as_int, as_list, bad_request, ci_get
from .query import MULTI, parse_query
from .records import UserField
from .registry import Listing, method
from .rights import require_admin
from .store import Portal

ENTITIES = {
    "contact": ("contacts", CONTACT_FIELDS, "CRM_CONTACT"),
    "company": ("companies", COMPANY_FIELDS, "CRM_COMPANY"),
    "deal": ("deals", DEAL_FIELDS, "CRM_DEAL"),
}


def check_array(params: dict, name: str):
    """Doc: crm-deal-list.md - "Parameter 'filter' must be array." for a non-object filter."""
    value = ci_get(params, name)
    if value in (None, "", [], {}):
        return {}
    if not isinstance(value, dict | list):
        raise bad_request(f"Parameter '{name}' must be array.")
    return as_dict(value)


def fields_param(params: dict, required: bool = True) -> dict:
    value = ci_get(params, "fields")
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise bad_request("Parameter 'fields' must be array.")
    return {str(k).upper(): v for k, v in value.items()}


def entity_id(params: dict) -> int:
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        # Doc: crm-deal-get.md "ID is not defined or invalid"
        raise bad_request("ID is not defined or invalid.")
    return rid


def list_entity(portal: Portal, kind: str, params: dict) -> Listing:
    table_name, fields, uf_entity = ENTITIES[kind]
    table = getattr(portal, table_name)
    uf_names = portal.uf_names(uf_entity)
    all_fields = {**fields, **uf_fields(uf_names)}
    q = parse_query(all_fields, check_array(params, "filter"), check_array(params, "order"),
                    ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(table, q)
    keys = resolve_select(as_list(ci_get(params, "select")), fields, uf_names)
    return Listing([render(r, keys, fields) for r in rows], total, nxt)


def get_entity(portal: Portal, kind: str, params: dict) -> dict:
    table_name, fields, uf_entity = ENTITIES[kind]
    row = getattr(portal, table_name).rows.get(entity_id(params))
    if row is None:
        raise bad_request("Not found")
    keys = ["ID", *[k for k in fields if k != "ID"], *portal.uf_names(uf_entity)]
    return render(row, keys, fields)


# ---- contacts -----------------------------------------------------------------------------

@method("crm.contact.list")
def contact_list(portal: Portal, params: dict) -> Listing:
    return list_entity(portal, "contact", params)


@method("crm.contact.get")
def contact_get(portal: Portal, params: dict) -> dict:
    return get_entity(portal, "contact", params)


@method("crm.contact.add")
def contact_add(portal: Portal, params: dict) -> int:
    return portal.write_contact(None, fields_param(params)).id


@method("crm.contact.update")
def contact_update(portal: Portal, params: dict) -> bool:
    rid = entity_id(params)
    row = portal.contacts.rows.get(rid)
    if row is None:
        raise bad_request("Contact is not found")  # Doc: crm-contact-update.md
    portal.write_contact(row, fields_param(params))
    return True


# ---- companies ----------------------------------------------------------------------------

@method("crm.company.list")
def company_list(portal: Portal, params: dict) -> Listing:
    return list_entity(portal, "company", params)


@method("crm.company.get")
def company_get(portal: Portal, params: dict) -> dict:
    return get_entity(portal, "company", params)


@method("crm.company.add")
def company_add(portal: Portal, params: dict) -> int:
    return portal.write_company(None, fields_param(params)).id


@method("crm.company.update")
def company_update(portal: Portal, params: dict) -> bool:
    row = portal.companies.rows.get(entity_id(params))
    if row is None:
        raise bad_request("Company is not found")
    portal.write_company(row, fields_param(params))
    return True


# ---- deals --------------------------------------------------------------------------------

@method("crm.deal.list")
def deal_list(portal: Portal, params: dict) -> Listing:
    return list_entity(portal, "deal", params)


@method("crm.deal.get")
def deal_get(portal: Portal, params: dict) -> dict:
    return get_entity(portal, "deal", params)


@method("crm.deal.add")
def deal_add(portal: Portal, params: dict) -> int:
    return portal.write_deal(None, fields_param(params)).id


@method("crm.deal.update")
def deal_update(portal: Portal, params: dict) -> bool:
    row = portal.deals.rows.get(entity_id(params))
    if row is None:
        raise bad_request("Not found")
    fields = fields_param(params)
    fields.pop("CATEGORY_ID", None)  # Doc: crm-deal-update.md - the pipeline is not changed here
    portal.write_deal(row, fields)
    return True


@method("crm.deal.contact.items.get")
def deal_contact_items(portal: Portal, params: dict) -> list:
    """Doc: api-reference/crm/deals/contacts/crm-deal-contact-items-get.md"""
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        raise bad_request("The parameter ownerEntityID is invalid or not defined.")
    deal = portal.deals.rows.get(rid)
    if deal is None:
        raise bad_request("Not found.")
    return [{"CONTACT_ID": cid, "SORT": (i + 1) * 10, "ROLE_ID": 0, "IS_PRIMARY": "Y" if i == 0 else "N"}
            for i, cid in enumerate(deal.contact_ids)]


# ---- field descriptions -------------------------------------------------------------------

_TYPES = {"int": "integer", "link": "integer", "str": "string", "money": "double", "num": "double",
          "datetime": "datetime", "date": "date", "yn": "char", "multi": "crm_multifield"}
_SPECIAL_TYPES = {"ASSIGNED_BY_ID": "user", "CREATED_BY_ID": "user", "MODIFY_BY_ID": "user",
                  "COMPANY_ID": "crm_company", "CONTACT_ID": "crm_contact", "CURRENCY_ID": "crm_currency",
                  "STAGE_ID": "crm_status", "TYPE_ID": "crm_status", "SOURCE_ID": "crm_status",
                  "CATEGORY_ID": "crm_category", "LEAD_ID": "crm_lead"}


def describe(portal: Portal, kind: str) -> dict:
    """Doc: api-reference/crm/deals/crm-deal-fields.md (type, isRequired, isReadOnly, ...)."""
    _, fields, uf_entity = ENTITIES[kind]
    out = {}
    for name, f in fields.items():
        out[name] = {"type": _SPECIAL_TYPES.get(name, _TYPES.get(f.kind, "string")), "isRequired": False,
                     "isReadOnly": f.readonly, "isImmutable": name == "CATEGORY_ID", "isMultiple": f.kind == MULTI,
                     "isDynamic": False, "title": name}
        if name == "STAGE_ID":
            out[name]["statusType"] = "DEAL_STAGE"
    for uf in portal.userfields.rows.values():
        if uf.entity_id == uf_entity:
            out[uf.field_name] = {"type": uf.user_type_id, "isRequired": uf.mandatory, "isReadOnly": False,
                                  "isImmutable": False, "isMultiple": uf.multiple, "isDynamic": True,
                                  "title": uf.field_name, "listLabel": uf.label, "formLabel": uf.label,
                                  "filterLabel": uf.label}
    return out


@method("crm.deal.fields")
def deal_fields(portal: Portal, params: dict) -> dict:
    return describe(portal, "deal")


@method("crm.contact.fields")
def contact_fields(portal: Portal, params: dict) -> dict:
    return describe(portal, "contact")


@method("crm.company.fields")
def company_fields(portal: Portal, params: dict) -> dict:
    return describe(portal, "company")


# ---- user fields --------------------------------------------------------------------------

USER_TYPES = ("string", "integer", "double", "boolean", "datetime", "date", "money", "url", "address",
              "enumeration", "file", "employee", "crm_status", "iblock_section", "iblock_element", "crm")
_FIELD_NAME = re.compile(r"^[A-Z0-9_]+$")


def userfield_add(portal: Portal, params: dict, entity: str) -> int:
    """Doc: api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md (admin only;
    FIELD_NAME gets the UF_CRM_ prefix, A-Z0-9_, <= 50 chars)."""
    require_admin(portal, status=400, code="", text="Access denied")
    fields = fields_param(params)
    name = str(fields.get("FIELD_NAME") or "").strip().upper()
    if not name:
        raise bad_request("The 'FIELD_NAME' field is not found.")
    user_type = str(fields.get("USER_TYPE_ID") or "").strip()
    if not user_type:
        raise bad_request("The 'USER_TYPE_ID' field is not found.")
    if name.startswith("UF_CRM_"):
        full = name
    elif name.startswith("UF_"):
        full = "UF_CRM_" + name[3:]
    else:
        full = "UF_CRM_" + name
    if not _FIELD_NAME.match(full):
        raise bad_request("Имя поля содержит недопустимые символы. Допустимыми являются: A-Z, 0-9 и _.",
                          "ERROR_CORE")
    if len(full) > 50:
        raise bad_request("Имя поля слишком длинное (больше 50-ти символов).", "ERROR_CORE")
    if user_type not in USER_TYPES:
        raise bad_request("Указан неверный пользовательский тип.", "ERROR_CORE")
    if portal.userfield(entity, full) is not None:
        # Not in the docs; the portal refuses a second field with the same code.
        raise bad_request(f"Поле \"{full}\" для объекта \"{entity}\" уже существует.", "ERROR_CORE")
    uid = portal.userfields.new_id()
    label = fields.get("LABEL") or fields.get("EDIT_FORM_LABEL") or ""
    if isinstance(label, dict):
        label = next(iter(label.values()), "")
    multiple = str(fields.get("MULTIPLE", "N")).upper() == "Y" and user_type != "boolean"
    portal.userfields.insert(uid, UserField(
        uid, entity, full, user_type, xml_id=fields.get("XML_ID"), sort=as_int(fields.get("SORT"), 100) or 100,
        multiple=multiple, mandatory=str(fields.get("MANDATORY", "N")).upper() == "Y",
        show_filter="E" if str(fields.get("SHOW_FILTER", "N")).upper() == "Y" else "N",
        settings=as_dict(fields.get("SETTINGS")), label=str(label), items=as_list(fields.get("LIST"))))
    return uid


def userfield_list(portal: Portal, params: dict, entity: str) -> Listing:
    """Doc: crm-contact-userfield-list.md (default order SORT, ID; labels only with filter LANG)."""
    filter_ = check_array(params, "filter")
    lang = ci_get(filter_, "LANG")
    filter_ = {k: v for k, v in filter_.items() if str(k).upper() != "LANG"}
    order = check_array(params, "order") or {"SORT": "ASC", "ID": "ASC"}
    q = parse_query(USERFIELD_FIELDS, filter_, order, ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.userfields, q, extra=lambda r: r.entity_id == entity)
    out = []
    for r in rows:
        item = {"ID": str(r.id), "ENTITY_ID": r.entity_id, "FIELD_NAME": r.field_name,
                "USER_TYPE_ID": r.user_type_id, "XML_ID": r.xml_id, "SORT": str(r.sort),
                "MULTIPLE": "Y" if r.multiple else "N", "MANDATORY": "Y" if r.mandatory else "N",
                "SHOW_FILTER": r.show_filter, "SHOW_IN_LIST": "Y" if r.show_in_list else "N",
                "EDIT_IN_LIST": "Y" if r.edit_in_list else "N", "IS_SEARCHABLE": "Y" if r.is_searchable else "N",
                "SETTINGS": r.settings}
        if r.user_type_id == "enumeration":
            item["LIST"] = r.items
        if lang:
            for key in ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL"):
                item[key] = r.label
            item["ERROR_MESSAGE"] = item["HELP_MESSAGE"] = None
        out.append(item)
    return Listing(out, total, nxt)


for _kind, _entity in (("contact", "CRM_CONTACT"), ("deal", "CRM_DEAL"), ("company", "CRM_COMPANY")):
    method(f"crm.{_kind}.userfield.add")(lambda portal, params, e=_entity: userfield_add(portal, params, e))
    method(f"crm.{_kind}.userfield.list")(lambda portal, params, e=_entity: userfield_list(portal, params, e))
