"""The amoCRM account behind the contract suite: ground truth through the account's API v4 over plain
HTTP, or the emulator's store where the API has no view (Salesbot runs)."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from datetime import date

import requests

from connector.amocrm import AmoAdapter
from connector.model import Action
from connector.sync import SyncReport
from emulators.amocrm import AmoEmulator
from emulators.amocrm.routes_writeback import SALESBOTS, salesbot_runs
from emulators.amocrm.seed import GENDER_FIELD_ID
from emulators.amocrm.store import LOST_STATUS_ID, WON_STATUS_ID
from tests.contract.harness import (
    MARKER,
    Calls,
    HarnessBase,
    HeldDeal,
    HeldTask,
    Seen,
    TrueCustomer,
    TruePurchase,
)

MARKERS = re.compile(MARKER)
PAGE = 250  # Doc: amocrm.ru/developers/content/crm_platform/api-reference - limit is at most 250
ACCOUNT_REQUESTS = 4  # /account, /catalogs, the catalog's elements, /leads/pipelines (full pulls only)
FAST = 1000.0  # requests per second: the emulator's limit is off
BOT_IDS = {name: bot for bot, name in SALESBOTS.items()}
MOSCOW = 3 * 3600


def value(raw: dict, code: str):
    for cf in raw.get("custom_fields_values") or []:
        if cf["field_code"] == code:
            return cf["values"][0]["value"]
    return None


class AmoHarness(HarnessBase):
    name = "amocrm"
    emulator_class = AmoEmulator
    calls = Calls(task_write="POST /api/v4/tasks", deal_write="POST /api/v4/leads",
                  workflow_write="POST /api/v2/salesbot/run")
    resends_lost_writes = False  # writes are never resent blind: the run stops and markers settle it
    tasks_link_purchases = False  # a task sits on one card: the customer's
    stops_twin_automation = False  # a Salesbot once started runs; only its twin note is defused
    install_creates = 16  # 6 card fields on contacts and on companies, the lead's action key, 3 Salesbot text fields
    card_keeps_codes = False  # a card value carries its code ("Чемпионы [champions]"): README, card fields
    card_fields = ("RS_SEGMENT", "RS_RFM", "RS_LIFECYCLE", "RS_TIER", "RS_NEXT_PURCHASE")
    opt_out_field = "NO_MARKETING"
    token_setting = "AMOCRM_ACCESS_TOKEN"
    gender_setting = "AMOCRM_GENDER_FIELD"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.salesbots: dict[str, int] = {}

    @property
    def new_deal_stage(self) -> str:
        main = next(p for p in self.get("/api/v4/leads/pipelines") if p["is_main"])
        first_open = next(s["id"] for s in sorted(main["_embedded"]["statuses"], key=lambda s: s["sort"])
                          if s["type"] == 0)
        return f"{main['id']}:{first_open}"

    def started(self) -> None:
        store, forward = self.emulator.store, self.emulator.store.on_event

        def on_event(entity: str, action: str, obj: dict, before: dict | None) -> None:
            if entity in ("contacts", "companies") and action == "update":
                self.card_updates += 1
            if forward is not None:
                forward(entity, action, obj, before)

        store.on_event = on_event

    # --- the product -------------------------------------------------------------------------------

    def adapter(self, **kw) -> AmoAdapter:
        kw.setdefault("requests_per_second", FAST)
        kw.setdefault("salesbots", self.salesbots)
        return AmoAdapter(self.emulator.base_url, access_token=self.emulator.access_token, **kw)

    def no_waits(self) -> dict:
        return {"sleep": lambda _seconds: None}  # retries honour the server's wait without waiting

    def automation(self, *templates: str) -> None:
        """Salesbots built in the account's UI, named to the adapter (AMOCRM_SALESBOTS)."""
        self.salesbots.update({name: BOT_IDS[name] for name in templates})

    def cli_env(self, tmp_path, *, write_batch: int | None = None, **extra) -> dict:
        env = {**self.base_env(tmp_path), "AMOCRM_BASE_URL": self.emulator.base_url,
               "AMOCRM_ACCESS_TOKEN": self.emulator.access_token}
        if write_batch:
            env["AMOCRM_WRITE_BATCH"] = str(write_batch)
        if self.salesbots:
            env["AMOCRM_SALESBOTS"] = ",".join(f"{k}={v}" for k, v in self.salesbots.items())
        return {**env, **extra}

    def wrong_token_env(self, env: dict, secret: str) -> dict:
        return {**env, "AMOCRM_ACCESS_TOKEN": secret}

    # --- reading the account over HTTP -------------------------------------------------------------------

    def get(self, path: str, params: dict | None = None) -> list[dict]:
        return listing(self.emulator, path, params)

    def post(self, path: str, body: list[dict]) -> None:
        r = requests.post(self.emulator.base_url + path, json=body, timeout=10,
                          headers={"Authorization": f"Bearer {self.emulator.access_token}"})
        assert r.status_code == 200, r.text[:300]

    def our_leads(self, **params) -> list[dict]:
        """Open leads the plugin made: tagged repeat-sales, not closed as lost."""
        leads = self.get("/api/v4/leads", {"filter[created_by][]": self.emulator.store.current_user_id, **params})
        return [x for x in leads if x["status_id"] != LOST_STATUS_ID
                and "repeat-sales" in [t["name"] for t in x["_embedded"]["tags"]]]

    def notes_keys(self, entity: str, ids: Iterable) -> dict[int, list[list[str]]]:
        ids = sorted(set(ids), key=int)
        out: dict[int, list[list[str]]] = {int(i): [] for i in ids}
        for n in range(0, len(ids), 50):
            for note in self.get(f"/api/v4/{entity}/notes", {"filter[entity_id][]": ids[n:n + 50]}):
                out[note["entity_id"]].append(MARKERS.findall(note["params"].get("text") or ""))
        return out

    # --- ground truth ------------------------------------------------------------------------------------

    def won_purchases(self) -> dict[str, TruePurchase]:
        store, out = self.emulator.store, {}
        for deal in self.emulator.shop.deals:
            if not deal.won:
                continue
            lead = store.leads[deal.id]
            main = next(c for c, is_main in lead["contacts"] if is_main)
            quantities = Counter()
            for line in deal.lines:  # one link per product: two lines of one product add up
                quantities[str(line.product_id)] += line.quantity
            out[str(deal.id)] = TruePurchase(str(main), deal.closed.date(), float(lead["price"]), deal.currency,
                                             tuple(sorted(quantities.items())), str(lead["responsible_user_id"]))
        return out

    def bonus_paid(self) -> dict[str, float]:
        """Won lead id -> bonuses paid on it (the lead's RS_BONUS_PAID)."""
        out = {}
        for deal in self.emulator.shop.deals:
            paid = value(self.emulator.store.leads[deal.id], "RS_BONUS_PAID") if deal.won else None
            if paid:
                out[str(deal.id)] = float(paid)
        return out

    def card_bonus(self, ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(ids), key=int)
        cards = [c for n in range(0, len(ids), 50) for c in self.get("/api/v4/contacts", {"filter[id][]": ids[n:n + 50]})]
        return {str(c["id"]): str(value(c, "RS_BONUS") or "") for c in cards}

    def true_customers(self) -> dict[str, TrueCustomer]:
        return {str(c.id): TrueCustomer(c.name, c.emails, c.phones, c.birthday, c.no_marketing)
                for c in self.emulator.shop.customers if c.kind == "person"}

    def true_products(self) -> dict[str, tuple[int | None, str]]:
        return {str(p.id): (p.cycle_days, p.category) for p in self.emulator.shop.products}

    def opted_out(self, customer) -> bool:
        return customer.fields.get("no_marketing") == "1"

    def held(self, customers: Iterable[str] = ()) -> dict[str, Counter]:
        """Open objects per key, by kind: open tasks, open leads (RS_ACTION_KEY or their note), contact notes.
        API v4 deletes neither tasks nor leads: a duplicate is closed with its marker defused."""
        tasks = [t for t in self.get("/api/v4/tasks") if not t["is_completed"]]
        leads = self.our_leads()
        lead_notes = self.notes_keys("leads", [x["id"] for x in leads]) if leads else {}
        keys_of_leads = {i: k for i, notes in lead_notes.items() for keys in notes for k in keys}
        notes = self.notes_keys("contacts", customers) if customers else {}
        return {"task": Counter(k for t in tasks for k in MARKERS.findall(t["text"])),
                "deal": Counter(value(x, "RS_ACTION_KEY") or keys_of_leads.get(x["id"]) for x in leads),
                "workflow": Counter(k for n in notes.values() for keys in n for k in keys),
                "email": Counter()}  # no e-mail channel on amoCRM yet: a step's e-mail is a task

    def tasks(self) -> dict[str, HeldTask]:
        out = {}
        for t in self.get("/api/v4/tasks"):
            found = MARKERS.search(t["text"])
            if not found or t["is_completed"]:
                continue
            assert t["entity_type"] == "contacts", "a task sits on the customer's card"
            due = time.strftime("%Y-%m-%d", time.gmtime(t["complete_till"] + MOSCOW))
            out[found.group(1)] = HeldTask(customer_id=str(t["entity_id"]), purchase_ids=frozenset(),
                                           due=date.fromisoformat(due), responsible=str(t["responsible_user_id"]),
                                           text=t["text"])
        return out

    def repeat_deals(self) -> list[HeldDeal]:
        leads = [x for x in self.get("/api/v4/leads", {"with": "catalog_elements,contacts"}) if value(x, "RS_ACTION_KEY")]
        notes = self.notes_keys("leads", [x["id"] for x in leads]) if leads else {}
        return [HeldDeal(
            key=value(x, "RS_ACTION_KEY"), customer_id=",".join(str(c["id"]) for c in x["_embedded"]["contacts"]),
            stage=f"{x['pipeline_id']}:{x['status_id']}", responsible=str(x["responsible_user_id"]), title=x["name"],
            products=tuple(sorted((str(e["id"]), float(e["metadata"]["quantity"]))
                                  for e in x["_embedded"]["catalog_elements"])),
            note_keys=tuple(tuple(k) for k in notes[x["id"]]),
            marked_ours="repeat-sales" in [t["name"] for t in x["_embedded"]["tags"]]) for x in leads]

    def card_values(self, ids: Iterable[str]) -> dict[str, tuple[str, str, str, str]]:
        ids = sorted(set(ids), key=int)
        cards = [c for n in range(0, len(ids), 50) for c in self.get("/api/v4/contacts", {"filter[id][]": ids[n:n + 50]})]
        return {str(c["id"]): tuple(value(c, code) or "" for code in self.card_fields[:4]) for c in cards}

    def custom_fields(self) -> dict[tuple[str, str], str]:
        return {(entity.rstrip("s").replace("companie", "company"), f["code"]): f["type"]
                for entity in ("contacts", "companies", "leads") for f in self.get(f"/api/v4/{entity}/custom_fields")}

    def automation_starts(self) -> Counter:
        """Salesbot runs per (bot name, contact): the account keeps no API list of them."""
        with self.emulator.store.lock:
            return Counter((SALESBOTS[r["bot_id"]], str(r["entity_id"])) for r in salesbot_runs(self.emulator.store)
                           if r["entity_type"] == "contacts")

    def active_users(self) -> set[str]:
        return {str(u["id"]) for u in self.get("/api/v4/users") if u["rights"]["is_active"]}

    def fired_managers(self) -> set[str]:
        return {str(u["id"]) for u in self.get("/api/v4/users") if not u["rights"]["is_active"]}

    def prospects(self) -> tuple[set[str], set[str]]:
        store = self.emulator.store
        buyers = {str(contact) for lead in store.leads.values() if lead["status_id"] == WON_STATUS_ID
                  for contact, main in lead["contacts"] if main}
        return buyers, {str(c) for c in store.contacts} - buyers

    def genders(self) -> dict[str, str | None]:
        emu, out = self.emulator, {}
        for c in emu.shop.customers:
            if c.kind == "company":
                for person, contact_id in zip(c.contacts, emu.store.companies[c.id]["contacts"], strict=True):
                    out[str(contact_id)] = person.gender
            else:
                out[str(c.id)] = c.gender
        return out

    # --- request counts -----------------------------------------------------------------------------------

    def call_count(self, call: str) -> int:
        return self.emulator.stats()["requests"].get(call, 0)

    def pull_request_bound(self, seen: Seen) -> int:
        """ceil(n / 250) per list, plus the account (time zone, currency), the pipelines and the catalogs,
        and a part page per further pipeline: won leads are read one pipeline at a time (Doc:
        developers.kommo.com/reference/leads-list - one stage in one pipeline a request)."""
        return self.pull_lower_bound(seen) + 3 + len(self.emulator.store.pipelines) - 1

    def pull_lower_bound(self, seen: Seen) -> int:
        lists = [len(seen.customers), len(seen.purchases) + len(seen.removed), len(seen.products)]
        return sum(max(1, math.ceil(n / PAGE)) for n in lists)

    def list_requests(self, seen: Seen) -> dict[str, tuple[int, float]]:
        """Per list: (pages read, most allowed); a list that fills its last page ends with a 204."""
        requests_ = self.emulator.stats()["requests"]
        deals = len(seen.purchases) + len(seen.removed)
        return {"customers": (requests_.get("GET /api/v4/contacts", 0), math.ceil(len(seen.customers) / PAGE) + 1),
                "purchases": (requests_["GET /api/v4/leads"], math.ceil(deals / PAGE) + 1)}

    def write_requests(self, report: SyncReport) -> tuple[int, int]:
        """Task writes of a first run: one request per 50 tasks."""
        return self.call_count(self.calls.task_write), -(-len(report.plan) // 50)

    # --- what the account's users do -----------------------------------------------------------------------

    def set_amount(self, purchase_id: str, amount: int) -> None:
        self.emulator.touch_purchase(int(purchase_id), price=amount)

    def mark_lost(self, purchase_id: str) -> None:
        self.emulator.touch_purchase(int(purchase_id), status_id=LOST_STATUS_ID)

    def unlink_customer(self, purchase_id: str) -> None:
        self.emulator.touch_purchase(int(purchase_id), contacts=[])

    def delete_customer(self, customer_id: str) -> None:
        store = self.emulator.store
        with store.lock:  # a manager deletes the contact in the UI (API v4 has no contact DELETE)
            del store.contacts[int(customer_id)]
            store.touch("contacts")

    def delete_card_field(self, code: str) -> None:
        field = next(f for f in self.get("/api/v4/contacts/custom_fields") if f["code"] == code)
        r = requests.delete(f"{self.emulator.base_url}/api/v4/contacts/custom_fields/{field['id']}", timeout=10,
                            headers={"Authorization": f"Bearer {self.emulator.access_token}"})
        assert r.status_code == 204, r.text[:300]

    def named_stage(self) -> tuple[str, str, str]:
        """A pipeline and stage a playbook may name, and how `HeldDeal.stage` says it."""
        pipeline = next(p for p in self.get("/api/v4/leads/pipelines") if p["name"] == "Опт")
        status = next(s for s in pipeline["_embedded"]["statuses"] if s["name"] == "Переговоры")
        return "Опт", "Переговоры", f"{pipeline['id']}:{status['id']}"

    def add_twins(self, task: Action, deal: Action) -> None:
        """What an older race left behind: a second task and a second lead with the same keys."""
        twin = next(t for t in self.emulator.store.tasks.values() if t["text"].endswith(f"rs:{task.key}"))
        lead = next(x for x in self.get("/api/v4/leads", {"with": "contacts"}) if value(x, "RS_ACTION_KEY") == deal.key)
        self.post("/api/v4/tasks", [{k: twin[k] for k in ("text", "complete_till", "entity_id", "entity_type")}])
        self.post("/api/v4/leads", [{"name": lead["name"], "custom_fields_values": lead["custom_fields_values"],
                                     "_embedded": {"contacts": [{"id": int(deal.customer_id)}],
                                                   "tags": [{"name": "repeat-sales"}]}}])

    def drop_gender_source(self) -> dict:
        """amoCRM has no gender of its own: without AMOCRM_GENDER_FIELD there is none."""
        return {}

    def gender_adapter_kw(self) -> dict:
        return {"gender_field": str(GENDER_FIELD_ID)}  # AMOCRM_GENDER_FIELD


def listing(emu, path: str, params: dict | None = None) -> list[dict]:
    """Every item of an amoCRM list, page by page, as a script with the account's token would read it."""
    headers = {"Authorization": f"Bearer {emu.access_token}"}
    rows, page = [], 1
    while True:
        r = requests.get(emu.base_url + path, params={**(params or {}), "page": page, "limit": PAGE},
                         headers=headers, timeout=30)
        if r.status_code == 204:
            return rows
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        rows += next(iter(body["_embedded"].values()))
        if "next" not in body["_links"]:
            return rows
        page += 1
