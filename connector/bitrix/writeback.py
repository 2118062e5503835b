"""Bitrix24's writers for the shared write-back (connector.adapter.Writeback): tasks, card user
fields, repeat deals (marker in ORIGIN_ID) and business process starts (marker in a timeline comment).

Until `repeat-sales install` created the card fields, the portal takes only tasks; afterwards card
fields, repeat deals and business process starts too.

What the webhook may do is read once before the first write (rights.py): business process starts
without an administrator or the `bizproc` scope become manager tasks that say why, and manager tasks
without the `task` scope become comments on the customer's card (their marker is found there too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from connector.adapter import Writeback
from connector.bitrix.automation import WorkflowWriter
from connector.bitrix.client import BitrixClient
from connector.bitrix.deals import DealWriter
from connector.bitrix.fields import CardWriter, UserFields
from connector.bitrix.rights import Rights, read_rights
from connector.bitrix.touches import TouchWriter
from connector.bitrix.writes import TaskWriter
from connector.crm import CrmRef, InstallReport, WriteOutcome
from connector.model import Action, ActionKind


class BitrixWriteback(Writeback):
    crm = "bitrix"
    automation = "business process starts"
    automation_refs = ("workflow", "comment")  # a start, or its comment when the template was missing

    def __init__(self, client: BitrixClient, *, customer_key: str, responsible, sms_robot: bool = False) -> None:
        self.client = client
        self.userfields = UserFields(client, customer_key)
        self._rights: Rights | None = None
        tasks = ManagerTasks(TaskWriter(client, customer_key=customer_key, responsible=responsible), self)
        super().__init__(tasks=tasks, cards=CardWriter(client, self.userfields),
                         deals=DealWriter(client, customer_key=customer_key, responsible=responsible),
                         flows=WorkflowWriter(client, customer_key=customer_key, tasks=tasks,
                                              rights=lambda: self.rights),
                         touches=TouchWriter(client, customer_key=customer_key, responsible=responsible,
                                             rights=lambda: self.rights, sms_robot=sms_robot))

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

    def prepared(self) -> bool:
        return self.userfields.installed()

    def run_install(self, *, uninstall: bool) -> InstallReport:
        from connector.bitrix.install import install

        return install(self.client, uninstall=uninstall, rights=self.rights)

    def forget_install(self) -> None:
        self.userfields.reset()


class ManagerTasks:
    """Manager tasks as the webhook's rights allow: tasks, or without the `task` scope comments on the
    customers' cards that say why (found again by the automation writer, where comments live)."""

    def __init__(self, tasks: TaskWriter, writeback: BitrixWriteback) -> None:
        self.tasks, self.writeback = tasks, writeback

    @property
    def duplicates_removed(self) -> int:
        return self.tasks.duplicates_removed

    def _allowed(self) -> bool:
        return self.writeback.rights.allows("tasks")

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        if self._allowed():
            return self.tasks.write(actions)
        return self.writeback.flows.note(actions, lambda lang: self.writeback.rights.why("tasks", lang))

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        return self.tasks.find(keys) if self._allowed() else {}

    def all_markers(self) -> dict[str, CrmRef]:
        return self.tasks.all_markers() if self._allowed() else {}
