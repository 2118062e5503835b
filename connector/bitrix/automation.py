"""CRM automation starts in Bitrix24: a business process on the customer, with a comment that says so.

`bizproc.workflow.start` works with an incoming webhook (its doc page shows the webhook call; no
application context, unlike robots), needs the `bizproc` scope and a paid plan, and takes the
template's numeric id. A step's `template` is that id, or the template's name, looked up once per
run with `bizproc.workflow.template.list` (administrators only) among the contact's (company's)
templates. Doc: api-reference/bizproc/bizproc-workflow-start.md, bizproc/template/bizproc-workflow-template-list.md.

A start leaves nothing findable by itself, so the same batch first adds a timeline comment to the
card that ends with `rs:<key>`; a refused start takes its comment back. A step whose template
cannot be found, or that the webhook may not start (no `bizproc` scope, not an administrator: checked
first, rights.py), becomes a manager task that says why (the marker then sits in the task).
Without the `task` scope a manager task is itself a comment on the card (`note`), found the same way.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from connector.bitrix.batching import reason, send_groups
from connector.bitrix.client import BitrixClient
from connector.bitrix.pull import list_pages
from connector.bitrix.rights import Rights
from connector.crm import CrmRef, WriteOutcome, marker
from connector.errors import CrmError
from connector.model import Action, ActionKind

log = logging.getLogger(__name__)

MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
CLOCK_SKEW = timedelta(minutes=5)  # a resent batch's twin started after this write began, give or take
DOCUMENTS = {"contact": ("CCrmDocumentContact", "CONTACT_", 3), "company": ("CCrmDocumentCompany", "COMPANY_", 4)}
NOTES = {
    "ru": ("Запущен бизнес-процесс «{name}» (шаблон {id})", "Автоматизация «{name}» не запущена: {why}. "
           "Выполните шаг вручную."),
    "en": ("Business process “{name}” started (template {id})", "The automation “{name}” was not started: "
           "{why}. Do this step by hand."),
}
TASK_NOTES = {  # a manager task written as a card comment (no `task` scope), due date first
    "ru": "Задача для менеджера до {due} (задача не создана: {why})",
    "en": "Task for the manager, due {due} (no task was created: {why})",
}


class Templates:
    """Business process templates of the customer's document type, by id and by name."""

    def __init__(self, client: BitrixClient, entity: str) -> None:
        self.client, self.entity = client, entity
        self._by_name: dict[str, int] | None = None
        self._ids: set[int] = set()
        self._refused = ""

    def resolve(self, template: str) -> tuple[int | None, str]:
        """(template id, "") or (None, why not)."""
        if self._by_name is None:
            self._by_name = {}
            try:
                for rows in list_pages(self.client, "bizproc.workflow.template.list", {
                        "select": ["ID", "NAME"], "filter": {"MODULE_ID": "crm", "ENTITY": self.entity}}):
                    for row in rows:
                        self._ids.add(int(row["ID"]))
                        self._by_name.setdefault(str(row.get("NAME", "")).casefold(), int(row["ID"]))
            except CrmError as exc:  # no bizproc scope, not an administrator, or no business processes
                self._refused = f"Bitrix24 refused to list business process templates ({exc})"
        if template.isdigit() and (int(template) in self._ids or self._refused):
            return int(template), ""  # an explicit id is tried even when the list is not readable
        found = self._by_name.get(template.casefold())
        if found is not None:
            return found, ""
        return None, self._refused or f"no business process template named {template!r} for this card type"


class WorkflowWriter:
    """`tasks` takes the steps done by hand (its `write`); `rights` tells what the webhook may do."""

    def __init__(self, client: BitrixClient, *, customer_key: str, tasks,
                 rights: Callable[[], Rights] = Rights) -> None:
        self.client = client
        self.rights = rights
        self.kind = "company" if customer_key == "company" else "contact"
        self.document, self.prefix, self.owner_type = DOCUMENTS[self.kind]
        self.templates = Templates(client, self.document)
        self.tasks = tasks
        self.degraded = 0
        self.duplicates_removed = 0
        self.began: datetime | None = None  # this run's first start, give or take the clock skew
        self.started: dict[str, int] = {}  # key -> template id, of the starts this run made

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        groups, placed, by_hand, templates = [], [], [], {}
        began = datetime.now(UTC) - CLOCK_SKEW
        self.began = self.began or began
        rights = self.rights()
        for i, action in enumerate(actions):
            name = str(action.payload.get("template") or "")
            lang = str(action.payload.get("lang") or "ru")
            words = NOTES.get(lang, NOTES["ru"])
            if not rights.allows("workflows"):  # not even tried: the portal would refuse every start
                template_id, why = None, rights.why("workflows", lang)
            else:
                template_id, why = self.templates.resolve(name) if name else (None, "the step names no template")
            if template_id is None:
                note = words[1].format(name=name, why=why)
                by_hand.append(replace(action, kind=ActionKind.TASK, title=f"[workflow] {action.title}",
                                       body=f"{note}\n\n{action.body}".strip()))
                continue
            text = "\n\n".join(x for x in (words[0].format(name=name, id=template_id), action.title,
                                           action.body.strip(), marker(action.key)) if x)
            templates[i] = template_id
            groups.append({
                f"c{i}": ("crm.timeline.comment.add", {"fields": {
                    "ENTITY_ID": action.customer_id, "ENTITY_TYPE": self.kind, "COMMENT": text}}),
                f"w{i}": ("bizproc.workflow.start", {
                    "TEMPLATE_ID": template_id,
                    "DOCUMENT_ID": ["crm", self.document, f"{self.prefix}{action.customer_id}"]}),
            })
            placed.append((i, action))
        if by_hand:
            self.degraded += len(by_hand)
            outcomes.update({o.key: o for o in self.tasks.write(by_hand)})
        if groups:
            sent = send_groups(self.client, groups)
            undo = []
            for i, action in placed:
                started = sent.result.get(f"w{i}")
                if f"w{i}" in sent.errors or not started:
                    outcomes[action.key] = WriteOutcome(action.key, False, reason=reason(sent.errors.get(f"w{i}")))
                    if sent.result.get(f"c{i}"):
                        undo.append((int(sent.result[f"c{i}"]), action.customer_id))
                    continue
                if f"c{i}" in sent.errors:  # started, but unmarked: a lost ledger could not find it
                    log.warning("bitrix workflow started without its comment: %s", reason(sent.errors[f"c{i}"]))
                outcomes[action.key] = WriteOutcome(action.key, True, CrmRef("workflow", str(started)))
                self.started[action.key] = templates[i]
            if undo:
                send_groups(self.client, [{f"u{c}": ("crm.timeline.comment.delete", {
                    "id": c, "ownerTypeId": self.owner_type, "ownerId": owner})} for c, owner in undo])
            if sent.resent:
                self._settle_resent([(a, templates[i], str(outcomes[a.key].ref.id)) for i, a in placed
                                     if outcomes[a.key].ok], began)
        return [outcomes[a.key] for a in actions]

    def note(self, actions: Sequence[Action], why: Callable[[str], str]) -> list[WriteOutcome]:
        """Manager tasks as comments on the customers' cards (the portal takes no tasks from this webhook);
        each says its due date and why it is not a task, and ends with its marker.

        No bulk read finds such comments for a lost ledger, so the cards are read first (one command per
        customer) and a comment already there is kept, not written again.
        """
        there = self.find([a.key for a in actions])
        outcomes = {k: WriteOutcome(k, True, ref) for k, ref in there.items()}
        actions = [a for a in actions if a.key not in there]
        groups = []
        for i, action in enumerate(actions):
            lang = str(action.payload.get("lang") or "ru")
            head = TASK_NOTES.get(lang, TASK_NOTES["ru"]).format(due=action.due.isoformat(), why=why(lang))
            text = "\n\n".join(x for x in (head, action.title, action.body.strip(), marker(action.key)) if x)
            groups.append({f"n{i}": ("crm.timeline.comment.add", {"fields": {
                "ENTITY_ID": action.customer_id, "ENTITY_TYPE": self.kind, "COMMENT": text}})})
        sent = send_groups(self.client, groups) if groups else None
        for i, action in enumerate(actions):
            made = sent.result.get(f"n{i}") if sent else None
            outcomes[action.key] = (WriteOutcome(action.key, True, CrmRef("comment", str(made))) if made else
                                    WriteOutcome(action.key, False, reason=reason(sent.errors.get(f"n{i}") if sent else None)))
        return list(outcomes.values())

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """Markers in the customers' timeline comments (one command per customer, 50 a request).

        A key announced twice keeps its oldest comment; the others are deleted.
        """
        comments = self._comments(keys)
        self._drop_comments([(c, key) for key, ids in comments.items() for c in sorted(ids)[1:]])
        return {key: CrmRef("comment", str(min(ids))) for key, ids in comments.items()}

    def settle(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """After this run's starts: a key another run started too keeps one comment and one start.

        Of the starts of the key's template on that card since this run began, the earliest stays
        and the later ones (one per extra comment) are stopped, so racing runs agree on the survivor.
        """
        comments = self._comments(keys)
        extra = {key: sorted(ids)[1:] for key, ids in comments.items() if len(ids) > 1}
        doubled = [(key, self.started[key]) for key in sorted(extra) if key in self.started]
        if doubled and self.began is not None:
            self._stop_later_starts(doubled, {key: len(ids) for key, ids in extra.items()}, self.began)
        self._drop_comments([(c, key) for key, ids in extra.items() for c in ids])
        return {key: CrmRef("comment", str(min(ids))) for key, ids in comments.items()}

    def _stop_later_starts(self, doubled: list[tuple[str, int]], extra: dict[str, int], since: datetime) -> None:
        groups = [{f"i{n}": ("bizproc.workflow.instances", {
            "select": ["ID", "TEMPLATE_ID", "DOCUMENT_ID", "STARTED"],
            "filter": {"DOCUMENT_ID": f"{self.prefix}{key.split(':')[1]}", "TEMPLATE_ID": template,
                       ">=STARTED": since.isoformat(timespec="seconds")}})} for n, (key, template) in enumerate(doubled)]
        stop = []
        try:
            sent = send_groups(self.client, groups)
            for n, (key, _template) in enumerate(doubled):
                rows = sent.result.get(f"i{n}")
                rows = sorted(rows, key=lambda r: (str(r.get("STARTED")), str(r.get("ID")))) if isinstance(rows, list) else []
                stop += [str(r["ID"]) for r in rows[1:][-extra[key]:]]
            if stop:
                send_groups(self.client, [{f"t{n}": ("bizproc.workflow.terminate", {
                    "ID": w, "STATUS": "repeat-sales: a duplicate start"})} for n, w in enumerate(stop)])
        except CrmError as exc:  # not an administrator: the duplicate start cannot be stopped
            log.warning("bitrix duplicate workflow starts not stopped: %s", exc)

    def _drop_comments(self, extra: list[tuple[int, str]]) -> None:
        if not extra:
            return
        sent = send_groups(self.client, [{f"u{c}": ("crm.timeline.comment.delete", {
            "id": c, "ownerTypeId": self.owner_type, "ownerId": key.split(":")[1]})} for c, key in extra])
        removed = len(extra) - len(sent.errors)  # a comment the other run deleted first is refused here
        self.duplicates_removed += removed
        log.warning("bitrix duplicate_workflow_starts_removed=%d", removed)

    def _settle_resent(self, started: list[tuple[Action, int, str]], since: datetime) -> None:
        """The batch went out twice: keep the start whose id came back, stop the other, drop its comment."""
        comments = self._comments([a.key for a, _t, _w in started])
        extra = [(c, key) for key, ids in comments.items() for c in sorted(ids)[1:]]
        owner = {a.key: a.customer_id for a, _t, _w in started}
        groups = [{f"i{n}": ("bizproc.workflow.instances", {
            "select": ["ID", "TEMPLATE_ID", "DOCUMENT_ID", "STARTED"],
            "filter": {"DOCUMENT_ID": f"{self.prefix}{a.customer_id}", "TEMPLATE_ID": template,
                       ">=STARTED": since.isoformat(timespec="seconds")}})} for n, (a, template, _w) in enumerate(started)]
        doubles = []
        try:
            sent = send_groups(self.client, groups)
            for n, (_a, _template, kept) in enumerate(started):
                rows = sent.result.get(f"i{n}")
                doubles += [str(r["ID"]) for r in rows if str(r.get("ID")) != kept] if isinstance(rows, list) else []
        except CrmError as exc:  # not an administrator: the duplicate start cannot be stopped
            log.warning("bitrix duplicate workflow starts not stopped: %s", exc)
        groups = [{f"t{n}": ("bizproc.workflow.terminate", {"ID": w, "STATUS": "repeat-sales: a duplicate start"})}
                  for n, w in enumerate(doubles)]
        groups += [{f"u{c}": ("crm.timeline.comment.delete", {"id": c, "ownerTypeId": self.owner_type,
                                                               "ownerId": owner[key]})} for c, key in extra]
        if groups:
            send_groups(self.client, groups)
        self.duplicates_removed += len(doubles)
        log.warning("bitrix resent workflow batch: duplicate_starts_stopped=%d comments_removed=%d",
                    len(doubles), len(extra))

    def _comments(self, keys: Iterable[str]) -> dict[str, list[int]]:
        wanted = set(keys)
        by_customer: dict[str, set[str]] = defaultdict(set)
        for key in wanted:
            by_customer[key.split(":")[1]].add(key)
        customers = sorted(c for c in by_customer if c.isdigit())
        found: dict[str, list[int]] = {}
        groups = [{f"m{c}": ("crm.timeline.comment.list", {
            "filter": {"ENTITY_ID": int(c), "ENTITY_TYPE": self.kind}, "select": ["ID", "COMMENT"],
            "order": {"ID": "ASC"}})}
            for c in customers]
        if not groups:
            return found
        sent = send_groups(self.client, groups)
        for label, rows in sent.result.items():
            if label in sent.next:  # a long timeline: read it to its end
                rows = [r for page in list_pages(self.client, "crm.timeline.comment.list", {
                    "filter": {"ENTITY_ID": int(label[1:]), "ENTITY_TYPE": self.kind},
                    "select": ["ID", "COMMENT"]}) for r in page]
            for row in rows if isinstance(rows, list) else []:
                for key in MARKER_RE.findall(str(row.get("COMMENT") or "")):
                    if key in wanted:
                        found.setdefault(key, []).append(int(row["ID"]))
        return found
