"""How `repeat-sales demo` sets up a Bitrix24 portal emulator and points the real adapter at it."""

from __future__ import annotations

from connector.bitrix import BitrixAdapter


def connect(emu) -> BitrixAdapter:
    return BitrixAdapter(emu.webhook_url)


def prepare(emu, templates: list[str]) -> str:
    """Stand in for an admin who built the playbook's automations in the portal's designer."""
    from emulators.bitrix.openlines import seed_chats
    from emulators.bitrix.rights import DEFAULT_SCOPES
    from emulators.bitrix.writeback_methods import add_workflow_template

    for name in templates:
        add_workflow_template(emu.store, name)
    # and connected WhatsApp / Telegram as open lines, giving the webhook the imopenlines scope: the
    # demo shows touches reaching the customers' chats, not only e-mail
    seed_chats(emu.store, emu.seed, 0.5)
    emu.set_rights(scopes=DEFAULT_SCOPES | {"imopenlines"})
    return (f"the portal's admin saved {len(templates)} business-process templates the playbook starts and "
            "connected open lines (WhatsApp, Telegram) for about half of the customers")
