"""amoCRM's writers for the shared write-back (connector.adapter.Writeback): tasks, card custom fields
with the segment tag, repeat deals (leads, marker in RS_ACTION_KEY), Salesbot starts (marker in a note) and
messenger/SMS touches sent by the generic Salesbot (connector.amocrm.touches); in Customers mode the card's
predicted next purchase goes to the customers' `next_date` too (connector.amocrm.customers).

Until `repeat-sales install` created the custom fields, the account takes only tasks; afterwards card
fields, repeat deals and Salesbot starts too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

from connector.adapter import Writeback
from connector.amocrm.automation import SalesbotWriter
from connector.amocrm.client import AmoClient
from connector.amocrm.customers import Book, NextDates
from connector.amocrm.deals import KEY_CODE, LeadWriter
from connector.amocrm.fields import CARD_CODES, CardWriter, FieldIds
from connector.amocrm.touches import BotTouches
from connector.amocrm.writes import TaskWriter, entity_type
from connector.crm import InstallReport


class AmoWriteback(Writeback):
    crm = "amocrm"
    automation = "Salesbot starts"
    automation_refs = ("salesbot", "note")  # a start, or its note

    def __init__(self, client: AmoClient, *, customer_key: str, responsible: Callable[[str | None], int],
                 timezone: Callable[[], ZoneInfo], salesbots: Mapping[str, int] | None = None,
                 message_bot: int | None = None, customers_mode: Callable[[], str] = lambda: "",
                 customers_book: Callable[[], Book | None] = lambda: None) -> None:
        self.client = client
        self.entity = entity_type(customer_key)
        self.ids = FieldIds(client)
        tasks = TaskWriter(client, customer_key=customer_key, responsible=responsible, timezone=timezone)
        super().__init__(
            tasks=tasks, cards=NextDates(client, CardWriter(client, self.ids, entity=self.entity, timezone=timezone),
                                         customer_key=customer_key, timezone=timezone, mode=customers_mode,
                                         book=customers_book),
            deals=LeadWriter(client, self.ids, customer_key=customer_key, responsible=responsible),
            flows=SalesbotWriter(client, customer_key=customer_key, tasks=tasks, bots=salesbots or {}),
            touches=BotTouches(client, self.ids, customer_key=customer_key, bot_id=message_bot))

    def prepared(self) -> bool:
        return self.ids.installed(self.entity, [*CARD_CODES.values()]) or self.ids.installed("leads", [KEY_CODE])

    def run_install(self, *, uninstall: bool) -> InstallReport:
        from connector.amocrm.install import install

        return install(self.client, uninstall=uninstall)

    def forget_install(self) -> None:
        self.ids.reset()
        self.touches.forget()
