"""Writing plan actions into amoCRM as tasks on the customer's card, exactly once.

Each task's `text` ends with `rs:<key>`, so the key can be read back from the account, and its
`request_id` is the key, so each created id is matched to its action (Doc: developers.kommo.com/
reference/add-tasks). API v4 cannot delete a task, so a duplicate that a lost answer let through
is completed with its marker defused (`rs-duplicate:`), and never counted again.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, time
from zoneinfo import ZoneInfo

from connector.amocrm.client import AmoClient, AmoValidationError
from connector.amocrm.pull import pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action, customer_of_key

log = logging.getLogger(__name__)

TASKS_PATH = "/api/v4/tasks"
WRITE_BATCH = 50  # Doc: developers.kommo.com/docs/limitations - up to 250 per request, 50 recommended
TASK_TYPE_FOLLOW_UP = 1  # Doc: developers.kommo.com/reference/tasks-list - 1 follow-up, 2 meeting
DEADLINE = time(18, 0)
TEXT_LIMIT = 2000
IDS_PER_LOOKUP = 50  # customers per `filter[entity_id][]` read-back request
MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
DEFUSED = "rs-duplicate:"
WRITE_ROUNDS = 3  # a batch refused by validation writes nothing: resend the valid rest, at most this often


def entity_type(customer_key: str) -> str:
    return "companies" if customer_key == "company" else "contacts"


class TaskWriter:
    def __init__(self, client: AmoClient, *, customer_key: str, responsible: Callable[[str | None], int],
                 timezone: Callable[[], ZoneInfo]) -> None:
        self.client = client
        self.entity_type = entity_type(customer_key)
        self.responsible = responsible  # manager id -> user id to assign (the fallback for a fired one)
        self.timezone = timezone
        self.duplicates_removed = 0

    def task_body(self, action: Action) -> dict:
        tail = f"\n\n{marker(action.key)}"
        text = "\n".join(x for x in (action.title.strip(), action.body.strip()) if x)
        deadline = datetime.combine(action.due, DEADLINE, tzinfo=self.timezone())
        return {"text": text[:TEXT_LIMIT - len(tail)] + tail, "complete_till": int(deadline.timestamp()),
                "entity_id": int(action.customer_id), "entity_type": self.entity_type,
                "task_type_id": TASK_TYPE_FOLLOW_UP, "responsible_user_id": self.responsible(action.manager_id),
                "request_id": action.key}

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        """One POST for the batch. Raises CrmError when the batch's fate is unknown."""
        outcomes: dict[str, WriteOutcome] = {}
        pending: list[tuple[Action, dict]] = []
        for action in actions:
            if not action.customer_id.isdigit():
                outcomes[action.key] = WriteOutcome(action.key, False, reason="the customer id is not an amoCRM id")
            else:
                pending.append((action, self.task_body(action)))
        for _round in range(WRITE_ROUNDS):
            if not pending:
                break
            try:
                answer = self.client.request("POST", TASKS_PATH, json_body=[b for _, b in pending], kind="write")
            except AmoValidationError as exc:  # nothing was written: refuse the named items, resend the rest
                refused = exc.errors or {b["request_id"]: exc.message for _, b in pending}
                for action, body in pending:
                    if body["request_id"] in refused:
                        outcomes[action.key] = WriteOutcome(action.key, False, reason=refused[body["request_id"]])
                pending = [(a, b) for a, b in pending if b["request_id"] not in refused]
                continue
            created = _created_ids(answer)
            for n, (action, body) in enumerate(pending):
                task_id = created.get(body["request_id"]) or created.get(str(n))
                outcomes[action.key] = WriteOutcome(action.key, True, CrmRef("task", str(task_id or "?")))
            pending = []
        for action, _body in pending:
            outcomes[action.key] = WriteOutcome(action.key, False, reason="refused by validation")
        return [outcomes[a.key] for a in actions]

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers read back from the customers' tasks; duplicates of a key are closed, the oldest kept."""
        wanted = set(keys)
        customers = sorted({customer_of_key(k) for k in wanted if customer_of_key(k).isdigit()}, key=int)
        seen: dict[str, list[int]] = defaultdict(list)
        for i in range(0, len(customers), IDS_PER_LOOKUP):
            params = {"filter[entity_type]": self.entity_type, "filter[entity_id][]": customers[i:i + IDS_PER_LOOKUP]}
            self._collect(params, seen, wanted)
        return self._settle(seen)

    def all_markers(self) -> dict[str, CrmRef]:
        """Every key this plugin ever left in the account: rebuilds a lost ledger."""
        seen: dict[str, list[int]] = defaultdict(list)
        self._collect({"filter[entity_type]": self.entity_type}, seen, None)
        return self._settle(seen)

    def _collect(self, params: dict, seen: dict[str, list[int]], wanted: set[str] | None) -> None:
        """Task ids by the key in their text; the texts are not kept (a run's read-back at 200,000
        customers would hold every task's text): a duplicate's is read again to close it."""
        for rows in pages(self.client, TASKS_PATH, "tasks", params):
            for row in rows:
                for key in MARKER_RE.findall(str(row.get("text") or "")):
                    if wanted is None or key in wanted:
                        seen[key].append(int(row["id"]))

    def _settle(self, seen: dict[str, list[int]]) -> dict[str, CrmRef]:
        extra = [task_id for tasks in seen.values() for task_id in sorted(set(tasks))[1:]]
        for i in range(0, len(extra), WRITE_BATCH):
            texts = {int(row["id"]): str(row.get("text") or "") for rows in pages(
                self.client, TASKS_PATH, "tasks", {"filter[id][]": extra[i:i + WRITE_BATCH]}) for row in rows}
            chunk = [t for t in extra[i:i + WRITE_BATCH] if t in texts]  # one closed meanwhile by another run is gone
            if chunk:
                self.client.request("PATCH", TASKS_PATH, kind="write", json_body=[
                    {"id": task_id, "is_completed": True, "text": texts[task_id].replace("rs:", DEFUSED),
                     "result": {"text": "repeat-sales: a duplicate of an earlier task, closed"}} for task_id in chunk])
            self.duplicates_removed += len(chunk)
            log.warning("amocrm duplicates_closed=%d", len(chunk))
        return {key: CrmRef("task", str(min(tasks))) for key, tasks in seen.items()}


def _created_ids(answer: object) -> dict[str, int]:
    embedded = answer.get("_embedded") if isinstance(answer, dict) else None
    tasks = embedded.get("tasks") if isinstance(embedded, dict) else None
    out: dict[str, int] = {}
    for n, task in enumerate(tasks if isinstance(tasks, list) else []):
        if isinstance(task, dict) and task.get("id"):
            out[str(task.get("request_id", n))] = task["id"]
    return out
