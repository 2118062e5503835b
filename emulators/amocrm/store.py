"""The emulated account's data (ground truth): contacts, companies, leads, catalog, tags, tasks, notes.

Objects are kept close to their API v4 shape; `render_*` adds `_links`/`_embedded` for an answer.
Every write bumps the object's `updated_at` (Doc: amocrm.ru/developers/content/crm_platform/leads-api)
from an account clock that never runs behind the seeded history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WON_STATUS_ID = 142  # Doc: amocrm.ru/developers/content/crm_platform/leads_pipelines - in every pipeline
LOST_STATUS_ID = 143
ENTITY_TYPES = ("leads", "contacts", "companies")


@dataclass
class AccountStore:
    account_id: int = 29_000_001
    subdomain: str = "repeatsales"
    name: str = "Repeat Sales Demo"
    currency: str = "RUB"
    timezone: str = "Europe/Moscow"
    current_user_id: int = 1
    users: dict[int, dict] = field(default_factory=dict)
    pipelines: dict[int, dict] = field(default_factory=dict)
    custom_fields: dict[str, list[dict]] = field(default_factory=dict)  # "contacts" | "leads" | "catalog:<id>"
    leads: dict[int, dict] = field(default_factory=dict)
    contacts: dict[int, dict] = field(default_factory=dict)
    companies: dict[int, dict] = field(default_factory=dict)
    catalogs: dict[int, dict] = field(default_factory=dict)
    elements: dict[int, dict[int, dict]] = field(default_factory=dict)  # catalog id -> element id -> element
    links: dict[int, list[dict]] = field(default_factory=dict)  # lead id -> links to catalog elements
    tags: dict[str, dict[int, dict]] = field(default_factory=lambda: {t: {} for t in ENTITY_TYPES})
    tasks: dict[int, dict] = field(default_factory=dict)
    notes: dict[str, dict[int, dict]] = field(default_factory=lambda: {t: {} for t in ENTITY_TYPES})
    webhooks: dict[int, dict] = field(default_factory=dict)
    deleted_leads: dict[int, dict] = field(default_factory=dict)  # the recycle bin, restorable leads
    events: list[dict] = field(default_factory=list)  # the account's events list (GET /api/v4/events)
    customers: dict[int, dict] = field(default_factory=dict)  # Customers mode (emulators.amocrm.customers)
    transactions: dict[int, dict] = field(default_factory=dict)
    chats: dict[int, str] = field(default_factory=dict)  # contact id -> its messenger chat (emulators.amocrm.chats)
    outbox: object = None  # the emulator's emulators.kit.Outbox: what reached customers
    # Doc: amocrm.ru/developers/content/crm_platform/filters-api - filtering is alpha, on for some accounts only;
    # /api/v4/account?with=is_api_filter_enabled says which. Off: list filters are ignored.
    api_filter: bool = True
    # Doc: developers.kommo.com/reference/account-parameters - unavailable|disabled|segments|dynamic|periodicity
    customers_mode: str = "disabled"
    next_id: dict[str, int] = field(default_factory=dict)
    clock_offset: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    cache: dict[tuple, tuple[int, list[int]]] = field(default_factory=dict)  # list queries, per version
    lock: threading.RLock = field(default_factory=threading.RLock)
    on_event: Callable[[str, str, dict, dict | None], None] | None = None  # (entity, action, obj, before)

    # --- clock and ids -------------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def align_clock(self, latest_seeded: int) -> None:
        """Writes must land after everything seeded, or an incremental reader would never see them."""
        self.clock_offset = max(0, latest_seeded + 1 - int(time.time()))

    def new_id(self, kind: str) -> int:
        with self.lock:
            value = self.next_id.get(kind, 1)
            self.next_id[kind] = value + 1
            return value

    def reserve_ids(self, kind: str, above: int) -> None:
        self.next_id[kind] = max(self.next_id.get(kind, 1), above + 1)

    def touch(self, collection: str) -> None:
        self.versions[collection] = self.versions.get(collection, 0) + 1

    def collection(self, entity: str) -> dict[int, dict]:
        return {"leads": self.leads, "contacts": self.contacts, "companies": self.companies}[entity]

    # --- lookups ---------------------------------------------------------------------------------

    def status_ids(self) -> set[tuple[int, int]]:
        return {(p["id"], s["id"]) for p in self.pipelines.values() for s in p["statuses"]}

    def field_by_code(self, entity: str, code: str) -> dict | None:
        return next((f for f in self.custom_fields.get(entity, []) if f.get("code") == code), None)

    def field_by_id(self, entity: str, field_id: int) -> dict | None:
        return next((f for f in self.custom_fields.get(entity, []) if f["id"] == field_id), None)

    def tag_id(self, entity: str, name: str, *, create: bool = True) -> int | None:
        with self.lock:
            for tag in self.tags[entity].values():
                if tag["name"] == name:
                    return tag["id"]
            if not create:
                return None
            tag_id = self.new_id("tag")
            self.tags[entity][tag_id] = {"id": tag_id, "name": name, "color": None}
            return tag_id

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                "lead": len(self.leads), "contact": len(self.contacts), "company": len(self.companies),
                "product": sum(len(e) for c, e in self.elements.items() if self.catalogs[c]["type"] == "products"),
                "catalog_element": sum(len(e) for e in self.elements.values()),
                "product_row": sum(len(v) for v in self.links.values()),
                "task": len(self.tasks), "note": sum(len(n) for n in self.notes.values()),
                "tag": sum(len(t) for t in self.tags.values()), "webhook": len(self.webhooks),
                "pipeline": len(self.pipelines), "user": len(self.users),
                "salesbot_run": len(getattr(self, "salesbot_runs", ())),
            }

    # --- writes ----------------------------------------------------------------------------------

    def emit(self, entity: str, action: str, obj: dict, before: dict | None = None) -> None:
        if self.on_event is not None:
            self.on_event(entity, action, obj, before)

    def set_lead_fields(self, lead: dict, changes: dict) -> dict:
        """Apply a lead change as a user or the API would: status moves close the lead, updated_at moves."""
        before = {k: lead.get(k) for k in ("status_id", "pipeline_id", "responsible_user_id", "price", "name")}
        lead.update(changes)
        now = self.now()
        if lead["status_id"] != before["status_id"]:
            closed = lead["status_id"] in (WON_STATUS_ID, LOST_STATUS_ID)
            lead["closed_at"] = now if closed else None
        lead["updated_at"] = max(now, int(lead.get("updated_at") or 0) + 1)
        self.touch("leads")
        return before

    def delete_lead(self, lead_id: int) -> dict:
        """A user deletes a lead: it leaves the lists for the recycle bin, an event and a webhook say so.

        Doc: developers.kommo.com/reference/leads-list - `with=only_deleted` lists restorable deleted leads
        (id, modification date, is_deleted); amocrm.ru/developers/content/crm_platform/events-and-notes - the
        `lead_deleted` event; developers.kommo.com/docs/webhooks-general - `leads[delete]` with id, status, pipeline.
        """
        with self.lock:
            lead = self.leads.pop(int(lead_id))
            lead["is_deleted"] = True
            lead["updated_at"] = max(self.now(), int(lead.get("updated_at") or 0) + 1)
            self.deleted_leads[lead["id"]] = lead
            self.add_event("lead_deleted", "lead", lead["id"], lead["updated_at"])
            self.touch("leads")
            self.emit("leads", "delete", lead)
            return lead

    def add_event(self, kind: str, entity_type: str, entity_id: int, at: int) -> None:
        self.events.append({"id": f"01emu{len(self.events) + 1:021d}", "type": kind, "entity_id": entity_id,
                            "entity_type": entity_type, "created_by": self.current_user_id, "created_at": at,
                            "value_after": [], "value_before": [], "account_id": self.account_id})

    def is_admin(self) -> bool:
        """Whether the token's user (the integration's) is an account administrator."""
        user = self.users.get(self.current_user_id) or {}
        return bool((user.get("rights") or {}).get("is_admin", True))

    def apply_tags(self, entity: str, obj: dict, item: dict) -> None:
        """Doc: developers.kommo.com/reference/update-tags - `_embedded.tags` replaces the set (null clears
        it, unknown names are created); `tags_to_add`/`tags_to_delete` merge; with both, `_embedded.tags` wins."""
        embedded = item.get("_embedded") if isinstance(item.get("_embedded"), dict) else {}
        if "tags" in embedded:
            tags = embedded["tags"] or []
            obj["tags"] = [t for t in (self._tag_ref(entity, ref) for ref in tags) if t is not None]
            return
        for ref in item.get("tags_to_add") or []:
            tag_id = self._tag_ref(entity, ref)
            if tag_id is not None and tag_id not in obj["tags"]:
                obj["tags"].append(tag_id)
        for ref in item.get("tags_to_delete") or []:
            tag_id = self._tag_ref(entity, ref, create=False)
            if tag_id in obj["tags"]:
                obj["tags"].remove(tag_id)

    def _tag_ref(self, entity: str, ref: object, *, create: bool = True) -> int | None:
        if not isinstance(ref, dict):
            return None
        if ref.get("id") is not None:
            tag_id = int(ref["id"])
            return tag_id if tag_id in self.tags[entity] else None
        if ref.get("name"):
            return self.tag_id(entity, str(ref["name"]), create=create)
        return None
