"""The CRMs this build knows, in one place: the rest of the plugin asks here and names no CRM.

Each entry says where the CRM's adapter, webhook-app side, emulator and demo set-up live, and how
many list items one pull request can carry. Modules are named, not imported, so nothing below the
registry (settings, the core) loads an adapter. A third CRM is one folder under connector/ (see
connector.crm) and one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from connector.crm import checked


@dataclass(frozen=True)
class Crm:
    name: str  # the CRM setting, `--crm` and the emulator command's argument
    brand: str  # the CRM's own name, as its users write it
    place: str  # what one installation of it is called ("portal", "account")
    adapter: str  # module with `make_adapter(settings, installs=None)`
    webapp: str  # "module:Class" serving the CRM's routes in `repeat-sales serve`
    emulator: str  # package with the emulator class, and `cli.run_standalone(argv)`
    emulator_class: str
    items_per_request: int  # list items one pull request can carry (the demo's lower bound)
    line_items_apart: bool  # whether purchases' line items take requests of their own
    demo: str  # module with `connect(emu)` (the real adapter on a running emulator) and `prepare(emu, templates)`

    @property
    def title(self) -> str:
        return f"{self.brand} {self.place}"

    def make_adapter(self, settings, installs=None):
        return checked(importlib.import_module(self.adapter).make_adapter(settings, installs))

    def emulated(self, emu):
        """The real adapter pointed at a running emulator of this CRM (the demo)."""
        return checked(importlib.import_module(self.demo).connect(emu))

    def prepare_emulator(self, emu, templates: list[str]) -> str | None:
        """What an admin sets up in the CRM by hand before `install` (the demo); says what, if anything."""
        return importlib.import_module(self.demo).prepare(emu, templates)

    def emulator_type(self):
        return getattr(importlib.import_module(self.emulator), self.emulator_class)

    def webapp_class(self):
        module, _, name = self.webapp.partition(":")
        return getattr(importlib.import_module(module), name)

    def run_emulator(self, argv: list[str]) -> int:
        return importlib.import_module(f"{self.emulator}.cli").run_standalone(argv)


CRMS: dict[str, Crm] = {crm.name: crm for crm in (
    # Bitrix24: 50 commands x 50 rows per batch (Doc: settings/how-to-call-rest-api/batch.md)
    Crm("bitrix", "Bitrix24", "portal", "connector.bitrix", "connector.bitrix.app:BitrixApp", "emulators.bitrix",
        "BitrixEmulator", 2500, True, "connector.bitrix.demo"),
    # amoCRM: 250 per page (Doc: amoCRM API v4, limitations); a lead brings its products (with=catalog_elements)
    Crm("amocrm", "amoCRM", "account", "connector.amocrm", "connector.amocrm.app:AmoApp", "emulators.amocrm",
        "AmoEmulator", 250, False, "connector.amocrm.demo"),
)}
NAMES = tuple(CRMS)
DEFAULT = NAMES[0]


def crm(name: str) -> Crm:
    """The registry's entry; an unknown name lists the known ones."""
    from connector.errors import SettingsError

    if name not in CRMS:
        raise SettingsError("CRM", f"unknown CRM {name!r}", hint=f"use one of: {', '.join(NAMES)}")
    return CRMS[name]


def make_adapter(settings, installs=None):
    """The adapter of the CRM the settings name (`installs`: what the webhook app stored, if any)."""
    return crm(settings.CRM).make_adapter(settings, installs)
