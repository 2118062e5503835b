"""E-mail activities: `crm.activity.add` with TYPE_ID=4 sends the letter from the portal's mailbox,
`crm.activity.get` reads one back. What is sent is appended to the emulator's outbox.

Doc: api-reference/crm/timeline/activities/activity-base/crm-activity-add.md (fields, the required
SUBJECT / RESPONSIBLE_ID / TYPE_ID / COMMUNICATIONS, the errors `The field ... is not defined or
invalid`, `Email send error. "From" is not found`, ORIGINATOR_ID / ORIGIN_ID for an external source),
tutorials/crm/how-to-add-crm-objects/how-to-send-email.md (DIRECTION=2, COMPLETED='Y' sends at once,
COMMUNICATIONS [{VALUE, ENTITY_ID, ENTITY_TYPE_ID}], SETTINGS.MESSAGE_FROM),
api-reference/crm/timeline/activities/activity-base/crm-activity-get.md.
"""

from __future__ import annotations

from .fields import ACTIVITY_FIELDS, render
from .protocol import ApiError, as_dict, as_int, as_list, ci_get
from .records import Activity
from .registry import method
from .store import Portal

EMAIL = 4  # crm.enum.activitytype: E-mail
OUTGOING = 2  # crm.enum.activitydirection
OWNERS = {2: "deals", 3: "contacts", 4: "companies"}


def _refused(text: str) -> ApiError:
    return ApiError(400, "", text)  # the page's errors come with an empty code and the text


@method("crm.activity.add")
def activity_add(portal: Portal, params: dict) -> int:
    fields = {str(k).upper(): v for k, v in as_dict(ci_get(params, "fields")).items()}
    for name in ("SUBJECT", "RESPONSIBLE_ID", "TYPE_ID"):
        if not fields.get(name):
            raise _refused(f"The field {name} is not defined or invalid.")
    type_id = as_int(fields.get("TYPE_ID"))
    comms = [{str(k).upper(): v for k, v in as_dict(c).items()} for c in as_list(fields.get("COMMUNICATIONS"))]
    if not comms:
        raise _refused("The field COMMUNICATIONS is not defined or invalid.")
    if type_id == EMAIL and len(comms) > 1:
        raise _refused("The only one communication is allowed for activity of specified type.")
    owner_type, owner_id = as_int(fields.get("OWNER_TYPE_ID")), as_int(fields.get("OWNER_ID"))
    owner_type = owner_type or as_int(comms[0].get("ENTITY_TYPE_ID"))
    owner_id = owner_id or as_int(comms[0].get("ENTITY_ID"))
    table = getattr(portal, OWNERS.get(owner_type or 0, ""), None)
    if table is None or owner_id not in table.rows:
        raise _refused("Could not build binding. Please ensure that owner info and communications are defined "
                       "correctly.")
    direction = as_int(fields.get("DIRECTION")) or 0
    completed = str(fields.get("COMPLETED") or "N").upper() == "Y"
    sends = type_id == EMAIL and direction == OUTGOING and completed
    to = str(comms[0].get("VALUE") or "")
    if sends and not getattr(portal, "mailbox", True):
        raise _refused('Email send error. "From" is not found')
    if sends and "@" not in to:
        raise _refused("Email send error. Invalid email is specified")
    settings = as_dict(fields.get("SETTINGS"))
    aid = portal.activities.new_id()
    activity = Activity(aid, owner_type, owner_id, str(fields.get("SUBJECT") or ""),
                        str(fields.get("DESCRIPTION") or ""), portal.clock(), as_int(fields.get("RESPONSIBLE_ID")) or 0,
                        portal.clock(), completed, type_id or 0, direction, str(fields.get("ORIGIN_ID") or ""),
                        str(fields.get("ORIGINATOR_ID") or ""), comms, dict(settings))
    portal.activities.insert(aid, activity, {"OWNER_ID": owner_id})
    outbox = getattr(portal, "outbox", None)
    if sends and outbox is not None:
        outbox.add(channel="email", to=to, contact_id=as_int(comms[0].get("ENTITY_ID")) or owner_id,
                   subject=activity.title, text=activity.description, marker=activity.origin_id)
    return aid


@method("crm.activity.get")
def activity_get(portal: Portal, params: dict) -> dict:
    aid = as_int(ci_get(params, "id"))
    row = portal.activities.rows.get(aid or 0)
    if row is None:
        raise ApiError(400, "", "Not found")
    out = render(row, list(ACTIVITY_FIELDS), ACTIVITY_FIELDS)
    out["COMMUNICATIONS"] = [dict(c) for c in row.communications]
    out["SETTINGS"] = dict(row.settings)
    return out
