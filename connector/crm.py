"""The one Protocol every CRM adapter implements, and the value types it speaks.

A third CRM is one new folder under connector/ with a module exposing `make_adapter(settings, installs)`
that returns an object satisfying `CrmAdapter`, and one entry in `connector.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from connector.model import Action, ActionKind, Customer, Product, Purchase


@dataclass(frozen=True)
class Cursor:
    """Where the last complete pull stopped: the CRM's own modification time, as it sent it."""

    modified_since: str


@dataclass
class PullPage:
    """One streamed slice of a pull: upserts, and purchases that are no longer purchases.

    `removed_purchase_ids` lists deals the CRM still holds but that are not (or no longer)
    won, so a deal moved from won to lost leaves the local history.
    """

    customers: list[Customer] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    removed_purchase_ids: list[str] = field(default_factory=list)
    skipped: int = 0  # records that could not be mapped (CrmRecordError), counted not fatal
    cursor: Cursor | None = None  # the high-water mark seen so far
    # where the next run starts should this one stop after this page (a rate limit, a block, a bad
    # answer): the pages so far are kept and none is skipped; None: the saved cursor stays as it is
    resume: Cursor | None = None


@dataclass(frozen=True)
class CrmRef:
    """Where an applied action lives in the CRM (e.g. kind="task", id="3711")."""

    kind: str
    id: str


@dataclass(frozen=True)
class WriteOutcome:
    """The fate of one action: written (with its ref) or failed (with a reason).

    `fall`: the channel could not be used for this customer (a reason code such as `no_mailbox`), so
    the touch moves on to its next channel; `delivered`: the action as it finally went out, when a
    touch moved on to another channel than planned.
    """

    key: str
    ok: bool
    ref: CrmRef | None = None
    reason: str = ""
    fall: str = ""
    delivered: Action | None = None


@dataclass
class InstallReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # steps skipped for want of a right, each saying which
    admin_steps: list[str] = field(default_factory=list)  # what the admin builds by hand once (a Salesbot...)


@dataclass(frozen=True)
class BatchPolicy:
    """How many actions one write request carries, and how that number changes when a batch fails.

    A gateway that gave up on a batch too big or too slow (amoCRM's 504: "send fewer", see
    shared/reference/amocrm.md "Writes") makes the rest of the run go in halves; any other failure
    stops the run's writing, and the batch's markers settle its fate.
    """

    size: int = 50
    shrink_on: frozenset[int] = frozenset({504})

    def after_failure(self, size: int, status: int | None) -> int | None:
        """The next batch size after a failed batch, or None when the run writes no more."""
        if status in self.shrink_on and size > 1:
            return max(1, size // 2)
        return None


@runtime_checkable
class CrmAdapter(Protocol):
    """Every member the core uses; a CRM without one of them does not satisfy the contract.

    `connector.adapter.WritebackAdapter` gives the write and marker members to an adapter that
    holds a `connector.adapter.Writeback`; the rest are the CRM's own.
    """

    name: str  # the CRM's name in the registry (connector.registry)
    account: str  # whose data: "<crm>:<portal or account host>", the state's key

    @property
    def capabilities(self) -> frozenset[ActionKind]:
        """The kinds this CRM carries out now (card fields, deals, automation once `install` ran)."""
        ...

    def channel_gaps(self) -> dict[ActionKind, str]:
        """Touch kinds this CRM cannot deliver to anyone this run, and why (`no_mailbox`): the plan routes
        those touches on to their next channel saying so."""
        ...

    @property
    def batch(self) -> BatchPolicy:
        """Write batch size and what a failed batch does to it."""
        ...

    @property
    def automation_refs(self) -> tuple[str, ...]:
        """Ref kinds an automation start is recorded as (its markers sit on the customer's card)."""
        ...

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Stream customers and purchases changed since the cursor (all when None)."""
        ...

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        """Apply actions; one outcome per action. Raising means the batch's fate is unknown."""
        ...

    def find_written(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Read back the `rs:<key>` markers of objects this plugin created."""
        ...

    def all_written(self) -> dict[str, CrmRef]:
        """Every marker a bulk read finds (duplicates removed as it reads): rebuilds a lost ledger."""
        ...

    def find_on_cards(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers no bulk read shows (card values, automation starts on the customers' cards)."""
        ...

    def settle_written(self, written: dict[str, CrmRef]) -> dict[str, CrmRef]:
        """Writes read back by the kind each was written as; of two objects for one key the oldest stays."""
        ...

    def rights_missing(self) -> list[dict]:
        """Steps the CRM user's rights leave out (`rule`-like notes with a `message`), for the run summary."""
        ...

    def account_notices(self, lang: str) -> list[str]:
        """What the run summary should say about the account itself (amoCRM's Customers mode, a token
        without the rights a read needs), in the playbook's language."""
        ...

    def write_stats(self) -> WriteStats:
        """What the writers did besides writing: duplicates removed, automation written as tasks."""
        ...

    def install(self, *, uninstall: bool = False) -> InstallReport:
        """Prepare the CRM once (idempotent), or remove what install created and only that."""
        ...

    def request_count(self) -> int:
        """HTTP requests this adapter has made so far (for stats and benchmarks)."""
        ...

    def crm_id(self, customer_id: str) -> str:
        """The customer's id as the CRM shows it (the JSON report's `crm_id`)."""
        ...

    def field_setting(self, name: str) -> str | None:
        """The setting that names where a card field a playbook matches comes from, if there is one."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class WriteStats:
    duplicates_removed: int = 0  # objects another run (or a lost answer) left twice, removed
    automation_as_tasks: int = 0  # automation starts written as manager tasks (no template or bot)


def contract_members() -> frozenset[str]:
    """The names every adapter must have: the Protocol's attributes and methods."""
    body = vars(CrmAdapter)
    return frozenset(n for n in (*body, *body.get("__annotations__", {})) if not n.startswith("_"))


def checked(adapter):
    """The adapter, once it has every member of the contract; a missing one is named, never defaulted.

    Looked up on the class (and the instance's own attributes), so no property runs a request here.
    """
    missing = sorted(n for n in contract_members() if not hasattr(type(adapter), n) and n not in vars(adapter))
    if missing:
        raise TypeError(f"{type(adapter).__name__} does not implement the CRM contract (connector.crm.CrmAdapter): "
                        f"missing {', '.join(missing)}")
    return adapter


def marker(key: str) -> str:
    """The text left in every CRM object we create, so the ledger can be rebuilt from the CRM."""
    return f"rs:{key}"
