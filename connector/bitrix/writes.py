"""Writing plan actions into Bitrix24 as tasks bound to the contact and the deal, exactly once.

Each task carries `rs:<key>` in its description and the tag `repeat-sales`, so its key can be
read back from the portal. fast-bitrix24 resends a batch after a 5xx or a dropped connection,
writes included (Doc: reference §7.3); when a write request was sent more than once we read
the markers back at once and delete the duplicates it made.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from connector.bitrix.batching import send_groups, send_in_slices
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import list_pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action, customer_of_key

log = logging.getLogger(__name__)

TAG = "repeat-sales"
MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
DEADLINE_HOUR = "18:00:00"


def binding_prefix(customer_key: str) -> str:
    """CRM binding of a task: C_<contact> or CO_<company> (Doc: crm/data-types.md#crm-binding-format)."""
    return "CO_" if customer_key == "company" else "C_"


class TaskWriter:
    def __init__(self, client: BitrixClient, *, customer_key: str, responsible) -> None:
        self.client = client
        self.customer_key = customer_key
        self.responsible = responsible  # manager id -> user id to assign (fallback for the fired)
        self.duplicates_removed = 0

    def task_fields(self, action: Action) -> dict:
        bindings = [f"{binding_prefix(self.customer_key)}{action.customer_id}"]
        if action.anchor_purchase_id and action.anchor_purchase_id.isdigit():
            bindings.append(f"D_{action.anchor_purchase_id}")
        body = action.body.strip()
        return {
            "TITLE": action.title[:250],
            "DESCRIPTION": f"{body}\n\n{marker(action.key)}" if body else marker(action.key),
            "RESPONSIBLE_ID": self.responsible(action.manager_id),
            "DEADLINE": f"{action.due.isoformat()}T{DEADLINE_HOUR}",
            "UF_CRM_TASK": bindings,
            "TAGS": [TAG, f"rs-{action.rule}"],
        }

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        commands = {f"w{i}": ("tasks.task.add", {"fields": self.task_fields(a)}) for i, a in enumerate(actions)}
        before = self.client.requests
        res = self.client.batch(commands)
        resent = self.client.requests - before > 1
        outcomes: list[WriteOutcome] = []
        for i, action in enumerate(actions):
            label = f"w{i}"
            if label in res.errors:
                err = res.errors[label]
                reason = str(err.get("error_description") or err.get("error") or "refused").strip()
                outcomes.append(WriteOutcome(action.key, False, reason=reason.removesuffix("<br>")))
                continue
            task = res.result.get(label)
            task_id = task.get("task", {}).get("id") if isinstance(task, dict) else None
            outcomes.append(WriteOutcome(action.key, True, CrmRef("task", str(task_id or "?"))))
        if resent:  # the batch went out more than once: the marker shows what it made twice
            found = self.find([a.key for a in actions])
            outcomes = [WriteOutcome(o.key, True, found[o.key]) if o.key in found else o for o in outcomes]
        return outcomes

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers read back from the portal; duplicates of one key are deleted, the oldest kept.

        One list command per customer, 50 to a `batch` request, so reading back a run's writes
        costs about one request per 50 customers written to.
        """
        wanted = set(keys)
        customers = sorted({customer_of_key(key) for key in wanted})
        seen: dict[str, list[int]] = defaultdict(list)
        prefix = binding_prefix(self.customer_key)

        def params(customer_id: str) -> dict:
            return {"filter": {"TAG": TAG, "UF_CRM_TASK": f"{prefix}{customer_id}"},
                    "select": ["ID", "DESCRIPTION"], "order": {"ID": "asc"}}

        groups = ({f"c{n}": ("tasks.task.list", params(c))} for n, c in enumerate(customers))
        for sent in send_in_slices(self.client, groups):  # a slice's descriptions at a time
            for label, answer in sent.result.items():
                rows = answer.get("tasks") if isinstance(answer, dict) else answer
                if label in sent.next:  # more than a page of our tasks on one customer: read it to its end
                    rows = [r for page in list_pages(self.client, "tasks.task.list", params(customers[int(label[1:])]),
                                                     key="tasks") for r in page]
                self._collect(rows, seen, wanted)
        self._delete_duplicates(seen)
        return {key: CrmRef("task", str(min(ids))) for key, ids in seen.items()}

    @staticmethod
    def _collect(rows: object, seen: dict[str, list[int]], wanted: set[str] | None) -> None:
        for row in rows if isinstance(rows, list) else []:
            for key in MARKER_RE.findall(str(row.get("description") or "")):
                if wanted is None or key in wanted:
                    seen[key].append(int(row.get("id")))

    def all_markers(self) -> dict[str, CrmRef]:
        """Every key this plugin ever left in the portal: rebuilds a lost ledger."""
        seen: dict[str, list[int]] = defaultdict(list)
        params = {"filter": {"TAG": TAG}, "select": ["ID", "DESCRIPTION"], "order": {"ID": "asc"}}
        for rows in list_pages(self.client, "tasks.task.list", params, key="tasks"):
            self._collect(rows, seen, None)
        self._delete_duplicates(seen)
        return {key: CrmRef("task", str(min(ids))) for key, ids in seen.items()}

    def _delete_duplicates(self, seen: dict[str, list[int]]) -> None:
        extra = [task_id for ids in seen.values() for task_id in sorted(set(ids))[1:]]
        if extra:  # a task another run deleted a moment ago is refused here: gone either way
            sent = send_groups(self.client, [{f"d{t}": ("tasks.task.delete", {"taskId": t})} for t in extra])
            self.duplicates_removed += len(extra) - len(sent.errors)
            log.warning("bitrix duplicate_tasks_deleted=%d", len(extra) - len(sent.errors))
        for key in seen:
            seen[key] = sorted(set(seen[key]))[:1]
