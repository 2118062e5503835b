"""Every plan action into amoCRM through the writer of its kind, and its marker found again.

Until `repeat-sales install` created the custom fields, the account takes only tasks (sync turns
the other kinds into manager tasks); afterwards card fields with the segment tag, repeat deals
(leads) and Salesbot starts too. Finding a key whose kind is unknown (a run killed mid-write)
looks where each kind leaves its marker: the card's values, tasks, leads' RS_ACTION_KEY, notes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from connector import fields as card
from connector.amocrm.automation import SalesbotWriter
from connector.amocrm.client import AmoClient
from connector.amocrm.deals import KEY_CODE, LeadWriter
from connector.amocrm.fields import CARD_CODES, CardWriter, FieldIds
from connector.amocrm.writes import TaskWriter, entity_type
from connector.crm import CrmRef, InstallReport, WriteOutcome
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

BASIC = frozenset({ActionKind.TASK})
PREPARED = frozenset({ActionKind.TASK, ActionKind.TAG, ActionKind.DEAL, ActionKind.WORKFLOW})


class AmoWriteback:
    def __init__(self, client: AmoClient, *, customer_key: str, responsible: Callable[[str | None], int],
                 timezone: Callable[[], ZoneInfo], salesbots: Mapping[str, int] | None = None) -> None:
        self.client = client
        self.entity = entity_type(customer_key)
        self.tasks = TaskWriter(client, customer_key=customer_key, responsible=responsible, timezone=timezone)
        self.ids = FieldIds(client)
        self.cards = CardWriter(client, self.ids, entity=self.entity, timezone=timezone)
        self.leads = LeadWriter(client, self.ids, customer_key=customer_key, responsible=responsible)
        self.bots = SalesbotWriter(client, customer_key=customer_key, tasks=self.tasks, bots=salesbots or {})
        self._capabilities: frozenset[ActionKind] | None = None

    @property
    def capabilities(self) -> frozenset[ActionKind]:
        if self._capabilities is None:
            ready = self.ids.installed(self.entity, [*CARD_CODES.values()]) or self.ids.installed("leads", [KEY_CODE])
            self._capabilities = PREPARED if ready else BASIC
            if not ready:
                log.warning("amocrm writes tasks only: run `repeat-sales install` for repeat deals, card fields "
                            "and Salesbot starts")
        return self._capabilities

    @property
    def duplicates_removed(self) -> int:
        return self.tasks.duplicates_removed + self.leads.duplicates_removed + self.bots.duplicates_removed

    @property
    def degraded(self) -> int:
        """Salesbot starts written as manager tasks (no bot set for the step)."""
        return self.bots.degraded

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        writers = {ActionKind.TAG: self.cards.write, ActionKind.DEAL: self.leads.write,
                   ActionKind.WORKFLOW: self.bots.write}
        outcomes: dict[str, WriteOutcome] = {}
        for kind in (ActionKind.TASK, ActionKind.DEAL, ActionKind.WORKFLOW, ActionKind.TAG):
            group = [a for a in actions if a.kind == kind or (kind == ActionKind.TASK and a.kind not in writers)]
            if group:
                outcomes.update({o.key: o for o in writers.get(kind, self.tasks.write)(group)})
        return [outcomes[a.key] for a in actions]

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Leads and Salesbot notes are looked at even before `install` (or after `--uninstall`):
        the key names the action, whatever kind it was written as."""
        keys = list(keys)
        prepared = ActionKind.TAG in self.capabilities
        found = self.cards.find([k for k in keys if card.is_field_key(k)]) if prepared else {}
        rest = [k for k in keys if not card.is_field_key(k)]
        for finder in (self.tasks.find, self.leads.find, self.bots.find):
            rest = [k for k in rest if k not in found]
            if rest:
                found.update(finder(rest))
        return found

    def all_markers(self) -> dict[str, CrmRef]:
        """Every task and repeat deal this plugin left (twins closed), installed or not."""
        found = self.leads.all_markers()
        found.update(self.tasks.all_markers())
        return found

    def settle(self, written: Mapping[str, CrmRef]) -> dict[str, CrmRef]:
        """This run's writes read back by the kind each was written as; where another run wrote the
        same key too, the oldest object stays and the others are closed. Card values cannot be doubled."""
        by_kind: dict[str, list[str]] = {}
        for key, ref in written.items():
            by_kind.setdefault(ref.kind, []).append(key)
        started = by_kind.get("salesbot", []) + by_kind.get("note", [])
        found: dict[str, CrmRef] = {}
        for keys, settle in ((by_kind.get("task"), self.tasks.find), (by_kind.get("deal"), self.leads.find),
                             (started, self.bots.find)):
            if keys:
                found.update(settle(keys))
        return found

    def find_on_cards(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers no bulk read shows: card values, and Salesbot notes on the customers' cards."""
        keys = list(keys)
        prepared = ActionKind.TAG in self.capabilities
        found = self.cards.find([k for k in keys if card.is_field_key(k)]) if prepared else {}
        rest = [k for k in keys if not card.is_field_key(k)]
        if rest:
            found.update(self.bots.find(rest))
        return found

    def install(self, *, uninstall: bool = False) -> InstallReport:
        from connector.amocrm.install import install

        try:
            return install(self.client, uninstall=uninstall)
        finally:
            self.ids.reset()
            self._capabilities = None
