"""How `repeat-sales demo` sets up an amoCRM account emulator and points the real adapter at it."""

from __future__ import annotations

from connector.amocrm import AmoAdapter


def connect(emu) -> AmoAdapter:
    from emulators.amocrm.chats import MESSAGE_BOT_ID
    from emulators.amocrm.seed import GENDER_FIELD_ID

    # the account's "Пол" field, as an admin names it in AMOCRM_GENDER_FIELD; the generic Salesbot the
    # admin built once (README), as named in AMOCRM_SALESBOT_ID
    return AmoAdapter(emu.base_url, access_token=emu.access_token, gender_field=str(GENDER_FIELD_ID),
                      message_bot=MESSAGE_BOT_ID)


def prepare(emu, templates: list[str]) -> str | None:
    """Salesbots are named in AMOCRM_SALESBOTS, not built in the account: nothing to prepare."""
    return None
