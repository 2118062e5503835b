"""The CRMs this build knows, in one place: the rest of the plugin asks here and names no CRM.

Each entry says where the CRM's adapter, webhook-app side and emulator live, how many list items one pull request can carry, and how the demo points the adapter at the
emulator. A third CRM is one folder under connector/ (see connector.crm) and one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from connector.crm import checked


@dataclass(frozen=True)
class Crm:
    name: str  # the CRM setting, `--crm` and the emulator command's argument
    brand: str  # the CRM's own name, as its users write it
    place: str  # what one installation of it is called ("portal", "account")
    adapter: str  # module with `make_adapter(settings, installs=None)`
    webapp: str  # "module:Class" serving the CRM's routes in `repeat-sales serve`
    emulator: str  # module with `run_standalone(argv)` and the emulator class
    emulator_class: str
    items_per_request: int  # list items one pull request can carry (the demo's lower bound)
    line_items_apart: bool  # whether purchases' line items take requests of their own
    connect: Callable[[object], object]  # the real adapter pointed at a running emulator (the demo)
    demo_prepare: Callable[[object, list[str]], str] | None = None  # an admin's setup before install

    @property
    def title(self) -> str:
        return f"{self.brand} {self.place}"

    def make_adapter(self, settings, installs=None):
        return checked(importlib.import_module(self.adapter).make_adapter(settings, installs))

    def emulated(self, emu):
        """The real adapter pointed at a running emulator of this CRM (the demo)."""
        return checked(self.connect(emu))

    def emulator_type(self):
        return getattr(importlib.import_module(self.emulator), self.emulator_class)

    def webapp_class(self):
        module, _, name = self.webapp.partition(":")
        return getattr(importlib.import_module(module), name)

    def run_emulator(self, argv: list[str]) -> int:
        return importlib.import_module(self.emulator).run_standalone(argv)


def _bitrix_templates(emu, templates: list[str]) -> str:
    """Stand in for an admin who built the playbook's automations in the portal's designer."""
    from emulators.bitrix.writeback_methods import add_workflow_template

    for name in templates:
        add_workflow_template(emu.store, name)
    return f"the portal's admin saved {len(templates)} business-process templates the playbook starts"


def _bitrix_connect(emu):
    from connector.bitrix import BitrixAdapter

    return BitrixAdapter(emu.webhook_url)


def _amocrm_connect(emu):
    from connector.amocrm import AmoAdapter
    from emulators.amocrm.seed import GENDER_FIELD_ID

    # the account's "Пол" field, as an admin names it in AMOCRM_GENDER_FIELD
    return AmoAdapter(emu.base_url, access_token=emu.access_token, gender_field=str(GENDER_FIELD_ID))


CRMS: dict[str, Crm] = {crm.name: crm for crm in (
    # Bitrix24: 50 commands x 50 rows per batch (Doc: settings/how-to-call-rest-api/batch.md)
    Crm("bitrix", "Bitrix24", "portal", "connector.bitrix", "connector.bitrix.app:BitrixApp", "emulators.bitrix",
        "BitrixEmulator", 2500, True, _bitrix_connect, _bitrix_templates),
    # amoCRM: 250 per page (Doc: amoCRM API v4, limitations); a lead brings its products (with=catalog_elements)
    Crm("amocrm", "amoCRM", "account", "connector.amocrm", "connector.amocrm.app:AmoApp", "emulators.amocrm",
        "AmoEmulator", 250, False, _amocrm_connect),
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
