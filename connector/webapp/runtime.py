"""What the webhook app's worker and the scheduled job share: settings, playbook, state, today, and
the one way to build an adapter (the incoming webhook when set, else the installed app's OAuth grant).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

from connector import registry
from connector.installs import Installs
from connector.model import Customer
from connector.settings import Settings, secret_text
from connector.state import State
from connector.sync import SyncReport, run_sync
from playbooks import Evaluation, PlanHistory, evaluate, load_playbook

log = logging.getLogger(__name__)


def build_adapter(settings: Settings, installs: Installs):
    """The configured CRM's adapter; Bitrix24 without a webhook runs on the installed app's tokens."""
    return registry.make_adapter(settings, installs)


@dataclass
class Runtime:
    settings: Settings
    today: Callable[[], date]
    installs: Installs | None = None  # the tenant's installs (connector.tenants); None: the default's
    playbook_version: int = field(init=False, default=0)  # the settings page's saved version in force; 0: the file
    _playbook: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.installs is None:
            self.installs = Installs(self.settings.state_target, self.settings.sealer())
        self._playbook = load_playbook(self.settings.PLAYBOOK, lang=self.settings.PLAYBOOK_LANG)
        self._follow_saved()

    @property
    def playbook(self):
        """What an admin saved last on a settings page wins over the file, whichever `serve` process
        (`--workers N`) saved it."""
        self._follow_saved()
        return self._playbook

    @playbook.setter
    def playbook(self, value) -> None:
        self._playbook = value

    def _follow_saved(self) -> None:
        from connector.webapp.pages.versions import latest_playbook, newest_number

        if newest_number(self.settings.state_target) > self.playbook_version:
            saved = latest_playbook(self.settings.state_target)
            if saved is not None:
                self.playbook_version, self._playbook = saved

    def open_state(self) -> State:
        """A State for the calling thread (SQLite connections stay in the thread that made them)."""
        return State(self.settings.state_target)

    def sync(self, state: State, *, full: bool = False, quiet_if_unchanged: bool = False) -> SyncReport | None:
        """One incremental (or full) cycle; raises StateLocked when another run holds the lock.

        `quiet_if_unchanged` (a sync CRM events asked for): None, and no run, when the CRM holds no
        change but the app's own writes (connector.quiet)."""
        adapter = build_adapter(self.settings, self.installs)
        try:
            today, playbook = self.today(), self.playbook
            version = str(self.playbook_version)
            if quiet_if_unchanged and not full and not self.settings.DRY_RUN:
                from connector.quiet import nothing_to_do

                with state.lock("sync"):
                    if nothing_to_do(adapter, state, today, version):
                        log.info("sync=skipped reason=no change but the app's own writes")
                        return None
            return run_sync(adapter, state, playbook, today=today, dry_run=self.settings.DRY_RUN,
                            full=full, referral_secret=secret_text(self.settings.REFERRAL_SECRET),
                            playbook_as=version, processes=self.settings.SYNC_PROCESSES)
        finally:
            adapter.close()

    def evaluation_from_state(self, state: State, account: str, fresh: Customer | None = None) -> Evaluation:
        """The playbook over the local snapshot (no CRM call), with `fresh` - one customer as the CRM holds
        it now - in place of its snapshot copy: a robot's answer without waiting for a sync."""
        customers = state.customers(account, lean=True)
        if fresh is not None:
            customers = _swapped(customers, fresh)
        from connector.feedback import FeedbackAnswers, with_answers

        customers = with_answers(customers, FeedbackAnswers(state).scores(account))
        return evaluate(customers, self.today(), self.playbook, history=PlanHistory(state.applied_dates(account)),
                        catalogue=state.products(account).values(), predict=False,
                        prospects=state.prospect_count(account),
                        secret=secret_text(self.settings.REFERRAL_SECRET))

    def account(self) -> str:
        """The state file's account of this CRM (what a sync files its snapshot under)."""
        adapter = build_adapter(self.settings, self.installs)
        try:
            return adapter.account
        finally:
            adapter.close()


def _swapped(customers: Iterable[Customer], fresh: Customer) -> Iterator[Customer]:
    for customer in customers:
        if customer.id != fresh.id:
            yield customer
    if fresh.purchases:  # the snapshot streams customers with purchases only
        yield fresh
