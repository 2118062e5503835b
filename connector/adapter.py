"""What every CRM adapter does the same way, written once: plan actions go to the writer of their
kind, and markers are read back where each kind leaves them.

An adapter holds a `Writeback` (its CRM's task, card, deal and automation writers) and inherits
`WritebackAdapter`, which answers the contract's write and marker members from it. A third CRM
writes its four writers and its install, and gets the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from connector import delivery
from connector import fields as card
from connector.crm import BatchPolicy, CrmRef, InstallReport, WriteOutcome, WriteStats
from connector.model import Action, ActionKind
from playbooks.channels import is_touch

log = logging.getLogger(__name__)

BASIC = frozenset({ActionKind.TASK})  # what any CRM takes before `repeat-sales install`
PREPARED = frozenset({ActionKind.TASK, ActionKind.TAG, ActionKind.DEAL, ActionKind.WORKFLOW})
TOUCHES = (ActionKind.EMAIL, ActionKind.MESSAGE, ActionKind.SMS, ActionKind.BOT)  # the CRM reaches the customer


class KindWriter(Protocol):
    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]: ...

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]: ...


class MarkedWriter(KindWriter, Protocol):
    """A writer whose objects a bulk read finds again (tasks, repeat deals)."""

    duplicates_removed: int

    def all_markers(self) -> dict[str, CrmRef]: ...


class TouchWriter(KindWriter, Protocol):
    """Touches the CRM delivers to the customer itself (e-mail, messenger, SMS, bot), marker kept
    where the customer does not see it; `kinds` is what it can deliver now (a refusal such as "no
    mailbox" takes a kind away for the rest of the run)."""

    kinds: frozenset[ActionKind]

    def all_markers(self) -> dict[str, CrmRef]: ...


class AutomationWriter(KindWriter, Protocol):
    duplicates_removed: int
    degraded: int  # starts written as manager tasks (no template or bot for the step)

    def settle(self, keys: Iterable[str]) -> dict[str, CrmRef]: ...


class Writeback:
    """Every plan action into the CRM through the writer of its kind, and its marker found again.

    Until `repeat-sales install` prepared the CRM it takes only tasks (sync turns the other kinds
    into manager tasks). Finding a key whose kind is unknown (a run killed mid-write) looks where
    each kind leaves its marker: the card's values, tasks, deals, automation notes.
    """

    crm = ""  # the CRM's name, for the log line that says install has not run
    automation = "automation starts"  # what this CRM's automation is called, in that line
    automation_refs: tuple[str, ...] = ()  # ref kinds an automation start is recorded as

    def __init__(self, *, tasks: MarkedWriter, cards: KindWriter, deals: MarkedWriter,
                 flows: AutomationWriter, touches: TouchWriter | None = None) -> None:
        self.tasks, self.cards, self.deals, self.flows = tasks, cards, deals, flows
        self.touches = touches
        self._capabilities: frozenset[ActionKind] | None = None

    # --- what each CRM says for itself --------------------------------------------------------

    def prepared(self) -> bool:
        """Whether `repeat-sales install` created what card fields and repeat deals need."""
        raise NotImplementedError

    def run_install(self, *, uninstall: bool) -> InstallReport:
        raise NotImplementedError

    def forget_install(self) -> None:
        """Drop what was cached about the CRM's fields, so the next check reads them again."""
        raise NotImplementedError

    def rights_missing(self) -> list[dict]:
        """Steps the CRM user's rights leave out, each with what it needs and what happens instead."""
        return []

    # --- the same for every CRM -----------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[ActionKind]:
        if self._capabilities is None:
            self._capabilities = PREPARED if self.prepared() else BASIC
            if self._capabilities is BASIC:
                log.warning("%s writes tasks only: run `repeat-sales install` for repeat deals, card fields "
                            "and %s", self.crm, self.automation)
        return self._capabilities | (self.touches.kinds if self.touches is not None else frozenset())

    def stats(self) -> WriteStats:
        return WriteStats(
            duplicates_removed=self.tasks.duplicates_removed + self.deals.duplicates_removed
            + self.flows.duplicates_removed,
            automation_as_tasks=self.flows.degraded)

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        """Each action by the writer of its kind; a touch whose channel the CRM could not use for
        this customer (no mailbox, no chat) goes on to its next channel in the same call."""
        actions = [self._deliverable(a) for a in actions]
        outcomes = self._write_by_kind(actions)
        why_not = getattr(self.touches, "why_not", {}) if self.touches is not None else {}
        moved = [delivery.after_refusal(a, outcomes[a.key].fall, self.capabilities, why_not) for a in actions
                 if outcomes[a.key].fall]
        if moved:
            outcomes.update({o.key: o for o in self.write(moved)})
        return [replace(outcomes[a.key], delivered=outcomes[a.key].delivered or a) if is_touch(a)
                else outcomes[a.key] for a in actions]

    def _deliverable(self, action: Action) -> Action:
        """A touch of a kind the CRM stopped delivering this run (it said "no mailbox"), or cannot deliver
        at all here (no scope for chats), moves on at once, saying why."""
        if action.kind not in TOUCHES:
            return action
        why_not = getattr(self.touches, "why_not", {}) if self.touches is not None else {}
        if self.touches is not None and action.kind in self.touches.kinds and action.kind not in why_not:
            return action
        return delivery.after_refusal(action, why_not.get(action.kind, "not_supported"), self.capabilities, why_not)

    def _write_by_kind(self, actions: Sequence[Action]) -> dict[str, WriteOutcome]:
        writers = {ActionKind.TAG: self.cards.write, ActionKind.DEAL: self.deals.write,
                   ActionKind.WORKFLOW: self.flows.write}
        if self.touches is not None:
            writers.update(dict.fromkeys(TOUCHES, self.touches.write))
        outcomes: dict[str, WriteOutcome] = {}
        for kind in (ActionKind.TASK, *TOUCHES, ActionKind.DEAL, ActionKind.WORKFLOW, ActionKind.TAG):
            group = [a for a in actions if a.kind == kind or (kind == ActionKind.TASK and a.kind not in writers)]
            if group:
                outcomes.update({o.key: o for o in writers.get(kind, self.tasks.write)(group)})
        return outcomes

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Deals and automation notes are looked at even before `install` (or after `--uninstall`):
        the key names the action, whatever kind it was written as."""
        keys = list(keys)
        found = self._on_cards(keys)
        rest = [k for k in keys if not card.is_field_key(k)]
        touches = (self.touches.find,) if self.touches is not None else ()
        for finder in (self.tasks.find, *touches, self.deals.find, self.flows.find):
            rest = [k for k in rest if k not in found]
            if rest:
                found.update(finder(rest))
        return found

    def all_markers(self) -> dict[str, CrmRef]:
        """Every task and repeat deal this plugin left (duplicates removed), installed or not."""
        found = self.deals.all_markers()
        if self.touches is not None:
            found.update(self.touches.all_markers())
        found.update(self.tasks.all_markers())
        return found

    def settle(self, written: Mapping[str, CrmRef]) -> dict[str, CrmRef]:
        """This run's writes read back by the kind each was written as; where another run wrote the
        same key too, the oldest object stays and the others go. Card values cannot be doubled."""
        by_kind: dict[str, list[str]] = {}
        for key, ref in written.items():
            by_kind.setdefault(ref.kind, []).append(key)
        started = [key for kind in self.automation_refs for key in by_kind.get(kind, [])]
        found: dict[str, CrmRef] = {}
        touched = [key for kind in TOUCHES for key in by_kind.get(kind.value, [])]
        touch_find = self.touches.find if self.touches is not None else None
        for keys, settle in ((by_kind.get("task"), self.tasks.find), (by_kind.get("deal"), self.deals.find),
                             (started, self.flows.settle), (touched, touch_find)):
            if keys and settle is not None:
                found.update(settle(keys))
        return found

    def find_on_cards(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers no bulk read shows: card values, and automation notes on the customers' cards."""
        keys = list(keys)
        found = self._on_cards(keys)
        rest = [k for k in keys if not card.is_field_key(k)]
        if rest:
            found.update(self.flows.find(rest))
        return found

    def install(self, *, uninstall: bool = False) -> InstallReport:
        try:
            return self.run_install(uninstall=uninstall)
        finally:
            self.forget_install()
            self._capabilities = None

    def _on_cards(self, keys: list[str]) -> dict[str, CrmRef]:
        return self.cards.find([k for k in keys if card.is_field_key(k)]) if ActionKind.TAG in self.capabilities else {}


class WritebackAdapter:
    """The contract's write and marker members, answered by the adapter's `writer`.

    An adapter sets `writer` (a `Writeback`) and `batch` in its constructor; `crm_id` is the
    customer's own id unless the adapter says otherwise.
    """

    writer: Writeback
    batch: BatchPolicy
    field_settings: Mapping[str, str] = {}  # card field a playbook matches -> the setting naming its source

    @property
    def capabilities(self) -> frozenset[ActionKind]:
        return self.writer.capabilities

    def channel_gaps(self) -> dict[ActionKind, str]:
        """Touch kinds this CRM cannot deliver to anyone this run, and why (`no_mailbox`), for the plan."""
        touches = self.writer.touches
        return dict(getattr(touches, "why_not", {})) if touches is not None else {}

    @property
    def automation_refs(self) -> tuple[str, ...]:
        return self.writer.automation_refs

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        return self.writer.write(actions)

    def find_written(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        keys = list(keys)
        return self.writer.find(keys) if keys else {}

    def all_written(self) -> dict[str, CrmRef]:
        return self.writer.all_markers()

    def settle_written(self, written: dict[str, CrmRef]) -> dict[str, CrmRef]:
        return self.writer.settle(written) if written else {}

    def find_on_cards(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        keys = list(keys)
        return self.writer.find_on_cards(keys) if keys else {}

    def write_stats(self) -> WriteStats:
        return self.writer.stats()

    def rights_missing(self) -> list[dict]:
        return self.writer.rights_missing()

    def account_notices(self, lang: str) -> list[str]:
        """Nothing to say about the account unless its CRM's adapter has something."""
        return []

    def install(self, *, uninstall: bool = False) -> InstallReport:
        return self.writer.install(uninstall=uninstall)

    def crm_id(self, customer_id: str) -> str:
        return str(customer_id)

    def field_setting(self, name: str) -> str | None:
        return self.field_settings.get(name)
