"""Repeat deals in amoCRM: a lead with its products and a note saying why.

`POST /api/v4/leads` (50 a request) creates each lead in the pipeline and status the playbook's
[writeback] names, on the customer, for the manager, tagged `repeat-sales`, and with the action key
in the lead's own custom field `RS_ACTION_KEY` (created by `repeat-sales install`), so the key is
on the lead from its first moment; then `POST /api/v4/leads/link` links the catalog products with
their quantities and `POST /api/v4/leads/notes` adds the why, ending with `rs:<key>`.
Doc: amocrm.ru/developers/content/crm_platform/leads-api, kommo.com/developers/content/api_v4/
links-between-entities, developers.kommo.com/reference/notes. API v4 cannot delete a lead, so a
lead whose products or note were refused stays (it is the deal) and the refusal is logged; a
second lead for one key (two runs at once) is closed as lost, its key and note marker defused.
After `install --uninstall` the key field is gone with its values, and the lead's note names the key.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from connector.amocrm import mapping
from connector.amocrm.batches import send_rounds
from connector.amocrm.client import AmoClient
from connector.amocrm.fields import FieldIds
from connector.amocrm.pull import pages
from connector.crm import CrmRef, WriteOutcome, marker
from connector.model import Action

log = logging.getLogger(__name__)

KEY_CODE = "RS_ACTION_KEY"
KEY_RE = re.compile(r"v\d+:")
MARKER_RE = re.compile(r"rs:(v\d+:\S+)")
DEFUSED = "rs-duplicate:"  # what a closed twin carries instead of its key
TAG = "repeat-sales"
IDS_PER_READ = 250
NOTE_LIMIT = 4000


class Target:
    """Pipelines with their statuses, read once; the playbook names them by name or id."""

    def __init__(self, client: AmoClient) -> None:
        self.client = client
        self._pipelines: list[dict] | None = None

    def resolve(self, pipeline: str, status: str) -> tuple[int, int]:
        """(pipeline_id, status_id); raises LookupError naming what exists."""
        if self._pipelines is None:
            body = self.client.request("GET", "/api/v4/leads/pipelines") or {}
            self._pipelines = [p for p in (body.get("_embedded") or {}).get("pipelines") or [] if isinstance(p, dict)]
        if pipeline:
            found = [p for p in self._pipelines if str(p.get("id")) == pipeline
                     or str(p.get("name", "")).casefold() == pipeline.casefold()]
            if not found:
                names = ", ".join(str(p.get("name")) for p in self._pipelines)
                raise LookupError(f"no pipeline {pipeline!r} in amoCRM (there are: {names})")
        else:
            found = [p for p in self._pipelines if p.get("is_main")] or self._pipelines[:1]
            if not found:
                raise LookupError("the amoCRM account has no pipeline")
        chosen = found[0]
        statuses = sorted(((chosen.get("_embedded") or {}).get("statuses") or []), key=lambda s: s.get("sort", 0))
        if status:
            match = [s for s in statuses if str(s.get("id")) == status
                     or str(s.get("name", "")).casefold() == status.casefold()]
            if not match:
                names = ", ".join(str(s.get("name")) for s in statuses)
                raise LookupError(f"no status {status!r} in pipeline {chosen.get('name')!r} (there are: {names})")
            return int(chosen["id"]), int(match[0]["id"])
        # Doc: amocrm.ru/developers/content/crm_platform/leads_pipelines - type 1 is "unsorted", 142/143 close it
        work = [s for s in statuses if s.get("type") == 0 and s.get("id") not in (mapping.WON_STATUS_ID,
                                                                                 mapping.LOST_STATUS_ID)]
        if not work:
            raise LookupError(f"pipeline {chosen.get('name')!r} has no working status")
        return int(chosen["id"]), int(work[0]["id"])


class LeadWriter:
    def __init__(self, client: AmoClient, ids: FieldIds, *, customer_key: str,
                 responsible: Callable[[str | None], int]) -> None:
        self.client, self.ids = client, ids
        self.link_entity = "companies" if customer_key == "company" else "contacts"
        self.responsible = responsible
        self.target = Target(client)
        self._catalog: int | None = None
        self._pipelines: dict[int, int | None] = {}  # lead -> its pipeline, to close a twin in place
        self.duplicates_removed = 0

    def catalog_id(self) -> int | None:
        if self._catalog is None:
            for rows in pages(self.client, "/api/v4/catalogs", "catalogs"):
                self._catalog = next((int(c["id"]) for c in rows if c.get("type") == "products"), self._catalog)
        return self._catalog

    def lead_body(self, action: Action, pipeline: int, status: int) -> dict:
        lines = action.payload.get("products") or []
        price = sum(float(x.get("price") or 0) * float(x.get("quantity") or 1) for x in lines)
        return {"name": action.title[:255], "price": int(round(price)), "pipeline_id": pipeline, "status_id": status,
                "responsible_user_id": self.responsible(action.manager_id),
                "custom_fields_values": [{"field_id": self.ids.of("leads")[KEY_CODE], "values": [{"value": action.key}]}],
                "_embedded": {self.link_entity: [{"id": int(action.customer_id)}], "tags": [{"name": TAG}]},
                "request_id": action.key}

    def write(self, actions: Sequence[Action]) -> list[WriteOutcome]:
        outcomes: dict[str, WriteOutcome] = {}
        if self.ids.missing("leads", [KEY_CODE]):
            why = f"the lead field {KEY_CODE} is missing: run `repeat-sales install`"
            return [WriteOutcome(a.key, False, reason=why) for a in actions]
        bodies = []
        for action in actions:
            try:
                pipeline, status = self.target.resolve(str(action.payload.get("pipeline") or ""),
                                                       str(action.payload.get("stage") or ""))
            except LookupError as exc:
                outcomes[action.key] = WriteOutcome(action.key, False, reason=str(exc))
                continue
            if not action.customer_id.isdigit():
                outcomes[action.key] = WriteOutcome(action.key, False, reason="the customer id is not an amoCRM id")
                continue
            bodies.append((action.key, self.lead_body(action, pipeline, status)))
        done, refused = send_rounds(self.client, "POST", "/api/v4/leads", bodies, key="leads")
        leads = {key: int(item["id"]) for key, item in done.items() if item.get("id")}
        for key, why in refused.items():
            outcomes[key] = WriteOutcome(key, False, reason=why)
        for key, lead in leads.items():
            outcomes[key] = WriteOutcome(key, True, CrmRef("deal", str(lead)))
        for key in done.keys() - leads.keys():
            outcomes[key] = WriteOutcome(key, False, reason="amoCRM answered without the new lead's id")
        self._fill([a for a in actions if a.key in leads], leads)
        return [outcomes[a.key] for a in actions]

    def _fill(self, actions: list[Action], leads: dict[str, int]) -> None:
        """Products and the note of new leads; a refusal here is logged, the lead stays the deal."""
        catalog = self.catalog_id()
        links, notes = [], []
        for action in actions:
            lead = leads[action.key]
            for n, line in enumerate(action.payload.get("products") or []):
                pid = str(line.get("product_id") or "")
                if pid.isdigit() and catalog is not None:
                    links.append((f"{action.key}#{n}", {
                        "entity_id": lead, "to_entity_id": int(pid), "to_entity_type": "catalog_elements",
                        "metadata": {"quantity": float(line.get("quantity") or 1), "catalog_id": catalog}}))
            text = "\n\n".join(x for x in (action.title, action.body.strip()) if x)
            tail = f"\n\n{marker(action.key)}"
            notes.append((action.key, {"entity_id": lead, "note_type": "common",
                                       "params": {"text": text[:NOTE_LIMIT - len(tail)] + tail}}))
        for path, bodies, key in (("/api/v4/leads/link", links, "links"), ("/api/v4/leads/notes", notes, "notes")):
            if not bodies:
                continue
            _done, refused = send_rounds(self.client, "POST", path, bodies, key=key,
                                         request_ids=lambda n, _b: str(n))
            for our, why in refused.items():
                log.warning("amocrm lead %s refused for %s: %s", path.rsplit("/", 1)[1], our, why)

    def find(self, keys: Iterable[str]) -> dict[str, CrmRef]:
        """The customers' leads carrying these keys (the oldest lead per key; later twins are closed)."""
        wanted = set(keys)
        customers = sorted({k.split(":")[1] for k in wanted if k.split(":")[1].isdigit()}, key=int)
        lead_ids: list[int] = []
        for n in range(0, len(customers), IDS_PER_READ):
            for rows in pages(self.client, f"/api/v4/{self.link_entity}", self.link_entity,
                              {"filter[id][]": customers[n:n + IDS_PER_READ], "with": "leads"}):
                for raw in rows:
                    lead_ids += [int(x["id"]) for x in (raw.get("_embedded") or {}).get("leads") or [] if x.get("id")]
        seen: dict[str, list[int]] = defaultdict(list)
        lead_ids = sorted(set(lead_ids))
        for n in range(0, len(lead_ids), IDS_PER_READ):
            self._collect({"filter[id][]": lead_ids[n:n + IDS_PER_READ]}, seen, wanted)
        return self._settle(seen)

    def all_markers(self) -> dict[str, CrmRef]:
        """Leads the integration's user created that carry a key (rebuilds a lost ledger)."""
        seen: dict[str, list[int]] = defaultdict(list)
        account = self.client.request("GET", "/api/v4/account") or {}
        creator = account.get("current_user_id") if isinstance(account, dict) else None
        self._collect({"filter[created_by][]": creator} if creator else {}, seen, None)
        return self._settle(seen)

    def _collect(self, params: dict, seen: dict[str, list[int]], wanted: set[str] | None) -> None:
        unkeyed = []
        for rows in pages(self.client, "/api/v4/leads", "leads", params):
            for raw in rows:
                self._pipelines[int(raw["id"])] = raw.get("pipeline_id")
                key = mapping.text(mapping.first_value(raw, KEY_CODE))
                if KEY_RE.match(key):
                    if wanted is None or key in wanted:
                        seen[key].append(int(raw["id"]))
                elif not key and TAG in {t.get("name") for t in (raw.get("_embedded") or {}).get("tags") or []}:
                    unkeyed.append(int(raw["id"]))
        # `install --uninstall` took the RS_ACTION_KEY values with the field; the lead's note still says
        for key, lead, _note, _text in self._notes(unkeyed):
            if wanted is None or key in wanted:
                seen[key].append(lead)

    def _notes(self, lead_ids: list[int]) -> list[tuple[str, int, int, str]]:
        """(key, lead, note id, text) of the `rs:<key>` markers in these leads' notes."""
        out = []
        for n in range(0, len(lead_ids), IDS_PER_READ):
            chunk = lead_ids[n:n + IDS_PER_READ]
            params = {"filter[entity_id][]": chunk, "filter[note_type][]": "common"}
            asked = set(chunk)  # never act on a note the filter should have left out
            for rows in pages(self.client, "/api/v4/leads/notes", "notes", params):
                for note in rows:
                    if int(note.get("entity_id") or 0) not in asked:
                        continue
                    text = str((note.get("params") or {}).get("text") or "")
                    out += [(key, int(note["entity_id"]), int(note["id"]), text) for key in MARKER_RE.findall(text)]
        return out

    def _settle(self, seen: dict[str, list[int]]) -> dict[str, CrmRef]:
        """API v4 cannot delete a lead: a twin is closed as lost, its key and note marker defused."""
        extra = {lead: key for key, ids in seen.items() for lead in sorted(set(ids))[1:]}
        if extra:
            field = self.ids.of("leads").get(KEY_CODE)
            bodies = [(str(lead), {"id": lead, "pipeline_id": self._pipelines.get(lead), "status_id": mapping.LOST_STATUS_ID,
                                   **({"custom_fields_values": [{"field_id": field, "values": [{"value": DEFUSED + key}]}]}
                                      if field else {})}) for lead, key in sorted(extra.items())]
            closed, _refused = send_rounds(self.client, "PATCH", "/api/v4/leads", bodies, key="leads",
                                           request_ids=lambda n, _b: str(n))
            notes = [(str(note), {"id": note, "note_type": "common", "params": {"text": text.replace("rs:", DEFUSED)}})
                     for _key, _lead, note, text in self._notes(sorted(extra))]
            if notes:
                send_rounds(self.client, "PATCH", "/api/v4/leads/notes", notes, key="notes",
                            request_ids=lambda n, _b: str(n))
            self.duplicates_removed += len(closed)
            log.warning("amocrm duplicate_leads_closed=%d", len(closed))
        return {key: CrmRef("deal", str(min(ids))) for key, ids in seen.items()}
