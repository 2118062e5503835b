"""What write-back needs beyond tasks: deal and comment deletion, user field deletion, business processes.

Doc: api-reference/crm/deals/crm-deal-delete.md, crm/contacts/crm-contact-delete.md, crm/timeline/comments/crm-timeline-comment-delete.md,
crm/contacts/userfield/crm-contact-userfield-delete.md, crm/companies/userfields/crm-company-userfield-delete.md,
api-reference/bizproc/bizproc-workflow-start.md, bizproc-workflow-instances.md,
bizproc/template/bizproc-workflow-template-list.md.

Business process templates are made by an administrator in the portal's designer (their REST
`bizproc.workflow.template.add` needs an application context), so the emulator has
`add_workflow_template(portal, name, entity)` for tests and the demo, as that administrator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .crm_methods import check_array
from .fields import render
from .protocol import ApiError, as_dict, as_int, as_list, bad_request, ci_get, iso
from .query import DATETIME, INT, STR, Field, Table, parse_query
from .registry import Listing, method
from .rights import caller_user_id, require_admin
from .store import Portal

CRM_DOCUMENTS = {"CCrmDocumentContact": ("contacts", "CONTACT_", "CONTACT"),
                 "CCrmDocumentCompany": ("companies", "COMPANY_", "COMPANY"),
                 "CCrmDocumentDeal": ("deals", "DEAL_", "DEAL")}


@dataclass(slots=True, eq=False)
class Template:
    id: int
    name: str
    entity: str  # CCrmDocumentContact, CCrmDocumentCompany, CCrmDocumentDeal
    module_id: str = "crm"
    auto_execute: int = 0
    user_id: int = 1
    modified: int = 0
    parameters: dict = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Instance:
    """A started workflow. The emulated templates wait (like one with a pause), so instances stay listed."""

    id: int  # the row's place in the table
    workflow_id: str  # what the API calls ID, e.g. 66e81a641752f8.56521481
    template_id: int
    entity: str
    document_id: str  # CONTACT_15
    started: int
    started_by: int
    module_id: str = "crm"


class Bizproc:
    def __init__(self) -> None:
        self.templates = Table("workflow_template")
        self.instances = Table("workflow")
        self.terminated: list[str] = []
        self.sequence = 0


def bizproc(portal: Portal) -> Bizproc:
    """The portal's business processes, created on first use."""
    state = getattr(portal, "bizproc", None)
    if state is None:
        state = portal.bizproc = Bizproc()
    return state


def add_workflow_template(portal: Portal, name: str, entity: str = "CCrmDocumentContact", *,
                          parameters: dict | None = None) -> int:
    """An administrator saves a business process template in the designer; returns its ID."""
    if entity not in CRM_DOCUMENTS:
        raise ValueError(f"entity must be one of {', '.join(CRM_DOCUMENTS)}")
    with portal.lock:
        bp = bizproc(portal)
        tid = bp.templates.new_id()
        bp.templates.insert(tid, Template(tid, name, entity, modified=portal.clock(), parameters=parameters or {}))
        return tid


def remove_workflow_template(portal: Portal, template_id: int) -> None:
    with portal.lock:
        bizproc(portal).templates.delete(template_id)


def _require_admin(portal: Portal, status: int = 403) -> None:
    """Doc: bizproc-workflow-start.md, bizproc-workflow-instances.md, bizproc-workflow-terminate.md - 403
    ACCESS_DENIED "Access denied!" for a non-administrator (template.list shows the same body with 400)."""
    require_admin(portal, status=status)


# ---- deals and comments ---------------------------------------------------------------------

@method("crm.deal.delete")
def deal_delete(portal: Portal, params: dict) -> bool:
    """Deletes the deal with its product rows and timeline comments. Doc: crm/deals/crm-deal-delete.md"""
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        raise bad_request("ID is not defined or invalid.")
    deal = portal.deals.rows.get(rid)
    if deal is None:
        raise bad_request("Not found")
    for row in portal.rows_of(rid):
        portal.product_rows.delete(row.id, {"OWNER_ID": rid})
    for cid in list(portal.comments.indexes["ENTITY_ID"].get(rid, ())):
        comment = portal.comments.rows.get(cid)
        if comment is not None and comment.entity_type == "deal":
            portal.comments.delete(cid, {"ENTITY_ID": rid})
    contact = deal.contact_ids[0] if deal.contact_ids else 0
    portal.deals.delete(rid, {"CONTACT_ID": contact, "COMPANY_ID": deal.company_id or 0})
    portal.emit("ONCRMDEALDELETE", rid)  # to every handler bound to it (Doc: crm/deals/events/on-crm-deal-delete.md)
    return True


@method("crm.contact.delete")
def contact_delete(portal: Portal, params: dict) -> bool:
    """A contact leaves; its deals stay (their CONTACT_ID still names it). Doc: crm/contacts/crm-contact-delete.md"""
    rid = as_int(ci_get(params, "id"))
    if not rid or rid < 1:
        raise bad_request("ID is not defined or invalid.")
    row = portal.contacts.rows.get(rid)
    if row is None:
        raise bad_request("Элемент не найден", "ERROR_CORE")
    portal.contacts.delete(rid, {"COMPANY_ID": row.company_id or 0})
    return True


_OWNER_TYPES = {2: "deal", 3: "contact", 4: "company"}


@method("crm.timeline.comment.delete")
def comment_delete(portal: Portal, params: dict) -> None:
    """`result` is always null. Doc: crm/timeline/comments/crm-timeline-comment-delete.md"""
    cid = as_int(ci_get(params, "id"))
    if not cid:
        raise ApiError(400, "100", "Не переданы обязательные поля")
    comment = portal.comments.rows.get(cid)
    owner_type = as_int(ci_get(params, "ownerTypeId"))
    owner_id = as_int(ci_get(params, "ownerId"))
    if comment is None or (owner_type and (_OWNER_TYPES.get(owner_type) != comment.entity_type
                                           or owner_id != comment.entity_id)):
        raise ApiError(400, "NOT_FOUND", "Not found.")
    portal.comments.delete(cid, {"ENTITY_ID": comment.entity_id})
    return None


# ---- user fields ----------------------------------------------------------------------------

def userfield_delete(portal: Portal, params: dict, entity: str) -> bool:
    """Doc: crm/contacts/userfield/crm-contact-userfield-delete.md (admin only; the values go too)."""
    _require_admin_userfield(portal)
    uid = as_int(ci_get(params, "id"))
    if not uid or uid < 1:
        raise bad_request("ID is not defined or invalid")
    uf = portal.userfields.rows.get(uid)
    if uf is None or uf.entity_id != entity:
        raise bad_request("Not found", "ERROR_NOT_FOUND")
    portal.userfields.delete(uid)
    table = {"CRM_CONTACT": portal.contacts, "CRM_COMPANY": portal.companies, "CRM_DEAL": portal.deals}[entity]
    for row in table.rows.values():
        if row.uf:
            row.uf.pop(uf.field_name, None)
    return True


def _require_admin_userfield(portal: Portal) -> None:
    """Doc: crm-contact-userfield-add.md - 400, an empty code and "Access denied" for a non-administrator."""
    require_admin(portal, status=400, code="", text="Access denied")


for _kind, _entity in (("contact", "CRM_CONTACT"), ("company", "CRM_COMPANY"), ("deal", "CRM_DEAL")):
    method(f"crm.{_kind}.userfield.delete")(lambda portal, params, e=_entity: userfield_delete(portal, params, e))


# ---- business processes ---------------------------------------------------------------------

TEMPLATE_FIELDS: dict[str, Field] = {
    "ID": Field("ID", INT, lambda t: t.id), "MODULE_ID": Field("MODULE_ID", STR, lambda t: t.module_id),
    "ENTITY": Field("ENTITY", STR, lambda t: t.entity),
    "DOCUMENT_TYPE": Field("DOCUMENT_TYPE", STR, lambda t: CRM_DOCUMENTS[t.entity][2]),
    "AUTO_EXECUTE": Field("AUTO_EXECUTE", INT, lambda t: t.auto_execute), "NAME": Field("NAME", STR, lambda t: t.name),
    "MODIFIED": Field("MODIFIED", DATETIME, lambda t: t.modified), "USER_ID": Field("USER_ID", INT, lambda t: t.user_id),
}
INSTANCE_FIELDS: dict[str, Field] = {
    "ID": Field("ID", STR, lambda w: w.workflow_id), "MODIFIED": Field("MODIFIED", DATETIME, lambda w: w.started),
    "OWNED_UNTIL": Field("OWNED_UNTIL", DATETIME, lambda w: None), "MODULE_ID": Field("MODULE_ID", STR, lambda w: w.module_id),
    "ENTITY": Field("ENTITY", STR, lambda w: w.entity), "DOCUMENT_ID": Field("DOCUMENT_ID", STR, lambda w: w.document_id),
    "STARTED": Field("STARTED", DATETIME, lambda w: w.started),
    "STARTED_BY": Field("STARTED_BY", INT, lambda w: w.started_by),
    "TEMPLATE_ID": Field("TEMPLATE_ID", INT, lambda w: w.template_id),
}


def _listing(table: Table, fields: dict[str, Field], params: dict, default_select: list[str], default_order):
    q = parse_query(fields, check_array(params, "filter"), check_array(params, "order") or default_order,
                    ci_get(params, "start"))
    rows, total, nxt = _engine_run(table, q)
    select = [str(s).upper() for s in as_list(ci_get(params, "select"))] or default_select
    keys = [k for k in select if k in fields]
    out = [render(r, keys, fields) for r in rows]
    return Listing(out, total, nxt)


def _engine_run(table: Table, q):
    from .query import QueryEngine

    return QueryEngine(cache_size=0).run(table, q)


@method("bizproc.workflow.template.list")
def template_list(portal: Portal, params: dict) -> Listing:
    """Admin only (400 ACCESS_DENIED); default select ['ID']. Doc: bizproc/template/bizproc-workflow-template-list.md"""
    _require_admin(portal, status=400)
    return _listing(bizproc(portal).templates, TEMPLATE_FIELDS, params, ["ID"], {"ID": "ASC"})


@method("bizproc.workflow.instances", "bizproc.workflow.instance.list")
def instances(portal: Portal, params: dict) -> Listing:
    """Admin only; default select ID, MODIFIED, OWNED_UNTIL. Doc: bizproc/bizproc-workflow-instances.md"""
    _require_admin(portal)
    return _listing(bizproc(portal).instances, INSTANCE_FIELDS, params, ["ID", "MODIFIED", "OWNED_UNTIL"],
                    {"MODIFIED": "DESC"})


@method("bizproc.workflow.start")
def workflow_start(portal: Portal, params: dict) -> str:
    """Starts a template on a CRM document; returns the workflow id. Doc: bizproc/bizproc-workflow-start.md
    ("Кто может выполнять метод: администратор"; 403 ACCESS_DENIED "Access denied!" for anyone else)."""
    _require_admin(portal)
    bp = bizproc(portal)
    raw_tid = ci_get(params, "TEMPLATE_ID")
    if raw_tid in (None, "", 0, "0"):
        raise ApiError(400, "ERROR_WRONG_WORKFLOW_ID", "Empty TEMPLATE_ID")
    template = bp.templates.rows.get(as_int(raw_tid) or 0)
    if template is None:
        raise ApiError(400, "ERROR_WRONG_WORKFLOW_ID", "Template not found")
    doc = as_list(ci_get(params, "DOCUMENT_ID"))
    if len(doc) != 3 or not all(isinstance(x, str | int) for x in doc):
        raise bad_request("Wrong DOCUMENT_ID!")
    module, entity, document = (str(x) for x in doc)
    if module != "crm" or entity not in CRM_DOCUMENTS:
        raise bad_request("Incorrect document type!")
    table_name, prefix, _type = CRM_DOCUMENTS[entity]
    if not document.startswith(prefix) or not as_int(document[len(prefix):]):
        raise bad_request("Wrong DOCUMENT_ID!")
    if entity != template.entity:
        raise bad_request("Template type and DOCUMENT_ID mismatch!")
    if as_int(document[len(prefix):]) not in getattr(portal, table_name).rows:
        raise bad_request("Wrong DOCUMENT_ID!")
    as_dict(ci_get(params, "PARAMETERS"))  # accepted as given
    bp.sequence += 1
    now = portal.clock()
    digest = hashlib.sha256(f"{now}:{bp.sequence}".encode()).hexdigest()
    wid = f"{digest[:14]}.{int(digest[14:22], 16) % 100_000_000:08d}"  # like 66e81a641752f8.56521481
    bp.instances.insert(bp.sequence, Instance(bp.sequence, wid, template.id, entity, document, now,
                                              caller_user_id(portal)))
    return wid


@method("bizproc.workflow.terminate")
def workflow_terminate(portal: Portal, params: dict) -> bool:
    """Stops a running workflow; it leaves the instance list. Doc: bizproc/bizproc-workflow-terminate.md"""
    _require_admin(portal)
    wid = str(ci_get(params, "ID") or "")
    if not wid:
        raise ApiError(400, "ERROR_WRONG_WORKFLOW_ID", "Empty workflow instance ID")
    bp = bizproc(portal)
    for rid, instance in list(bp.instances.rows.items()):
        if instance.workflow_id == wid:
            bp.instances.delete(rid)
            bp.terminated.append(wid)
    return True


def workflows_started(portal: Portal) -> list[dict]:
    """Ground truth for tests and /_emulator/stats: every started workflow."""
    with portal.lock:
        return [{"id": w.workflow_id, "template_id": w.template_id, "document": [w.module_id, w.entity, w.document_id],
                 "started": iso(w.started)} for w in bizproc(portal).instances]
