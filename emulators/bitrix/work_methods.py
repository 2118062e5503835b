"""Users, tasks, timeline comments, to-do activities, and the app-only methods a webhook
may not call.

Doc: api-reference/user/user-get.md, api-reference/tasks/tasks-task-{add,list,get,delete}.md,
api-reference/tasks/fields.md, crm/timeline/comments/crm-timeline-comment-{add,list}.md,
crm/timeline/activities/todo/crm-activity-todo-add.md
"""

from __future__ import annotations

from .app_context import current_caller
from .crm_methods import check_array
from .fields import ACTIVITY_FIELDS, COMMENT_FIELDS, TASK_FIELDS, USER_FIELDS, render
from .protocol import ApiError, as_dict, as_int, as_list, as_yn, bad_request, ci_get, iso, parse_datetime
from .query import parse_query, split_key
from .records import Activity, Task
from .registry import Listing, method
from .rights import ALL_SCOPES, DEFAULT_SCOPES, caller_user_id, is_admin
from .store import Portal

# ---- users --------------------------------------------------------------------------------


def _user_out(u) -> dict:
    return {"ID": str(u.id), "ACTIVE": u.active, "NAME": u.name, "LAST_NAME": u.last_name, "SECOND_NAME": "",
            "EMAIL": u.email, "PERSONAL_GENDER": "", "PERSONAL_BIRTHDAY": "", "WORK_POSITION": u.position,
            "WORK_PHONE": "", "UF_DEPARTMENT": [1], "IS_ONLINE": "N", "USER_TYPE": "employee"}


_USER_RESERVED = {"sort", "order", "filter", "select", "start", "admin_mode", "image_resize", "auth"}


@method("user.get")
def user_get(portal: Portal, params: dict) -> Listing:
    """Filter from FILTER or top-level keys; `sort` + `order` strings. Doc: api-reference/user/user-get.md"""
    filter_ = dict(as_dict(ci_get(params, "filter")))
    for key, value in params.items():
        if str(key).lower() not in _USER_RESERVED and split_key(str(key))[1].upper() in USER_FIELDS:
            filter_[key] = value
    sort = str(ci_get(params, "sort") or "ID").upper()
    order = {sort: str(ci_get(params, "order") or "ASC")}
    q = parse_query(USER_FIELDS, filter_, order, ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.users, q)
    return Listing([_user_out(u) for u in rows], total, nxt)


@method("user.current")
def user_current(portal: Portal, params: dict) -> dict:
    return _user_out(portal.users.rows[caller_user_id(portal)])


@method("profile")
def profile(portal: Portal, params: dict) -> dict:
    """The caller's user; ADMIN is what user.admin answers. Doc: api-reference/common/users/profile.md"""
    u = portal.users.rows[caller_user_id(portal)]
    return {"ID": str(u.id), "ADMIN": u.is_admin, "NAME": u.name, "LAST_NAME": u.last_name,
            "PERSONAL_GENDER": "", "TIME_ZONE": ""}


@method("user.admin")
def user_admin(portal: Portal, params: dict) -> bool:
    """Doc: api-reference/common/users/user-admin.md - may the caller manage the portal's apps."""
    return is_admin(portal)


@method("scope")
def scope(portal: Portal, params: dict) -> list:
    """The webhook's (app's) scopes; `full: true` lists every scope. Doc: api-reference/common/system/scope.md"""
    if as_yn(ci_get(params, "full", False)):
        return list(ALL_SCOPES)
    caller = current_caller()
    return sorted(caller.scopes) if caller is not None and caller.scopes is not None else sorted(DEFAULT_SCOPES)


# ---- tasks --------------------------------------------------------------------------------

_TASK_KEYS = {  # select name -> output key; ids and numbers are strings (Doc: tasks/fields.md)
    "ID": "id", "PARENT_ID": "parentId", "TITLE": "title", "DESCRIPTION": "description", "PRIORITY": "priority",
    "STATUS": "status", "GROUP_ID": "groupId", "CREATED_BY": "createdBy", "CREATED_DATE": "createdDate",
    "RESPONSIBLE_ID": "responsibleId", "CHANGED_BY": "changedBy", "CHANGED_DATE": "changedDate",
    "CLOSED_DATE": "closedDate", "DEADLINE": "deadline", "REAL_STATUS": "status",
}


def _task_value(portal: Portal, t: Task, key: str):
    return {
        "id": str(t.id), "parentId": None, "title": t.title, "description": t.description,
        "priority": str(t.priority), "status": str(t.status), "subStatus": str(t.status),
        "groupId": str(t.group_id), "createdBy": str(t.created_by), "createdDate": iso(t.created),
        "responsibleId": str(t.responsible_id), "changedBy": str(t.created_by), "changedDate": iso(t.changed),
        "closedDate": iso(t.closed), "deadline": iso(t.deadline), "descriptionInBbcode": "Y",
    }[key]


def render_task(portal: Portal, t: Task, select: list[str] | None) -> dict:
    names = [str(s).upper() for s in select or []]
    if not names or "*" in names:
        keys = ["id", "parentId", "title", "description", "priority", "status", "groupId", "createdBy",
                "createdDate", "responsibleId", "changedBy", "changedDate", "closedDate", "deadline",
                "descriptionInBbcode"]
    else:
        keys = list(dict.fromkeys(["id", *[_TASK_KEYS[n] for n in names if n in _TASK_KEYS]]))
    out = {k: _task_value(portal, t, k) for k in keys}
    if "STATUS" in names:
        out["subStatus"] = str(t.status)
    if "TAGS" in names:
        # Doc: tasks-task-list.md - "tags": {"<tag id>": {"id": .., "title": ..}}; PHP's empty array is []
        out["tags"] = {str(portal.tags[n]): {"id": portal.tags[n], "title": n} for n in t.tags} or []
    if {"UF_CRM_TASK", "UF_TASK_WEBDAV_FILES", "UF_MAIL_MESSAGE"} & set(names):
        # Doc: tasks/fields.md - selecting one of the three returns all three, camelCase
        out.update(ufCrmTask=list(t.crm), ufTaskWebdavFiles=[], ufMailMessage=None)
    return out


def _task_fields(params: dict) -> dict:
    fields = ci_get(params, "fields")
    if not isinstance(fields, dict) or not fields:
        raise ApiError(400, "100", "Could not find value for parameter {fields} (internal error)")
    return {str(k).upper(): v for k, v in fields.items()}


def _tags(value) -> tuple:
    items = value.split(",") if isinstance(value, str) else as_list(value)
    return tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))


def _write_task(portal: Portal, task: Task | None, fields: dict) -> Task:
    now = portal.clock()
    title = fields.get("TITLE", task.title if task else None)
    if not title or not str(title).strip():
        raise bad_request("Не указано название задачи<br>", "ERROR_CORE")
    responsible = as_int(fields.get("RESPONSIBLE_ID", task.responsible_id if task else None))
    if not responsible:
        raise bad_request("Не указан исполнитель<br>", "ERROR_CORE")
    if responsible not in portal.users.rows:
        raise bad_request("Пользователь указанный в поле \"Исполнитель\" не найден<br>", "ERROR_CORE")
    if task is None:
        task = Task(portal.tasks.new_id(), "", responsible, as_int(fields.get("CREATED_BY")) or portal.webhook_user,
                    now, now)
        old = None
    else:
        old = {"TAG": task.tags, "UF_CRM_TASK": task.crm, "RESPONSIBLE_ID": task.responsible_id}
    task.title, task.responsible_id, task.changed = str(title), responsible, now
    if "DESCRIPTION" in fields:
        task.description = str(fields["DESCRIPTION"] or "")
    if "DEADLINE" in fields:
        task.deadline = parse_datetime(fields["DEADLINE"])
    if "PRIORITY" in fields:
        task.priority = as_int(fields["PRIORITY"], 1)
    if "GROUP_ID" in fields:
        task.group_id = as_int(fields["GROUP_ID"], 0) or 0
    if "STATUS" in fields:
        status = as_int(fields["STATUS"])
        if status not in (2, 3, 4, 5, 6):
            raise bad_request("Некорректный статус<br>", "ERROR_CORE")
        task.status, task.closed = status, (now if status == 5 else None)
    if "TAGS" in fields:
        task.tags = _tags(fields["TAGS"])
        for tag in task.tags:
            portal.tags.setdefault(tag, len(portal.tags) + 1)
    if "UF_CRM_TASK" in fields:
        task.crm = tuple(str(v) for v in as_list(fields["UF_CRM_TASK"]) if str(v))
    keys = {"TAG": task.tags, "UF_CRM_TASK": task.crm, "RESPONSIBLE_ID": task.responsible_id}
    if old is None:
        portal.tasks.insert(task.id, task, keys)
    else:
        for name, value in keys.items():
            portal.tasks.reindex(task.id, name, old[name], value)
        portal.tasks.touch()
    return task


@method("tasks.task.add")
def task_add(portal: Portal, params: dict) -> dict:
    return {"task": render_task(portal, _write_task(portal, None, _task_fields(params)), None)}


@method("tasks.task.update")
def task_update(portal: Portal, params: dict) -> dict:
    task = portal.tasks.rows.get(as_int(ci_get(params, "taskId")) or 0)
    if task is None:
        raise ApiError(400, "ERROR_CORE", "Задача не найдена или недоступна<br>")
    return {"task": render_task(portal, _write_task(portal, task, _task_fields(params)), None)}


@method("tasks.task.get")
def task_get(portal: Portal, params: dict):
    """A missing task gives `"result": []`. Doc: api-reference/tasks/tasks-task-get.md"""
    task = portal.tasks.rows.get(as_int(ci_get(params, "taskId")) or 0)
    if task is None:
        return []
    return {"task": render_task(portal, task, as_list(ci_get(params, "select")))}


@method("tasks.task.delete")
def task_delete(portal: Portal, params: dict) -> dict:
    """Doc: api-reference/tasks/tasks-task-delete.md"""
    raw = ci_get(params, "taskId")
    if raw in (None, ""):
        raise ApiError(400, "100", "CTaskItem All parameters in the constructor must have real class type")
    task = portal.tasks.rows.get(as_int(raw) or 0)
    if task is None:
        raise ApiError(400, "1048582", "Нет доступа к удалению задачи")
    portal.tasks.delete(task.id, {"TAG": task.tags, "UF_CRM_TASK": task.crm, "RESPONSIBLE_ID": task.responsible_id})
    return {"task": True}


@method("tasks.task.list")
def task_list(portal: Portal, params: dict) -> Listing:
    """Default order ID DESC; `total` + `next`. Doc: api-reference/tasks/tasks-task-list.md"""
    order = check_array(params, "order")
    q = parse_query(TASK_FIELDS, check_array(params, "filter"), order, ci_get(params, "start"),
                    default_desc=True)
    rows, total, nxt = portal.engine.run(portal.tasks, q)
    select = as_list(ci_get(params, "select"))
    return Listing({"tasks": [render_task(portal, t, select) for t in rows]}, total, nxt)


# ---- timeline comments and to-do activities -----------------------------------------------

_OWNER_TABLES = {"deal": "deals", "contact": "contacts", "company": "companies"}


@method("crm.timeline.comment.add")
def comment_add(portal: Portal, params: dict) -> int:
    """Only the lowercase `fields` key is read (since crm 23.100.0).
    Doc: api-reference/crm/timeline/comments/crm-timeline-comment-add.md"""
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "100", "Could not find value for parameter {fields}")
    fields = {str(k).upper(): v for k, v in fields.items()}
    entity_type = str(fields.get("ENTITY_TYPE") or "").lower()
    entity_id = as_int(fields.get("ENTITY_ID"))
    if not entity_type or not entity_id or "COMMENT" not in fields:
        raise ApiError(400, "100", "Не переданы обязательные поля")
    text = str(fields.get("COMMENT") or "")
    if not text.strip():
        raise ApiError(400, "INVALID_ARG_VALUE", "Пустой комментарий")
    if not portal.entity_exists(entity_type, entity_id):
        raise ApiError(400, "NOT_FOUND", "Not found.")
    return portal.add_comment(entity_type, entity_id, text).id


@method("crm.timeline.comment.list")
def comment_list(portal: Portal, params: dict) -> Listing:
    """ENTITY_ID and ENTITY_TYPE are required filter fields.
    Doc: api-reference/crm/timeline/comments/crm-timeline-comment-list.md"""
    filter_ = check_array(params, "filter")
    names = {split_key(str(k))[1].upper() for k in filter_}
    if not {"ENTITY_ID", "ENTITY_TYPE"} <= names:
        raise bad_request("ENTITY_ID and ENTITY_TYPE are required in filter.")
    filter_ = {k: (str(v).lower() if split_key(str(k))[1].upper() == "ENTITY_TYPE" and isinstance(v, str) else v)
               for k, v in filter_.items()}
    q = parse_query(COMMENT_FIELDS, filter_, check_array(params, "order"), ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.comments, q)
    select = [str(s).upper() for s in as_list(ci_get(params, "select"))]
    keys = ["ID", *[k for k in select if k in COMMENT_FIELDS and k != "ID"]] if select else list(COMMENT_FIELDS)
    out = []
    for r in rows:
        item = render(r, keys, COMMENT_FIELDS)
        if not select or "FILES" in select:
            item["FILES"] = {}
        out.append(item)
    return Listing(out, total, nxt)


@method("crm.activity.todo.add")
def todo_add(portal: Portal, params: dict) -> dict:
    """Doc: api-reference/crm/timeline/activities/todo/crm-activity-todo-add.md"""
    owner_type = as_int(ci_get(params, "ownerTypeId"))
    owner_id = as_int(ci_get(params, "ownerId"))
    deadline_raw = ci_get(params, "deadline")
    if not owner_type or not owner_id or deadline_raw in (None, ""):
        raise ApiError(400, "100", "Не переданы обязательные поля")
    deadline = parse_datetime(deadline_raw)
    if deadline is None:
        raise ApiError(400, "WRONG_DATETIME_FORMAT", "Некорректный формат даты")
    table = {2: portal.deals, 3: portal.contacts, 4: portal.companies}.get(owner_type)
    if table is None or owner_id not in table.rows:
        raise ApiError(400, "NOT_FOUND", "Not found.")
    aid = portal.activities.new_id()
    portal.activities.insert(aid, Activity(
        aid, owner_type, owner_id, str(ci_get(params, "title") or ""), str(ci_get(params, "description") or ""),
        deadline, as_int(ci_get(params, "responsibleId")) or portal.webhook_user, portal.clock()),
        {"OWNER_ID": owner_id})
    return {"id": aid}


@method("crm.activity.list")
def activity_list(portal: Portal, params: dict) -> Listing:
    q = parse_query(ACTIVITY_FIELDS, check_array(params, "filter"), check_array(params, "order"),
                    ci_get(params, "start"))
    rows, total, nxt = portal.engine.run(portal.activities, q)
    return Listing([render(r, list(ACTIVITY_FIELDS), ACTIVITY_FIELDS) for r in rows], total, nxt)


# ---- app-only methods ---------------------------------------------------------------------


def _refuse(code: str, text: str):
    def handler(portal: Portal, params: dict):
        raise ApiError(403, code, text)
    return handler


# Doc: tutorials/bizproc/setting-robot.md, api-reference/bizproc/bizproc-robot/bizproc-robot-add.md
for _name in ("bizproc.robot.add", "bizproc.robot.update", "bizproc.robot.list", "bizproc.robot.delete",
              "bizproc.activity.add", "bizproc.activity.list", "bizproc.activity.delete"):
    method(_name)(_refuse("ACCESS_DENIED", "Application context required"))
# Doc: api-reference/crm/automation/triggers/crm-automation-trigger-add.md
for _name in ("crm.automation.trigger.add", "crm.automation.trigger.list", "crm.automation.trigger.delete",
              "crm.automation.trigger.execute"):
    method(_name)(_refuse("ACCESS_DENIED", "Access denied! Application context required"))
# Doc: api-reference/events/event-bind.md (app context only; the page names no text)
for _name in ("event.bind", "event.get", "event.unbind", "event.offline.get"):
    method(_name)(_refuse("ACCESS_DENIED", "Application context required"))
# Doc: api-reference/widgets/placement-bind.md (WRONG_AUTH_TYPE, 403)
for _name in ("placement.bind", "placement.unbind", "placement.get"):
    method(_name)(_refuse("WRONG_AUTH_TYPE", "Current authorization type is denied for this method "
                                            "Application context required"))
