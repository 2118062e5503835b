"""Who may call what: each REST call carries a user (an administrator or not) and the scopes of its
webhook or application, as on a real portal.

Doc: _includes/system-errors.md - 403 `insufficient_scope` "The request requires higher privileges than
provided by the webhook token"; api-reference/scopes/permissions.md (the scope codes: crm, task, user,
bizproc, placement, catalog...); api-reference/common/system/scope.md, common/users/profile.md,
common/users/user-admin.md and common/system/app-info.md need no scope ("базовый"). Admin-only methods
say so on their pages ("Кто может выполнять метод: администратор"), each with its own error body.
"""

from __future__ import annotations

from collections.abc import Iterable

from .app_context import current_caller
from .protocol import ApiError
from .store import Portal

# what a webhook made with every box the plugin could use ticked
DEFAULT_SCOPES = frozenset({"crm", "task", "user", "user_brief", "user_basic", "bizproc", "placement", "catalog"})
# the full list `scope {full: true}` answers (Doc: api-reference/scopes/permissions.md, abridged)
ALL_SCOPES = ("bizproc", "calendar", "catalog", "crm", "department", "disk", "entity", "im", "imbot",
              "imopenlines", "lists", "log", "placement", "sale", "task", "telephony", "user", "user_basic",
              "user_brief")
# methods of the basic scope: any webhook or token may call them (Doc: each page's "Scope: базовый";
# api-reference/events/event-bind.md needs an application, not a scope)
BASIC = frozenset({"batch", "scope", "profile", "user.admin", "user.access", "app.info", "methods", "method.get",
                   "server.time", "feature.get", "access.name", "event.bind", "event.get", "event.unbind",
                   "event.offline.get", "app.option.get", "app.option.set"})
# a method's scope is its first name part, but for these (Doc: api-reference/scopes/permissions.md)
_SCOPE_OF_PREFIX = {"tasks": "task", "task": "task", "imopenlines": "imopenlines", "im": "im"}
# user.* needs `user`; its minimal versions cover reading users (Doc: api-reference/scopes/permissions.md)
_USER_READS = frozenset({"user.get", "user.current", "user.search"})
INSUFFICIENT_SCOPE = "The request requires higher privileges than provided by the webhook token"


def parse_scopes(value: str | Iterable[str] | None) -> frozenset[str]:
    """`"crm,task,user"` (the `--scopes` flag) or a list; None = DEFAULT_SCOPES."""
    if value is None:
        return DEFAULT_SCOPES
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = {s.strip().lower() for s in items if s and s.strip()}
    if "user" in scopes:  # the full scope includes its minimal versions
        scopes |= {"user_brief", "user_basic"}
    return frozenset(scopes)


def scope_of(method: str) -> str | None:
    """The scope a method needs, or None for the basic ones."""
    name = method.strip().lower()
    if name in BASIC:
        return None
    head = name.split(".", 1)[0]
    return _SCOPE_OF_PREFIX.get(head, head)


def check_scope(method: str) -> None:
    """403 insufficient_scope when the caller's webhook or token lacks the method's scope."""
    caller = current_caller()
    if caller is None or caller.scopes is None:
        return  # a call from Python (tests' helpers), not over HTTP
    needed = scope_of(method)
    if needed is None or needed in caller.scopes:
        return
    if needed == "user" and method.strip().lower() in _USER_READS and caller.scopes & {"user_brief", "user_basic"}:
        return
    raise ApiError(403, "insufficient_scope", INSUFFICIENT_SCOPE)


def caller_user_id(portal: Portal) -> int:
    caller = current_caller()
    return caller.user_id if caller is not None else portal.webhook_user


def is_admin(portal: Portal) -> bool:
    user = portal.users.rows.get(caller_user_id(portal))
    return bool(user is not None and user.is_admin)


def require_admin(portal: Portal, *, status: int = 403, code: str = "ACCESS_DENIED",
                  text: str = "Access denied!") -> None:
    """Refuse a non-administrator with the body the method's page shows."""
    if not is_admin(portal):
        raise ApiError(status, code, text)
