"""The plugin's tasks as the portal holds them now: done or overdue, per manager (the main page's table).

Doc: api-reference/tasks/tasks-task-list.md (filter by ID, select ID/STATUS/DEADLINE/RESPONSIBLE_ID; 50 a
page), tasks/fields.md (STATUS 5 completed, 4 awaiting control). Read with the installed app's token when the
view is built in the background, for the tasks the plugin set in the last RECENT_DAYS days.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime, timedelta

from connector.errors import CrmError
from connector.state import State
from connector.store import ledger

log = logging.getLogger(__name__)

RECENT_DAYS = 30
PAGE = 50
DONE = {"4", "5"}


def recent_task_ids(state: State, account: str, today: date) -> list[str]:
    since = (today - timedelta(days=RECENT_DAYS)).isoformat()
    return [str(r) for r in ledger.done_crm_ids(state.db, account, "task", since) if str(r).isdigit()]


def task_counts(client, ids: list[str], today: date) -> dict[str, Counter]:
    """Manager id -> Counter(done=, overdue=, open=) of these tasks; {} when the portal cannot say."""
    out: dict[str, Counter] = {}
    try:
        for i in range(0, len(ids), PAGE):
            answer = client.call("tasks.task.list", {"filter": {"ID": ids[i:i + PAGE]},
                                                     "select": ["ID", "STATUS", "DEADLINE", "RESPONSIBLE_ID"]})
            result = answer.get("result") or {}
            for task in (result.get("tasks") if isinstance(result, dict) else None) or []:
                manager = str(task.get("responsibleId") or task.get("RESPONSIBLE_ID") or "")
                status = str(task.get("status") or task.get("STATUS") or "")
                deadline = str(task.get("deadline") or task.get("DEADLINE") or "")
                counts = out.setdefault(manager, Counter())
                if status in DONE:
                    counts["done"] += 1
                elif deadline and _day(deadline) is not None and _day(deadline) < today:
                    counts["overdue"] += 1
                else:
                    counts["open"] += 1
    except CrmError as exc:
        log.warning("pages: cannot read the tasks' states now: %s", exc)
        return {}
    return out


def _day(text: str) -> date | None:
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None
