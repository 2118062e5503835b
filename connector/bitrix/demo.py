"""How `repeat-sales demo` sets up a Bitrix24 portal emulator and points the real adapter at it."""

from __future__ import annotations

from connector.bitrix import BitrixAdapter


def connect(emu) -> BitrixAdapter:
    return BitrixAdapter(emu.webhook_url)


def prepare(emu, templates: list[str]) -> str:
    """Stand in for an admin who built the playbook's automations in the portal's designer."""
    from emulators.bitrix.writeback_methods import add_workflow_template

    for name in templates:
        add_workflow_template(emu.store, name)
    return f"the portal's admin saved {len(templates)} business-process templates the playbook starts"
