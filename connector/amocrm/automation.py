"""CRM automation starts in amoCRM: a Salesbot on the customer's contact, announced by a note.

`POST /api/v2/salesbot/run` takes `[{bot_id, entity_id, entity_type}]` (1 contact, 2 lead), up to
100 a request, and answers 202: the bots start later and leave nothing to find by key
(Doc: amocrm.ru/developers/content/crm_platform/salesbot-api; developers.kommo.com/reference/launch-salesbot).
So a note on the contact, ending with `rs:<key>`, goes first; a start the account refuses has its
note defused (`rs-failed:`) and is reported. A step's `template` is the bot's id, or a name mapped
to one by AMOCRM_SALESBOTS; a step without a bot (or for a company: bots run on contacts and
leads only) becomes a manager task that says why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from connector.amocrm.batches import send_rounds
from connector.amocrm.client import AmoClient
from connector.amocrm.pull import pages
from connector.amocrm.writes import TaskWriter
from connector.crm import CrmRef, WriteOutcome, marker
from connector.errors import CrmRequestRejected
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

RUN_PATH = "/api/v2/salesbot/run"
RUN_CHUNK = 50  # the API takes up to 100
ENTITY_CONTACT = 1  # Doc: salesbot-api - entity_type 1 contact, 2 lead
MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
IDS_PER_READ = 100
DEFUSED = "rs-duplicate:"
NOTES = {
    "ru": ("Запущен Salesbot «{name}» (бот {id})", "Автоматизация «{name}» не запущена: {why}. Выполните шаг вручную."),
    "en": ("Salesbot “{name}” started (bot {id})", "The automation “{name}” was not started: {why}. Do this step by hand."),
}


class SalesbotWriter:
    def __init__(self, client: AmoClient, *, customer_key: str, tasks: TaskWriter, bots: Mapping[str, int]) -> None:
        self.client, self.tasks, self.bots = client, tasks, dict(bots)
        self.entity = "companies" if customer_key == "company" else "contacts"
        self.degraded = 0
        self.duplicates_removed = 0

    def bot_for(self, template: str) -> tuple[int | None, str]:
        if self.entity != "contacts":
            return None, "Salesbots run on contacts and leads, not on companies"
        if template.isdigit():
            return int(template), ""
        if template in self.bots:
            return self.bots[template], ""
        return None, f"no Salesbot is set for {template!r} (AMOCRM_SALESBOTS)"

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        by_hand, notes, runs = [], [], {}
        for action in actions:
            name = str(action.payload.get("template") or "")
            bot, why = self.bot_for(name) if name else (None, "the step names no template")
            words = NOTES.get(str(action.payload.get("lang") or "ru"), NOTES["ru"])
            if bot is None or not action.customer_id.isdigit():
                note = words[1].format(name=name, why=why or "the customer id is not an amoCRM id")
                by_hand.append(replace(action, kind=ActionKind.TASK, title=f"[workflow] {action.title}",
                                       body=f"{note}\n\n{action.body}".strip()))
                continue
            text = "\n\n".join(x for x in (words[0].format(name=name, id=bot), action.title, action.body.strip(),
                                           marker(action.key)) if x)
            notes.append((action.key, {"entity_id": int(action.customer_id), "note_type": "common",
                                       "params": {"text": text}}))
            runs[action.key] = {"bot_id": bot, "entity_id": int(action.customer_id), "entity_type": ENTITY_CONTACT}
        if by_hand:
            self.degraded += len(by_hand)
            outcomes.update({o.key: o for o in self.tasks.write(by_hand)})
        noted, refused = send_rounds(self.client, "POST", f"/api/v4/{self.entity}/notes", notes, key="notes",
                                     request_ids=lambda n, _b: str(n))
        for key, why in refused.items():
            outcomes[key] = WriteOutcome(key, False, reason=why)
        try:
            started, not_started = send_rounds(self.client, "POST", RUN_PATH, [(k, runs[k]) for k in noted],
                                               key=None, chunk=RUN_CHUNK, request_ids=lambda n, _b: str(n))
        except CrmRequestRejected as exc:  # refused before running (an unknown bot: 404; no rights: 403)
            started, not_started = {}, {k: str(exc) for k in noted}
        for key in started:
            outcomes[key] = WriteOutcome(key, True, CrmRef("salesbot", str(noted[key].get("id") or runs[key]["bot_id"])))
        defuse = []
        for key, why in not_started.items():
            outcomes[key] = WriteOutcome(key, False, reason=why)
            text = next(b["params"]["text"] for k, b in notes if k == key)
            if noted[key].get("id"):
                defuse.append((key, {"id": int(noted[key]["id"]), "note_type": "common",
                                     "params": {"text": text.replace("rs:", "rs-failed:")}}))
        if defuse:
            send_rounds(self.client, "PATCH", f"/api/v4/{self.entity}/notes", defuse, key="notes",
                        request_ids=lambda n, _b: str(n))
        return [outcomes[a.key] for a in actions]

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers in the customers' common notes; a key noted twice (two runs at once) keeps its
        oldest note and the others are defused (`rs-duplicate:`). The bot itself cannot be unstarted."""
        wanted = set(keys)
        customers = sorted({k.split(":")[1] for k in wanted if k.split(":")[1].isdigit()}, key=int)
        seen: dict[str, list[tuple[int, str]]] = {}
        for n in range(0, len(customers), IDS_PER_READ):
            params = {"filter[entity_id][]": customers[n:n + IDS_PER_READ], "filter[note_type][]": "common"}
            for rows in pages(self.client, f"/api/v4/{self.entity}/notes", "notes", params):
                for note in rows:
                    text = str((note.get("params") or {}).get("text") or "")
                    for key in MARKER_RE.findall(text):
                        if key in wanted:
                            seen.setdefault(key, []).append((int(note["id"]), text))
        extra = [(str(note), {"id": note, "note_type": "common", "params": {"text": text.replace("rs:", DEFUSED)}})
                 for notes in seen.values() for note, text in sorted(notes)[1:]]
        if extra:
            defused, _refused = send_rounds(self.client, "PATCH", f"/api/v4/{self.entity}/notes", extra, key="notes",
                                            request_ids=lambda n, _b: str(n))
            self.duplicates_removed += len(defused)
            log.warning("amocrm duplicate_salesbot_notes_defused=%d (the bot ran twice)", len(defused))
        return {key: CrmRef("note", str(min(notes)[0])) for key, notes in seen.items()}

    def settle(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """After this run's starts: reading the notes back already keeps one per key (a bot cannot be
        unstarted)."""
        return self.find(keys)
