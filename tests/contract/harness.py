"""What the contract suite needs of a CRM: its emulator, its real adapter, its CLI settings, and ground
truth read from the CRM's side, never from the adapter's memory.

A scenario test takes the `crm` fixture (a started `CrmHarness`) and is written once; it runs against
every harness in `HARNESSES`. A third CRM adds one harness class here and passes the suite, or is not done.
The harness uses only the product's public behaviour: the adapter's constructor, `run_sync`, the CLI.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import ClassVar, Protocol

from connector.crm import Cursor, InstallReport
from connector.model import Action
from connector.sync import SyncReport, run_sync
from playbooks import load_playbook

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 6, 15)  # the shops' history is anchored here, so plans are reproducible
CUSTOMERS = 120
SEED = 7
MARKER = r"rs:(v\d+:\S+)"
# The bundled playbook sends its customer steps through channels (e-mail first); scenarios about business
# processes and Salesbots load this one, the bundled playbook as it was while those steps were automation.
AUTOMATION_PLAYBOOK = Path(__file__).with_name("automation_playbook.toml")  # design.md: every object the plugin creates carries `rs:<key>`


@dataclass(frozen=True)
class Calls:
    """The calls scenarios fault or count, in the CRM's words (the emulator's `call` names)."""

    task_write: str
    deal_write: str
    workflow_write: str
    email_write: str | None = None  # where the CRM sends a customer's e-mail itself


@dataclass(frozen=True)
class TruePurchase:
    """A won purchase as the CRM holds it."""

    customer_id: str
    day: date
    amount: float
    currency: str
    items: tuple[tuple[str, float], ...]  # (product id, quantity), sorted
    manager_id: str


@dataclass(frozen=True)
class TrueCustomer:
    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    birthday: date | None
    opted_out: bool


@dataclass(frozen=True)
class HeldTask:
    """One of our tasks as a manager sees it."""

    customer_id: str
    purchase_ids: frozenset[str]  # the deals it links to (empty where tasks link to one card only)
    due: date
    responsible: str
    text: str  # the title and the description, as shown


@dataclass(frozen=True)
class HeldDeal:
    """One of our repeat deals as a manager sees it."""

    key: str
    customer_id: str
    stage: str
    responsible: str
    title: str
    products: tuple[tuple[str, float], ...]  # sorted
    note_keys: tuple[tuple[str, ...], ...]  # the markers in each of its notes or comments
    marked_ours: bool  # tagged or flagged as the plugin's repeat deal


@dataclass
class Seen:
    """What one pull read: counts per kind, and the cursor it ended with."""

    customers: dict = field(default_factory=dict)
    purchases: dict = field(default_factory=dict)
    products: dict = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    skipped: int = 0
    cursor: Cursor | None = None

    @property
    def line_items(self) -> int:
        return sum(len(p.items) for p in self.purchases.values())


def pull_all(adapter, since: Cursor | None = None) -> Seen:
    seen = Seen()
    for page in adapter.pull(since):
        seen.customers.update({c.id: c for c in page.customers})
        seen.purchases.update({p.id: p for p in page.purchases})
        seen.products.update({p.id: p for p in page.products})
        seen.removed += page.removed_purchase_ids
        seen.skipped += page.skipped
        seen.cursor = page.cursor or seen.cursor
    return seen


class CrmHarness(Protocol):
    """One CRM behind the contract suite. Attributes say what differs by protocol, not by quality."""

    name: str  # the CRM= setting
    emulator: object  # the shared control API: fail_next, drop_next, set_latency, stats, reset_stats, touch_purchase
    today: date
    calls: Calls
    account: str  # the state file's account name
    resends_lost_writes: bool  # its client resends a write whose answer was lost; else the run stops
    tasks_link_purchases: bool  # a task links the customer's deals too, not only the card
    stops_twin_automation: bool  # two racing runs' twin automation start is stopped, not only unmarked
    install_creates: int  # fields `install` makes in a fresh CRM
    card_fields: tuple[str, ...]  # segment, rfm, lifecycle, tier, next purchase: field codes on a card
    opt_out_field: str  # the CRM's own opt-out field, there before `install`
    new_deal_stage: str  # where a repeat deal starts, as `HeldDeal.stage` says it
    token_setting: str  # the setting holding the secret
    gender_setting: str  # the setting naming a gender field

    # --- the product, pointed at the emulator ---
    def adapter(self, **kw): ...
    def sync(self, state, *, playbook=None, today: date | None = None, adapter_kw: dict | None = None,
             **kw) -> SyncReport: ...
    def install(self, *, uninstall: bool = False) -> InstallReport: ...
    def pull(self, since: Cursor | None = None, **adapter_kw) -> tuple[Seen, int]: ...  # read, requests made
    def no_waits(self) -> dict: ...  # adapter arguments that make retries not wait, where it can
    def automation(self, *templates: str) -> None: ...
    def cli_env(self, tmp_path, *, write_batch: int | None = None, **extra) -> dict: ...
    def wrong_token_env(self, env: dict, secret: str) -> dict: ...

    # --- ground truth ---
    def won_purchases(self) -> dict[str, TruePurchase]: ...
    def true_customers(self) -> dict[str, TrueCustomer]: ...
    def true_products(self) -> dict[str, tuple[int | None, str]]: ...
    def opted_out(self, customer) -> bool: ...
    def held(self, customers: Iterable[str] = ()) -> dict[str, Counter]: ...
    def tasks(self) -> dict[str, HeldTask]: ...
    def repeat_deals(self) -> list[HeldDeal]: ...
    def card_values(self, ids: Iterable[str]) -> dict[str, tuple[str, str, str, str]]: ...
    card_keeps_codes: bool
    def custom_fields(self) -> dict[tuple[str, str], str]: ...
    def automation_starts(self) -> Counter: ...
    def active_users(self) -> set[str]: ...
    def fired_managers(self) -> set[str]: ...
    def prospects(self) -> tuple[set[str], set[str]]: ...
    def genders(self) -> dict[str, str | None]: ...
    def call_count(self, call: str) -> int: ...
    def card_writes(self) -> int: ...  # customer cards updated since the emulator started
    def pull_lower_bound(self, seen: Seen) -> int: ...  # ceil(items / items per request), per list
    def pull_request_bound(self, seen: Seen) -> int: ...  # the most a pull of `seen` may cost
    def list_requests(self, seen: Seen) -> dict[str, tuple[int, float]]: ...
    def write_requests(self, report: SyncReport) -> tuple[int, int]: ...

    # --- what the CRM's users do ---
    def set_amount(self, purchase_id: str, amount: int) -> None: ...
    def mark_lost(self, purchase_id: str) -> None: ...
    def unlink_customer(self, purchase_id: str) -> None: ...
    def delete_customer(self, customer_id: str) -> None: ...
    def add_twins(self, task: Action, deal: Action) -> None: ...
    def delete_card_field(self, code: str) -> None: ...
    def named_stage(self) -> tuple[str, str, str]: ...  # (pipeline, stage) a playbook names; HeldDeal.stage
    def drop_gender_source(self) -> dict: ...  # no gender on the cards; returns the CLI settings to run with
    def gender_adapter_kw(self) -> dict: ...  # the adapter arguments that name the shop's gender field


class HarnessBase:
    """What every harness does the same way: the adapter's lifecycle around run_sync and install."""

    name: ClassVar[str]
    emulator_class: ClassVar[type]

    def __init__(self, *, customers: int = CUSTOMERS, seed: int = SEED, today: date = TODAY) -> None:
        self.today = today
        self.emulator = self.emulator_class(customers=customers, seed=seed, today=today)
        self.card_updates = 0  # customer cards the CRM updated, counted by its own change events

    def card_writes(self) -> int:
        return self.card_updates

    def touches(self) -> Counter:
        """Keys that reached the customer or a manager, however delivered: as a task or as an e-mail."""
        held = self.held()
        return held["task"] + held["email"]

    def __enter__(self):
        self.emulator.start()
        self.started()
        return self

    def __exit__(self, *exc) -> None:
        self.emulator.stop()

    def started(self) -> None:
        """The emulator listens: learn what needs its address."""

    def adapter(self, **kw):
        raise NotImplementedError

    @property
    def account(self) -> str:
        a = self.adapter()
        try:
            return a.account
        finally:
            a.close()

    def sync(self, state, *, playbook=None, today: date | None = None, adapter_kw: dict | None = None,
             **kw) -> SyncReport:
        """One `run_sync` with a fresh adapter, as one scheduled run would do it."""
        a = self.adapter(**(adapter_kw or {}))
        try:
            return run_sync(a, state, playbook or load_playbook(), today=today or self.today, **kw)
        finally:
            a.close()

    def pull(self, since: Cursor | None = None, **kw) -> tuple[Seen, int]:
        """A pull by a fresh adapter: what it read and the requests it made."""
        a = self.adapter(**kw)
        try:
            seen = pull_all(a, since)
            return seen, a.request_count()
        finally:
            a.close()

    def install(self, *, uninstall: bool = False) -> InstallReport:
        a = self.adapter()
        try:
            return a.install(uninstall=uninstall)
        finally:
            a.close()

    def base_env(self, tmp_path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "PLAYBOOK"))}
        env.update(CRM=self.name, STATE_URL=f"sqlite:///{tmp_path / 'state.db'}", PYTHONPATH=str(ROOT),
                   RS_TODAY=self.today.isoformat())
        return env


def automation_playbook():
    """A playbook whose customer steps start the admin's business processes / Salesbots."""
    return load_playbook(AUTOMATION_PLAYBOOK)


def registry() -> dict[str, type]:
    """Every CRM the contract suite runs against, by the CRM= name (the fixture's ids)."""
    from tests.contract.amocrm_harness import AmoHarness
    from tests.contract.bitrix_harness import BitrixHarness

    return {h.name: h for h in (BitrixHarness, AmoHarness)}

