"""Bitrix24's writers for the shared write-back (connector.adapter.Writeback): tasks, card user
fields, repeat deals (marker in ORIGIN_ID) and business process starts (marker in a timeline comment).

Until `repeat-sales install` created the card fields, the portal takes only tasks; afterwards card
fields, repeat deals and business process starts too.
"""

from __future__ import annotations

from connector.adapter import Writeback
from connector.bitrix.automation import WorkflowWriter
from connector.bitrix.client import BitrixClient
from connector.bitrix.deals import DealWriter
from connector.bitrix.fields import CardWriter, UserFields
from connector.bitrix.writes import TaskWriter
from connector.crm import InstallReport


class BitrixWriteback(Writeback):
    crm = "bitrix"
    automation = "business process starts"
    automation_refs = ("workflow", "comment")  # a start, or its comment when the template was missing

    def __init__(self, client: BitrixClient, *, customer_key: str, responsible) -> None:
        self.client = client
        self.userfields = UserFields(client, customer_key)
        tasks = TaskWriter(client, customer_key=customer_key, responsible=responsible)
        super().__init__(tasks=tasks, cards=CardWriter(client, self.userfields),
                         deals=DealWriter(client, customer_key=customer_key, responsible=responsible),
                         flows=WorkflowWriter(client, customer_key=customer_key, tasks=tasks))

    def prepared(self) -> bool:
        return self.userfields.installed()

    def run_install(self, *, uninstall: bool) -> InstallReport:
        from connector.bitrix.install import install

        return install(self.client, uninstall=uninstall)

    def forget_install(self) -> None:
        self.userfields.reset()
