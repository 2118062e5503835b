"""Every plan action into Bitrix24 through the writer of its kind, and its marker found again.

Until `repeat-sales install` created the card fields, the portal takes only tasks (sync turns the
other kinds into manager tasks); afterwards card fields, repeat deals and business process starts
too. Finding a key whose kind is unknown (a run killed mid-write) looks where each kind leaves its
marker: the card's values, tasks, deals' ORIGIN_ID, the customer's timeline comments.

What the webhook may do is read once before the first write (rights.py): business process starts
without an administrator or the `bizproc` scope become manager tasks that say why, and manager tasks
without the `task` scope become comments on the customer's card (their marker is found there too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from connector import fields as card
from connector.bitrix.automation import WorkflowWriter
from connector.bitrix.client import BitrixClient
from connector.bitrix.deals import DealWriter
from connector.bitrix.fields import CardWriter, UserFields
from connector.bitrix.rights import Rights, read_rights
from connector.bitrix.writes import TaskWriter
from connector.crm import CrmRef, InstallReport, WriteOutcome
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

BASIC = frozenset({ActionKind.TASK})
PREPARED = frozenset({ActionKind.TASK, ActionKind.TAG, ActionKind.DEAL, ActionKind.WORKFLOW})


class BitrixWriteback:
    def __init__(self, client: BitrixClient, *, customer_key: str, responsible) -> None:
        self.client = client
        self.tasks = TaskWriter(client, customer_key=customer_key, responsible=responsible)
        self.userfields = UserFields(client, customer_key)
        self.cards = CardWriter(client, self.userfields)
        self.deals = DealWriter(client, customer_key=customer_key, responsible=responsible)
        self.flows = WorkflowWriter(client, customer_key=customer_key, tasks=_ManagerTasks(self),
                                    rights=lambda: self.rights)
        self._capabilities: frozenset[ActionKind] | None = None
        self._rights: Rights | None = None

    @property
    def rights(self) -> Rights:
        """The webhook's scopes and admin flag, read at the first need (one request a run)."""
        if self._rights is None:
            self._rights = read_rights(self.client)
        return self._rights

    def rights_missing(self) -> list[dict]:
        """What this portal's rights leave out, for the run summary (empty when everything may run)."""
        features = ["tasks", "workflows", "users"]
        if ActionKind.TAG not in self.capabilities:
            features.append("card_fields")
        return self.rights.missing(features)

    @property
    def capabilities(self) -> frozenset[ActionKind]:
        if self._capabilities is None:
            self._capabilities = PREPARED if self.userfields.installed() else BASIC
            if self._capabilities is BASIC:
                log.warning("bitrix writes tasks only: run `repeat-sales install` for repeat deals, "
                            "card fields and business process starts")
        return self._capabilities

    @property
    def duplicates_removed(self) -> int:
        return self.tasks.duplicates_removed + self.deals.duplicates_removed + self.flows.duplicates_removed

    @property
    def degraded(self) -> int:
        """Automation starts written as manager tasks (no template found)."""
        return self.flows.degraded

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        writers = {ActionKind.TAG: self.cards.write, ActionKind.DEAL: self.deals.write,
                   ActionKind.WORKFLOW: self.flows.write}
        outcomes: dict[str, WriteOutcome] = {}
        for kind in (ActionKind.TASK, ActionKind.DEAL, ActionKind.WORKFLOW, ActionKind.TAG):
            group = [a for a in actions if (a.kind == kind) or (kind == ActionKind.TASK and a.kind not in writers)]
            if group:
                outcomes.update({o.key: o for o in writers.get(kind, self.write_tasks)(group)})
        return [outcomes[a.key] for a in actions]

    def write_tasks(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        """Manager tasks; without the `task` scope, comments on the customers' cards that say why."""
        if self.rights.allows("tasks"):
            return self.tasks.write(actions)
        return self.flows.note(actions, lambda lang: self.rights.why("tasks", lang))

    def _task_finders(self) -> tuple:
        return (self.tasks.find,) if self.rights.allows("tasks") else ()

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Deals and automation comments are looked at even before `install` (or after `--uninstall`):
        the key names the action, whatever kind it was written as."""
        keys = list(keys)
        found = self.cards.find([k for k in keys if card.is_field_key(k)]) if self._prepared() else {}
        rest = [k for k in keys if not card.is_field_key(k)]
        for finder in (*self._task_finders(), self.deals.find, self.flows.find):
            rest = [k for k in rest if k not in found]
            if rest:
                found.update(finder(rest))
        return found

    def all_markers(self) -> dict[str, CrmRef]:
        """Every task and repeat deal this plugin left (duplicates removed), installed or not."""
        found = self.deals.all_markers()
        if self.rights.allows("tasks"):
            found.update(self.tasks.all_markers())
        return found

    def settle(self, written: Mapping[str, CrmRef]) -> dict[str, CrmRef]:
        """This run's writes read back by the kind each was written as; where another run wrote the
        same key too, the oldest object stays and the others go. Card values cannot be doubled."""
        by_kind: dict[str, list[str]] = {}
        for key, ref in written.items():
            by_kind.setdefault(ref.kind, []).append(key)
        found: dict[str, CrmRef] = {}
        started = by_kind.get("workflow", []) + by_kind.get("comment", [])
        for keys, settle in ((by_kind.get("task"), self.tasks.find), (by_kind.get("deal"), self.deals.find),
                             (started, self.flows.settle)):
            if keys:
                found.update(settle(keys))
        return found

    def find_on_cards(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers no bulk read shows: card values, and automation comments on the customers' timelines."""
        keys = list(keys)
        found = self.cards.find([k for k in keys if card.is_field_key(k)]) if self._prepared() else {}
        rest = [k for k in keys if not card.is_field_key(k)]
        if rest:
            found.update(self.flows.find(rest))
        return found

    def install(self, *, uninstall: bool = False) -> InstallReport:
        from connector.bitrix.install import install

        try:
            return install(self.client, uninstall=uninstall, rights=self.rights)
        finally:
            self.userfields.reset()
            self._capabilities = None

    def _prepared(self) -> bool:
        return ActionKind.TAG in self.capabilities


class _ManagerTasks:
    """What the automation writer hands its by-hand steps to: tasks, or card comments without `task`."""

    def __init__(self, writeback: BitrixWriteback) -> None:
        self.writeback = writeback

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        return self.writeback.write_tasks(actions)
