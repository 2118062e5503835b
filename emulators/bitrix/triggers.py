"""An application's CRM automation triggers, and the portal admin's automation bound to one of them: the
only way a REST app gets an SMS sent through the portal's SMS provider.

Doc: api-reference/crm/automation/triggers/crm-automation-trigger-add.md (CODE matching [a-z0-9.-_], NAME;
an existing CODE renames; an administrator in an application's context only: `ACCESS_DENIED` "Access
denied! Application context required" / "Access denied! Admin permissions required"; "Empty trigger
code!", "Wrong trigger code!", "Empty trigger name!"), crm-automation-trigger-list.md,
crm-automation-trigger-delete.md, crm-automation-trigger-execute.md (CODE, OWNER_TYPE_ID - leads, deals...
-, OWNER_ID; `true`; "Trigger with code {code} is not registered.", "Incorrect parameter OWNER_TYPE_ID.",
"Incorrect parameter OWNER_ID.").

The admin's side is a setting (`--sms-automation yes|no`, `POST /_emulator/faults {"sms_automation": true}`):
with it on, the robot "Send SMS" the admin put on the trigger sends the deal's UF_CRM_RS_MESSAGE to the
phone of the deal's contact (appended to the outbox); with it off a trigger fires and nothing is sent,
as on a portal where nobody bound a robot. The outbox key is read from the marker the sender left on
the contact's timeline before, never from the text (openlines.claim_marker).
"""

from __future__ import annotations

import re

from .openlines import claim_marker
from .protocol import ApiError, as_int, ci_get
from .registry import METHODS
from .rights import require_admin
from .store import Portal

SMS_FIELD = "UF_CRM_RS_MESSAGE"
_CODE = re.compile(r"^[a-z0-9._-]+$")
_OWNER_TYPES = {1: "leads", 2: "deals"}  # crm.enum.ownertype; the emulator has no quotes, invoices
_TABLE: dict = {}


def method(name: str):
    def add(func):
        _TABLE[name] = func
        return func
    return add


def register() -> None:
    METHODS.update(_TABLE)


def _app_admin(portal: Portal):
    from .app_methods import _app  # the app-only check the robots use

    # 403 as this emulator answered these methods on a webhook before they were served (the page shows 400)
    app = _app("Access denied! Application context required", status=403)
    require_admin(portal, status=400, text="Access denied! Admin permissions required")
    return app


def _code(params: dict) -> str:
    code = str(ci_get(params, "CODE") or "")
    if not code:
        raise ApiError(400, "", "Empty trigger code!")
    if not _CODE.match(code):
        raise ApiError(400, "", "Wrong trigger code!")
    return code


@method("crm.automation.trigger.add")
def trigger_add(portal: Portal, params: dict) -> bool:
    app = _app_admin(portal)
    code = _code(params)
    name = str(ci_get(params, "NAME") or "")
    if not name:
        raise ApiError(400, "", "Empty trigger name!")
    portal.triggers[code] = {"CODE": code, "NAME": name, "APP_ID": app.client_id}
    return True


@method("crm.automation.trigger.list")
def trigger_list(portal: Portal, params: dict) -> list:
    _app_admin(portal)
    return [{"NAME": t["NAME"], "CODE": t["CODE"]} for t in portal.triggers.values()]


@method("crm.automation.trigger.delete")
def trigger_delete(portal: Portal, params: dict) -> bool:
    _app_admin(portal)
    code = _code(params)
    if portal.triggers.pop(code, None) is None:
        raise ApiError(400, "", f"Trigger with code {code} is not registered.")
    return True


@method("crm.automation.trigger.execute")
def trigger_execute(portal: Portal, params: dict) -> bool:
    _app_admin(portal)
    code = _code(params)
    if code not in portal.triggers:
        raise ApiError(400, "", f"Trigger with code {code} is not registered.")
    table = _OWNER_TYPES.get(as_int(ci_get(params, "OWNER_TYPE_ID")) or 0)
    if table is None:
        raise ApiError(400, "", "Incorrect parameter OWNER_TYPE_ID.")
    owner_id = as_int(ci_get(params, "OWNER_ID")) or 0
    if owner_id <= 0:
        raise ApiError(400, "", "Incorrect parameter OWNER_ID.")
    rows = getattr(portal, table).rows if hasattr(portal, table) else {}
    row = rows.get(owner_id)
    if row is not None and portal.sms_automation:
        send_sms(portal, row)
    return True


def send_sms(portal: Portal, deal) -> None:
    """The admin's robot: "Send SMS" with the deal's UF_CRM_RS_MESSAGE to the deal's client: its contact's
    phone, else its company's."""
    text = str((deal.uf or {}).get(SMS_FIELD) or "")
    cards = [("contact", c, portal.contacts.rows.get(c)) for c in deal.contact_ids[:1]]
    cards += [("company", deal.company_id, portal.companies.rows.get(deal.company_id or 0))]
    phoned = [(kind, cid, phones[0]) for kind, cid, card in cards if card is not None
              for phones in [[v for _i, _t, v in (card.multi or {}).get("PHONE", [])]] if phones]
    if not text.strip() or not phoned or portal.outbox is None:
        return  # the robot has nothing to send, or nobody to send it to
    kind, owner, phone = phoned[0]
    marker = next((m for k, c, _p in phoned if (m := claim_marker(portal, k, c))), "")
    portal.outbox.add(channel="sms", to=phone, contact_id=owner, subject="", text=text, marker=marker)
