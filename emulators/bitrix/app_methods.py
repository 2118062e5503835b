"""Methods that work only in an application's context: event bindings, robots, bizproc.event.send,
app.info. Called through an incoming webhook they are refused as before.

`register()` runs after work_methods is loaded (methods.py), so these handlers replace its plain
refusals whatever the import order.
Doc: api-reference/events/event-bind.md, event-get.md, event-unbind.md;
api-reference/bizproc/bizproc-robot/bizproc-robot-{add,update,list,delete}.md, bizproc-event-send.md;
api-reference/common/system/app-info.md; api-reference/widgets/placement-bind.md, placement-unbind.md,
placement-get.md.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .app_context import KNOWN_EVENTS, AppContext, current_caller
from .protocol import ApiError, as_dict, as_int, ci_get
from .registry import METHODS
from .rights import require_admin
from .store import Portal

_CODE = re.compile(r"^[a-zA-Z0-9._-]+$")
_PROPERTY_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
_TABLE: dict = {}


def method(*names: str):
    def add(func):
        _TABLE.update({n.lower(): func for n in names})
        return func
    return add


def register() -> None:
    METHODS.update(_TABLE)


_ROBOT_FIELDS = ("HANDLER", "AUTH_USER_ID", "USE_SUBSCRIPTION", "NAME", "DESCRIPTION", "PROPERTIES",
                 "RETURN_PROPERTIES", "DOCUMENT_TYPE", "FILTER", "USE_PLACEMENT", "PLACEMENT_HANDLER")


def _app(text: str = "Application context required", status: int = 403) -> AppContext:
    caller = current_caller()
    if caller is None or caller.kind != "app" or caller.app is None or caller.app.installed is None:
        raise ApiError(status, "ACCESS_DENIED", text)
    return caller.app


def _admin(portal: Portal) -> None:
    """Doc: bizproc-robot-add.md, bizproc-robot-list.md - 400 `ACCESS_DENIED` "Access denied!" when not run
    by an administrator."""
    require_admin(portal, status=400)


# ---- events -------------------------------------------------------------------------------


@method("event.bind")
def event_bind(portal: Portal, params: dict) -> bool:
    """Doc: event-bind.md - 400 ERROR_EVENT_NOT_FOUND for an unknown event. A second identical binding
    is not documented; the emulator keeps one and answers `true`."""
    app = _app()
    event = str(ci_get(params, "event") or "").strip().upper()
    handler = str(ci_get(params, "handler") or "").strip()
    if event not in KNOWN_EVENTS:
        raise ApiError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    if not handler:
        raise ApiError(400, "ERROR_HANDLER_NOT_FOUND", "Handler not found")
    if str(ci_get(params, "event_type") or "online").lower() == "offline":
        raise ApiError(400, "ERROR_UNSUPPORTED", "Offline events are not emulated")
    auth_type = as_int(ci_get(params, "auth_type"), 0) or 0
    with app.lock:
        bindings = app.installed.bindings
        if not any(b["event"] == event and b["handler"] == handler for b in bindings):
            bindings.append({"id": max((b["id"] for b in bindings), default=0) + 1, "event": event,
                             "handler": handler, "auth_type": str(auth_type), "offline": 0})
    return True


@method("event.get")
def event_get(portal: Portal, params: dict) -> list:
    """Doc: event-get.md - `[{event, handler, auth_type, offline}]`."""
    return [{k: b[k] for k in ("event", "handler", "auth_type", "offline")} for b in _app().bindings()]


@method("event.unbind")
def event_unbind(portal: Portal, params: dict) -> dict:
    """Doc: event-unbind.md - removes every binding matching the given keys; `{"count": N}`."""
    app = _app()
    event = str(ci_get(params, "event") or "").strip().upper()
    handler = str(ci_get(params, "handler") or "").strip()
    with app.lock:
        keep, gone = [], 0
        for b in app.installed.bindings:
            if (not event or b["event"] == event) and (not handler or b["handler"] == handler):
                gone += 1
            else:
                keep.append(b)
        app.installed.bindings[:] = keep
    return {"count": gone}


# ---- placements -----------------------------------------------------------------------------


def _placement_app() -> AppContext:
    """Doc: placement-bind.md - 403 WRONG_AUTH_TYPE outside an application."""
    caller = current_caller()
    if caller is None or caller.kind != "app" or caller.app is None or caller.app.installed is None:
        raise ApiError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method "
                                               "Application context required")
    return caller.app


def _argument(name: str) -> ApiError:
    """Doc: placement-unbind.md - 400 ERROR_ARGUMENT "Argument 'PLACEMENT' is null or empty"."""
    return ApiError(400, "ERROR_ARGUMENT", f"Argument '{name}' is null or empty")


@method("placement.bind")
def placement_bind(portal: Portal, params: dict) -> bool:
    """Doc: placement-bind.md - administrators only; PLACEMENT and HANDLER required; `true`. A second identical
    binding is not documented (only the single-use placements answer ERROR_PLACEMENT_MAX_COUNT): kept once."""
    app = _placement_app()
    require_admin(portal)
    placement = str(ci_get(params, "PLACEMENT") or "").strip().upper()
    handler = str(ci_get(params, "HANDLER") or "").strip()
    if not placement:
        raise _argument("PLACEMENT")
    if not handler:
        raise _argument("HANDLER")
    title = ci_get(params, "TITLE")
    lang_all = ci_get(params, "LANG_ALL")
    with app.lock:
        bound = app.installed.placements
        if not any(p["placement"] == placement and p["handler"] == handler for p in bound):
            bound.append({"placement": placement, "handler": handler, "title": str(title or ""),
                          "description": str(ci_get(params, "DESCRIPTION") or ""),
                          "langAll": lang_all if isinstance(lang_all, dict) else {}})
    return True


@method("placement.unbind")
def placement_unbind(portal: Portal, params: dict) -> dict:
    """Doc: placement-unbind.md - without HANDLER every handler of the placement goes; `{"count": N}` (the page
    says the count grows by one per record found and one per removal)."""
    app = _placement_app()
    require_admin(portal)
    placement = str(ci_get(params, "PLACEMENT") or "").strip().upper()
    handler = str(ci_get(params, "HANDLER") or "").strip()
    if not placement:
        raise _argument("PLACEMENT")
    with app.lock:
        keep = [p for p in app.installed.placements
                if not (p["placement"] == placement and (not handler or p["handler"] == handler))]
        gone = len(app.installed.placements) - len(keep)
        app.installed.placements[:] = keep
    return {"count": gone * 2}


@method("placement.get")
def placement_get(portal: Portal, params: dict) -> list:
    """Doc: placement-get.md - the app's bound handlers."""
    return _placement_app().placements()


# ---- robots -------------------------------------------------------------------------------


def _invalid(text: str) -> ApiError:
    return ApiError(400, "ERROR_ACTIVITY_VALIDATION_FAILURE", text)


def _check_properties(value, *, required_name: bool = True) -> dict:
    if value in (None, "", []):
        return {}
    if not isinstance(value, dict):
        raise _invalid("Wrong properties array!")
    for key, prop in value.items():
        if not _PROPERTY_KEY.match(str(key)):
            raise _invalid(f"Wrong property key {key}!")
        if required_name and not (isinstance(prop, dict) and ci_get(prop, "Name")):
            raise _invalid(f"Empty property NAME {key}!")
    return {str(k): dict(v) for k, v in value.items()}


def _check_handler(app: AppContext, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ApiError(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported handler protocol")
    if not parts.netloc or parts.netloc != app.installed.domain:  # the app's own domain only
        raise ApiError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")


def _robot_fields(app: AppContext, fields: dict, *, partial: bool) -> dict:
    out = {name: ci_get(fields, name) for name in _ROBOT_FIELDS if ci_get(fields, name) is not None}
    if not partial or "HANDLER" in out:
        _check_handler(app, str(out.get("HANDLER") or ""))
    if not partial and not out.get("NAME"):
        raise _invalid("Empty activity NAME!")
    for key in ("PROPERTIES", "RETURN_PROPERTIES"):
        if key in out:
            out[key] = _check_properties(out[key])
    if str(out.get("USE_PLACEMENT") or "N").upper() == "Y" and not out.get("PLACEMENT_HANDLER"):
        raise _invalid("Empty PLACEMENT_HANDLER!")
    return out


@method("bizproc.robot.add")
def robot_add(portal: Portal, params: dict) -> bool:
    """Doc: bizproc-robot-add.md - validation errors in its table, ERROR_ACTIVITY_ALREADY_INSTALLED for a taken CODE."""
    app = _app()
    _admin(portal)
    if not params:
        raise _invalid("Empty data!")
    code = str(ci_get(params, "CODE") or "")
    if not code:
        raise _invalid("Empty activity code!")
    if not _CODE.match(code):
        raise _invalid("Wrong activity code!")
    fields = _robot_fields(app, params, partial=False)
    with app.lock:
        if code in app.installed.robots:
            raise ApiError(400, "ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
        app.installed.robots[code] = {"CODE": code, **fields}
    return True


@method("bizproc.robot.update")
def robot_update(portal: Portal, params: dict) -> bool:
    """Doc: bizproc-robot-update.md - `{CODE, FIELDS}`; an unknown CODE is ERROR_ACTIVITY_NOT_FOUND."""
    app = _app()
    _admin(portal)
    code = str(ci_get(params, "CODE") or "")
    fields = _robot_fields(app, as_dict(ci_get(params, "FIELDS")), partial=True)
    with app.lock:
        robot = app.installed.robots.get(code)
        if robot is None:
            raise ApiError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
        robot.update(fields)
    return True


@method("bizproc.robot.list")
def robot_list(portal: Portal, params: dict) -> list:
    """Doc: bizproc-robot-list.md - the codes of the app's robots (administrators only)."""
    app = _app()
    _admin(portal)
    return sorted(app.robots())


@method("bizproc.robot.delete")
def robot_delete(portal: Portal, params: dict) -> bool:
    """Doc: bizproc-robot-delete.md."""
    app = _app()
    _admin(portal)
    code = str(ci_get(params, "CODE") or "")
    with app.lock:
        if app.installed.robots.pop(code, None) is None:
            raise ApiError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    return True


@method("bizproc.event.send")
def event_send(portal: Portal, params: dict) -> bool:
    """Doc: bizproc-event-send.md - EVENT_TOKEN (docs' curl uses lowercase keys), RETURN_VALUES limited to
    the robot's RETURN_PROPERTIES, LOG_MESSAGE; an invalid or stale token is 403 ACCESS_DENIED."""
    app = _app("Access denied!")
    token = str(ci_get(params, "EVENT_TOKEN") or "")
    values = ci_get(params, "RETURN_VALUES")
    return app.event_send(token, values if isinstance(values, dict) else {},
                          str(ci_get(params, "LOG_MESSAGE") or ""))


@method("app.info")
def app_info(portal: Portal, params: dict) -> dict:
    """Doc: api-reference/common/system/app-info.md (400 ACCESS_DENIED outside an app)."""
    _app("Access denied! Application context required", status=400)
    return {"ID": 1, "CODE": "local.repeat-sales", "VERSION": 1, "STATUS": "L", "INSTALLED": True,
            "PAYMENT_EXPIRED": "N", "DAYS": None, "LANGUAGE_ID": "ru", "LICENSE": "ru_ent250",
            "LICENSE_TYPE": "ent250", "LICENSE_FAMILY": "ent"}
