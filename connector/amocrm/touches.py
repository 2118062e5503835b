"""Touches amoCRM delivers itself: our text sent into the customer's chat by one generic Salesbot.

amoCRM has no public API that posts into another integration's WhatsApp or Telegram chat, but a
Salesbot can: the admin builds once a bot that sends the contact's field `RS_MESSAGE` into the chat
and then copies `RS_MESSAGE_KEY` into `RS_MESSAGE_SENT` (README, "What the admin does once"), and
AMOCRM_SALESBOT_ID names it. A messenger or SMS step then goes out in three writes:

1. `PATCH /api/v4/contacts`: RS_MESSAGE = the text, RS_MESSAGE_KEY = `rs:<key>` (never sent);
2. `POST /api/v2/salesbot/run` (Doc: developers.kommo.com/reference/launch-salesbot: `{bot_id,
   entity_id, entity_type}`, 1 = contact, at most 100 a request, 202 and the bot starts later);
3. `POST /api/v4/contacts/notes`: a note for the manager ending with `rs:<key>`, the lasting record.

A touch counts as delivered when its note exists or the contact's RS_MESSAGE_SENT holds its marker.
Crash windows (a run killed between the writes): before 2, RS_MESSAGE_SENT is not this key and no note
exists, so a rerun writes and runs again (once); after 2, the bot has copied the key (or will within
seconds), so a rerun finds it and sends nothing (once). What is left: a rerun inside the seconds
between the run's acceptance and the bot's own start (the bot runs asynchronously) sends it twice.
A contact without a chat (`GET /api/v4/contacts/chats`, Doc: developers.kommo.com/reference/
get-contact-chats) moves the touch on to its next channel; so does a missing bot (the setting unset, or
an id the account does not know) for every touch of the run. One message a contact a run: the field
holds one text, so a second touch for the same contact takes its next channel (`bot_busy`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from connector.amocrm.batches import send_rounds
from connector.amocrm.client import AmoClient
from connector.amocrm.fields import FieldIds
from connector.amocrm.pull import pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.errors import CrmError, CrmRequestRejected
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

TEXT_CODE, KEY_CODE, SENT_CODE = "RS_MESSAGE", "RS_MESSAGE_KEY", "RS_MESSAGE_SENT"
BOT_FIELDS = (
    {"name": "Текст для клиента", "type": "textarea", "code": TEXT_CODE, "sort": 540},
    {"name": "Ключ текста", "type": "text", "code": KEY_CODE, "sort": 541},
    {"name": "Текст отправлен", "type": "text", "code": SENT_CODE, "sort": 542},
)
RUN_PATH = "/api/v2/salesbot/run"
RUN_CHUNK = 100  # Doc: developers.kommo.com/reference/launch-salesbot - no more than 100 bots at a time
CONTACT = 1  # entity_type of a contact in a Salesbot run
IDS_PER_READ = 100
MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
NOTE = {"ru": "Salesbot отправил клиенту в чат: {title}", "en": "Salesbot sent to the customer's chat: {title}"}


class BotTouches:
    """Messenger and SMS steps through the generic Salesbot; delivered as the `bot` kind."""

    def __init__(self, client: AmoClient, ids: FieldIds, *, customer_key: str, bot_id: int | None) -> None:
        self.client, self.ids, self.bot_id = client, ids, bot_id
        self.on_contacts = customer_key != "company"  # Salesbots run on contacts and leads, not companies
        self._why_not: dict[ActionKind, str] = {}
        self.duplicates_removed = 0

    @property
    def kinds(self) -> frozenset[ActionKind]:
        able = frozenset({ActionKind.MESSAGE, ActionKind.SMS}) if self.on_contacts else frozenset()
        return able - set(self.why_not)

    @property
    def why_not(self) -> dict[ActionKind, str]:
        """Kinds refused for every customer this run, and why: no bot set, install not run, the bot refused."""
        if self.on_contacts and not self._why_not:
            why = "no_bot" if self.bot_id is None else "" if self._installed() else "not_installed"
            if why:
                self._refuse_all(why)
        return self._why_not

    def forget(self) -> None:
        """After install or uninstall: whether the fields exist is read again."""
        self._why_not.clear()

    def _installed(self) -> bool:
        try:
            return not self.ids.missing("contacts", (TEXT_CODE, KEY_CODE))
        except CrmError as exc:
            log.warning("amocrm contact fields unreadable: %s", exc)
            return False

    def _refuse_all(self, reason: str) -> None:
        self._why_not.update(dict.fromkeys((ActionKind.MESSAGE, ActionKind.SMS), reason))

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        why = self.why_not.get(ActionKind.MESSAGE)
        if why:
            log.warning("amocrm bot touches off (%s): messenger and SMS steps go to their next channel", why)
            return [WriteOutcome(a.key, False, reason=why, fall=why) for a in actions]
        fields = self.ids.of("contacts")
        chats = self.chats({a.customer_id for a in actions if a.customer_id.isdigit()})
        taken: set[str] = set()
        ready: list[Action] = []
        for action in actions:
            fall = ("no_chat" if action.customer_id not in chats else "bot_busy" if action.customer_id in taken else "")
            if fall:
                outcomes[action.key] = WriteOutcome(action.key, False, reason=fall, fall=fall)
                continue
            taken.add(action.customer_id)
            ready.append(action)
        bodies = [(a.key, {"id": int(a.customer_id), "custom_fields_values": [
            {"field_id": fields[TEXT_CODE], "values": [{"value": str(a.payload.get("text") or "")}]},
            {"field_id": fields[KEY_CODE], "values": [{"value": marker(a.key)}]}]}) for a in ready]
        written, refused = send_rounds(self.client, "PATCH", "/api/v4/contacts", bodies, key="contacts")
        outcomes.update({k: WriteOutcome(k, False, reason=why) for k, why in refused.items()})
        runs = [(a.key, {"bot_id": self.bot_id, "entity_id": int(a.customer_id), "entity_type": CONTACT})
                for a in ready if a.key in written]
        try:
            started, not_started = send_rounds(self.client, "POST", RUN_PATH, runs, key=None, chunk=RUN_CHUNK,
                                               request_ids=lambda n, _b: str(n))
        except CrmRequestRejected as exc:  # an unknown bot (404) or no rights (403): nothing started
            self._refuse_all("no_bot")
            log.warning("amocrm Salesbot %s refused: %s", self.bot_id, exc)
            started, not_started = {}, {}
            outcomes.update({k: WriteOutcome(k, False, reason=str(exc), fall="no_bot") for k, _b in runs})
        outcomes.update({k: WriteOutcome(k, False, reason=why) for k, why in not_started.items()})
        by_key = {a.key: a for a in ready}
        notes = [(k, {"entity_id": int(by_key[k].customer_id), "note_type": "common", "params": {"text": self.note(by_key[k])}})
                 for k in started]
        noted, _unnoted = send_rounds(self.client, "POST", "/api/v4/contacts/notes", notes, key="notes",
                                      request_ids=lambda n, _b: str(n))
        for key in started:  # delivered: the bot holds the key even where the note was refused
            ref = str(noted.get(key, {}).get("id") or by_key[key].customer_id)
            outcomes[key] = WriteOutcome(key, True, CrmRef("bot", ref), delivered=replace(by_key[key], kind=ActionKind.BOT))
        return [outcomes[a.key] for a in actions]

    @staticmethod
    def note(action: Action) -> str:
        words = NOTE.get(str(action.payload.get("lang") or "ru"), NOTE["ru"])
        return "\n\n".join(x for x in (words.format(title=action.title), str(action.payload.get("text") or ""),
                                       marker(action.key)) if x)

    def chats(self, customer_ids: Iterable[str]) -> set[str]:
        """Contacts that have a messenger chat (a bot can write only there)."""
        ids = sorted(customer_ids, key=int)
        have: set[str] = set()
        for n in range(0, len(ids), IDS_PER_READ):
            body = self.client.request("GET", "/api/v4/contacts/chats", params={"contact_id[]": ids[n:n + IDS_PER_READ]})
            rows = ((body or {}).get("_embedded") or {}).get("chats") or [] if isinstance(body, dict) else []
            have.update(str(r.get("contact_id")) for r in rows if isinstance(r, dict))
        return have

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Touches the bot delivered: the marker in a contact's note, or in its RS_MESSAGE_SENT."""
        wanted = set(keys)
        customers = sorted({k.split(":")[1] for k in wanted if k.split(":")[1].isdigit()}, key=int)
        if not customers or not self.on_contacts or self.bot_id is None:  # no bot set: nothing was sent by one
            return {}
        found: dict[str, CrmRef] = {}
        for n in range(0, len(customers), IDS_PER_READ):
            chunk = customers[n:n + IDS_PER_READ]
            notes = {"filter[entity_id][]": chunk, "filter[note_type][]": "common"}
            for rows in pages(self.client, "/api/v4/contacts/notes", "notes", notes):
                for note in rows:
                    for key in MARKER_RE.findall(str((note.get("params") or {}).get("text") or "")):
                        if key in wanted and key not in found:
                            found[key] = CrmRef("bot", str(note["id"]))
            for rows in pages(self.client, "/api/v4/contacts", "contacts", {"filter[id][]": chunk}):
                for contact in rows:
                    key = _sent_key(contact)
                    if key in wanted and key not in found:
                        found[key] = CrmRef("bot", str(contact["id"]))
        return found

    def all_markers(self) -> dict[str, CrmRef]:
        """Every touch the bot delivered, from the contacts' notes: rebuilds a lost ledger."""
        if not self.on_contacts or self.bot_id is None:
            return {}
        found: dict[str, CrmRef] = {}
        for rows in pages(self.client, "/api/v4/contacts/notes", "notes", {"filter[note_type][]": "common"}):
            for note in rows:
                text = str((note.get("params") or {}).get("text") or "")
                if text.startswith(tuple(NOTE[lang].split(":")[0] for lang in NOTE)):
                    for key in MARKER_RE.findall(text):
                        found.setdefault(key, CrmRef("bot", str(note["id"])))
        return found


def _sent_key(contact: dict) -> str:
    for cf in contact.get("custom_fields_values") or []:
        if cf.get("field_code") == SENT_CODE and cf.get("values"):
            value = str(cf["values"][0].get("value") or "")
            return value[3:] if value.startswith("rs:") else ""
    return ""


def salesbot_steps() -> list[str]:
    """What `install` prints: the one generic Salesbot the admin builds by hand (no public API creates bots)."""
    return [
        "amoCRM: один раз соберите Salesbot, который отправляет наш текст в чат клиента:",
        "  1. Настройки -> Инструменты коммуникации -> Salesbot -> Создать бота (пустой шаблон), имя «repeat-sales».",
        "  2. Шаг «Отправить сообщение»: текст - поле контакта «Текст для клиента (repeat-sales)» (RS_MESSAGE).",
        "  3. Шаг «Изменить поле»: поле контакта «Текст отправлен (repeat-sales)» (RS_MESSAGE_SENT) = значение поля "
        "«Ключ текста (repeat-sales)» (RS_MESSAGE_KEY). По нему повторный запуск видит, что текст уже ушёл.",
        "  4. Сохраните бота, узнайте его id (список ботов, атрибут data-id) и укажите AMOCRM_SALESBOT_ID=<id>.",
        "  Набросок сценария (сверьте id полей в конструкторе): "
        '[{"question":[{"handler":"show","params":{"type":"text","value":"{{contact.cf.RS_MESSAGE}}"}},'
        '{"handler":"action","params":{"name":"set_custom_fields","params":{"type":"contact",'
        '"custom_fields_id":"RS_MESSAGE_SENT","value":"{{contact.cf.RS_MESSAGE_KEY}}"}}},'
        '{"handler":"stop","params":{}}]}]',
        "  Без AMOCRM_SALESBOT_ID шаги «мессенджер» и «SMS» уходят в следующий канал шага с причиной в отчёте.",
    ]
