"""Sync's write-back step: card fields planned next to the playbook's plan, deals told where to go,
actions given the customer's context, and what was written on cards remembered.

CRM-neutral: what an adapter can carry out is its `capabilities` (the kinds it supports once
`repeat-sales install` prepared the CRM); everything CRM-specific happens in the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from connector import briefing, fields
from connector.errors import PlanRefused
from connector.model import Action, ActionKind
from connector.state import MAX_ATTEMPTS, State
from connector.store import ledger
from playbooks.words import names_for

BLANKING_SHARE = 0.5  # a plan clearing more than this share of the cards that hold values is stopped
BLANKING_MIN_CARDS = 10  # below this many cards a few prospects are not a pattern


class WritebackPlanner:
    def __init__(self, state: State, account: str, playbook, capabilities: frozenset[ActionKind]) -> None:
        self.state, self.account = state, account
        self.config = playbook.writeback
        self.lang = playbook.lang
        self.names = names_for(playbook)
        self.cards_on = self.config.card_fields and ActionKind.TAG in capabilities
        self.cards = fields.WrittenCards(state) if self.cards_on else None
        self.reports: dict[str, object] = {}

    def extend(self, evaluation, plan: list[Action], today: date) -> list[Action]:
        """The plan with deal targets in deal payloads, plus one card action per changed customer."""
        plan = [self._deal_target(a) for a in plan]
        self.reports = {r.customer_id: r for r in evaluation.customers}
        if self.cards is None:
            return plan
        # what a card needs from the snapshot, from its columns: no customer object, not the whole history
        cards = fields.snapshot_card_facts(self.state.db, self.account)
        last = self.cards.last(self.account)
        spent = self._given_up()  # a card the CRM kept refusing (a deleted contact) waits for new values
        changed = [a for a in fields.field_actions(evaluation.customers, cards, last, today, lang=self.lang,
                                                   names=self.names) if a.key not in spent]
        # what each card held before: a CRM that keeps a value elsewhere too (amoCRM bonus points) writes it on change
        before = self.cards.codes(self.account, (a.customer_id for a in changed))
        for a in changed:  # its payload is its own, new dict: filled in place, not copied (200,000 cards on a first sync)
            a.payload["was"] = before.get(a.customer_id, {})  # type: ignore[index]
        plan.extend(changed)
        return plan

    def refuse_blanking(self, plan: list[Action]) -> None:
        """Stop a plan that would wipe most cards back to "no purchases" before anything is written.

        That happens when the history read is not the CRM's (a past `--as-of`, deals hidden by a
        changed filter or rights); a card keeps its values until the operator says otherwise.
        """
        if self.cards is None:
            return
        holding = self.cards.holding_values(self.account)
        cleared = sum(1 for a in plan if a.kind == ActionKind.TAG and a.customer_id in holding
                      and (a.payload.get("codes") or a.payload.get("fields", {})).get("lifecycle")
                      == fields.BLANK_LIFECYCLE)
        if len(holding) >= BLANKING_MIN_CARDS and cleared > BLANKING_SHARE * len(holding):
            raise PlanRefused(
                f"the plan would clear the segment values on {cleared} of {len(holding)} customer cards "
                "(they would read 'no purchases'); nothing was written",
                hint="check the as-of day and that the CRM still shows the won deals; "
                     "sync --allow-blank-cards writes it anyway")

    def _given_up(self) -> set[str]:
        return ledger.given_up(self.state.db, self.account, fields.RULE, MAX_ATTEMPTS)

    def _deal_target(self, action: Action) -> Action:
        if action.kind != ActionKind.DEAL or not (self.config.deal_pipeline or self.config.deal_stage):
            return action
        return replace(action, payload={**action.payload, "pipeline": self.config.deal_pipeline,
                                        "stage": self.config.deal_stage})

    def enrich(self, actions: list[Action]) -> list[Action]:
        """Tasks, deals and automation starts with the customer's history and past touches.

        Called per write batch: only that batch's customers are read back from the snapshot, so a
        big plan never holds every planned customer's history (nor every long body) at once.
        """
        if not self.config.task_context or not actions:
            return actions
        ids = {a.customer_id for a in actions if a.kind != ActionKind.TAG}
        if not ids:
            return actions
        customers = {c.id: c for c in self.state.customers(self.account, ids)}
        touches = briefing.touches_by_customer(self.state, self.account, ids)
        return briefing.with_context(actions, customers, self.reports, touches, self.lang, self.names)

    def record(self, actions: Iterable[Action]) -> int:
        """Remember the card values the CRM now holds (their keys are done); returns how many."""
        if self.cards is None:
            return 0
        tags = [a for a in actions if a.kind == ActionKind.TAG]
        status = self.state.ledger_status(self.account, (a.key for a in tags))
        return self.cards.record(self.account, [a for a in tags if status.get(a.key) == "done"])
