"""The one Protocol every CRM adapter implements, and the value types it speaks.

A third CRM is one new folder under connector/ with a module exposing `make_adapter(settings)`
that returns an object satisfying `CrmAdapter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from connector.model import Action, ActionKind, Customer, Product, Purchase

KNOWN_CRMS = ("bitrix", "amocrm")


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


@dataclass(frozen=True)
class CrmRef:
    """Where an applied action lives in the CRM (e.g. kind="task", id="3711")."""

    kind: str
    id: str


@dataclass(frozen=True)
class WriteOutcome:
    """The fate of one action: written (with its ref) or failed (with a reason)."""

    key: str
    ok: bool
    ref: CrmRef | None = None
    reason: str = ""


@dataclass
class InstallReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # steps skipped for want of a right, each saying which


@runtime_checkable
class CrmAdapter(Protocol):
    name: str
    capabilities: frozenset[ActionKind]

    def pull(self, since: Cursor | None) -> Iterator[PullPage]:
        """Stream customers and purchases changed since the cursor (all when None)."""
        ...

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        """Apply actions; one outcome per action. Raising means the batch's fate is unknown."""
        ...

    def find_written(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Read back the `rs:<key>` markers of objects this plugin created."""
        ...

    def install(self, *, uninstall: bool = False) -> InstallReport:
        ...

    def request_count(self) -> int:
        """HTTP requests this adapter has made so far (for stats and benchmarks)."""
        ...

    def close(self) -> None:
        ...


def marker(key: str) -> str:
    """The text left in every CRM object we create, so the ledger can be rebuilt from the CRM."""
    return f"rs:{key}"


def make_adapter(crm: str, settings) -> CrmAdapter:
    """Load `connector.<crm>` and build its adapter; an unknown name lists the known ones."""
    from connector.errors import SettingsError

    if crm not in KNOWN_CRMS:
        raise SettingsError("CRM", f"unknown CRM {crm!r}", hint=f"use one of: {', '.join(KNOWN_CRMS)}")
    try:
        module = importlib.import_module(f"connector.{crm}")
    except ModuleNotFoundError as exc:
        raise SettingsError("CRM", f"the {crm} adapter is not available in this build") from exc
    return module.make_adapter(settings)
