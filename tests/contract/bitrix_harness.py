"""The Bitrix24 portal behind the contract suite: ground truth through the portal's own REST API over
plain HTTP (crm.deal.list, tasks.task.list, ...), or the emulator's store where the API has no view."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime

import requests

from connector.bitrix import BitrixAdapter
from connector.model import Action
from connector.sync import SyncReport
from emulators.bitrix import OPT_OUT_FIELD, BitrixEmulator
from emulators.bitrix.protocol import PORTAL_TZ
from emulators.bitrix.writeback_methods import add_workflow_template
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
ROWS_PER_REQUEST = 2500  # a batch of 50 list pages of 50
PAGE = 50
WITHIN = 1.15


def pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


def keyset_pages(n: int) -> int:
    """Keyset pages that read n rows: the full ones, then the short (maybe empty) one that ends the list."""
    return n // 50 + 1


class BitrixHarness(HarnessBase):
    name = "bitrix"
    emulator_class = BitrixEmulator
    calls = Calls(task_write="tasks.task.add", deal_write="crm.deal.add", workflow_write="bizproc.workflow.start",
                  email_write="crm.activity.add")
    resends_lost_writes = True  # fast-bitrix24 resends any failed request, writes too
    tasks_link_purchases = True  # UF_CRM_TASK holds C_<contact> and D_<deal>
    stops_twin_automation = True  # a twin business process is terminated
    install_creates = 15  # 6 card fields and the refused channels on contacts and on companies, the SMS text on
    # deals (the deal's bonuses paid is the shop's)
    card_keeps_codes = True  # a card value carries its code ("Чемпионы [champions]"): README, card fields
    card_fields = ("UF_CRM_RS_SEGMENT", "UF_CRM_RS_RFM", "UF_CRM_RS_LIFECYCLE", "UF_CRM_RS_TIER",
                   "UF_CRM_RS_NEXT_PURCHASE")
    opt_out_field = OPT_OUT_FIELD
    new_deal_stage = "0:NEW"
    token_setting = "BITRIX_WEBHOOK_URL"
    gender_setting = "BITRIX_GENDER_FIELD"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.templates: dict[str, str] = {}  # workflow template id -> name

    def started(self) -> None:
        self.emulator.store.listeners.append(self._on_change)

    def _on_change(self, event: str, _entity_id: int) -> None:
        if event in ("ONCRMCONTACTUPDATE", "ONCRMCOMPANYUPDATE"):
            self.card_updates += 1

    # --- the product -------------------------------------------------------------------------------

    def adapter(self, **kw) -> BitrixAdapter:
        kw.setdefault("requests_per_second", 50.0)  # the emulator's bucket is off; the client need not wait
        kw.setdefault("request_pool", 250)
        return BitrixAdapter(self.emulator.webhook_url, **kw)

    def no_waits(self) -> dict:
        return {}  # fast-bitrix24 keeps its own retry pacing

    def automation(self, *templates: str) -> None:
        """An administrator saves these business process templates in the portal's designer."""
        for name in templates:
            self.templates[str(add_workflow_template(self.emulator.store, name))] = name

    def cli_env(self, tmp_path, *, write_batch: int | None = None, **extra) -> dict:
        env = {**self.base_env(tmp_path), "BITRIX_WEBHOOK_URL": self.emulator.webhook_url}
        if write_batch:
            env["BITRIX_WRITE_BATCH"] = str(write_batch)
        return {**env, **extra}

    def wrong_token_env(self, env: dict, secret: str) -> dict:
        return {**env, "BITRIX_WEBHOOK_URL": self.emulator.webhook_url.rstrip("/").rsplit("/", 1)[0] + f"/{secret}/"}

    # --- reading the portal over HTTP ------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None) -> dict:
        r = requests.post(self.emulator.webhook_url + method, json=params or {}, timeout=30)
        assert r.status_code == 200, (method, r.status_code, r.text[:300])
        return r.json()

    def listing(self, method: str, params: dict | None = None, key: str | None = None) -> list[dict]:
        """Every row of a list method, page by page (start = 0, 50, ...)."""
        rows, start = [], 0
        while True:
            answer = self.call(method, {**(params or {}), "start": start})
            rows += answer["result"][key] if key else answer["result"]
            if "next" not in answer:
                return rows
            start = answer["next"]

    def our_tasks(self, select: list[str]) -> list[dict]:
        return self.listing("tasks.task.list", {"select": ["ID", "DESCRIPTION", *select]}, key="tasks")

    def our_deals(self, select: list[str]) -> list[dict]:
        return self.listing("crm.deal.list", {"filter": {"ORIGINATOR_ID": "repeat-sales"},
                                              "select": ["ID", "ORIGIN_ID", *select]})

    def comment_keys(self, entity_type: str, entity_id: str) -> list[list[str]]:
        comments = self.listing("crm.timeline.comment.list", {"filter": {"ENTITY_ID": entity_id,
                                                                         "ENTITY_TYPE": entity_type}})
        return [MARKERS.findall(c.get("COMMENT") or "") for c in comments]

    # --- ground truth ------------------------------------------------------------------------------------

    def won_purchases(self) -> dict[str, TruePurchase]:
        store = self.emulator.store
        with store.lock:
            return {str(d.id): TruePurchase(
                customer_id=str(d.contact_ids[0]), day=datetime.fromtimestamp(d.closedate, PORTAL_TZ).date(),
                amount=float(d.opportunity), currency=d.currency,
                items=tuple(sorted((str(r.product_id), float(r.quantity)) for r in store.rows_of(d.id))),
                manager_id=str(d.assigned)) for d in store.won_deals() if d.contact_ids}

    def bonus_paid(self) -> dict[str, float]:
        """Won deal id -> bonuses paid on it (the deal's UF_CRM_RS_BONUS_PAID)."""
        store = self.emulator.store
        with store.lock:
            return {str(d.id): float(d.uf["UF_CRM_RS_BONUS_PAID"]) for d in store.won_deals()
                    if d.uf and d.uf.get("UF_CRM_RS_BONUS_PAID")}

    def card_bonus(self, ids: Iterable[str]) -> dict[str, str]:
        rows = self.listing("crm.contact.list", {"filter": {"@ID": list(ids)}, "select": ["ID", "UF_CRM_RS_BONUS"]})
        return {r["ID"]: r["UF_CRM_RS_BONUS"] or "" for r in rows}

    def true_customers(self) -> dict[str, TrueCustomer]:
        refs = self.emulator.store.customer_refs
        return {str(refs[c.id][1]): TrueCustomer(c.name, c.emails, c.phones, c.birthday, c.no_marketing)
                for c in self.emulator.shop.customers if c.kind == "person"}

    def true_products(self) -> dict[str, tuple[int | None, str]]:
        return {str(p.id): (p.cycle_days, p.category) for p in self.emulator.shop.products}

    def opted_out(self, customer) -> bool:
        return customer.fields.get(OPT_OUT_FIELD) == "Y"

    def held(self, customers: Iterable[str] = ()) -> dict[str, Counter]:
        """Objects per key, by kind: tasks (their text), repeat deals (ORIGIN_ID), e-mails sent from the portal's
        mailbox (their activity's ORIGIN_ID), contacts' timeline comments."""
        tasks = self.our_tasks([])
        deals = self.our_deals([])
        emails = self.listing("crm.activity.list", {"filter": {"ORIGINATOR_ID": "repeat-sales", "TYPE_ID": 4},
                                                    "select": ["ID", "ORIGIN_ID"]})
        return {"task": Counter(k for t in tasks for k in MARKERS.findall(t.get("description") or "")),
                "deal": Counter(d["ORIGIN_ID"] for d in deals),
                "email": Counter(k for e in emails for k in MARKERS.findall(e.get("ORIGIN_ID") or "")),
                "workflow": Counter(k for cid in sorted(set(customers)) for keys in self.comment_keys("contact", cid)
                                    for k in keys)}

    def touches(self) -> Counter:
        """Tasks and e-mails as the portal holds them, and the chat messages and SMS customers received
        (the emulator's outbox: a chat keeps no field of ours, only the card's comment does)."""
        held = self.held()
        sent = Counter(m["key"] for m in self.emulator.outbox.items() if m["channel"] in ("messenger", "sms"))
        return held["task"] + held["email"] + sent

    def tasks(self) -> dict[str, HeldTask]:
        out = {}
        for t in self.our_tasks(["TITLE", "UF_CRM_TASK", "DEADLINE", "RESPONSIBLE_ID"]):
            found = MARKERS.search(t.get("description") or "")
            if not found:
                continue  # managers' own tasks
            links = t["ufCrmTask"]
            out[found.group(1)] = HeldTask(
                customer_id=next((b[2:] for b in links if b.startswith("C_")), ""),
                purchase_ids=frozenset(b[2:] for b in links if b.startswith("D_")),
                due=date.fromisoformat(t["deadline"][:10]), responsible=str(t["responsibleId"]),
                text=f"{t['title']}\n{t['description']}")
        return out

    def repeat_deals(self) -> list[HeldDeal]:
        out = []
        for d in self.our_deals(["CONTACT_ID", "STAGE_ID", "CATEGORY_ID", "ASSIGNED_BY_ID", "IS_RETURN_CUSTOMER",
                                 "TITLE"]):
            rows = self.call("crm.deal.productrows.get", {"id": d["ID"]})["result"]
            out.append(HeldDeal(
                key=d["ORIGIN_ID"], customer_id=d["CONTACT_ID"], stage=f"{d['CATEGORY_ID']}:{d['STAGE_ID']}",
                responsible=d["ASSIGNED_BY_ID"], title=d["TITLE"],
                products=tuple(sorted((str(r["PRODUCT_ID"]), float(r["QUANTITY"])) for r in rows)),
                note_keys=tuple(tuple(k) for k in self.comment_keys("deal", d["ID"])),
                marked_ours=d["IS_RETURN_CUSTOMER"] == "Y"))
        return out

    def card_values(self, ids: Iterable[str]) -> dict[str, tuple[str, str, str, str]]:
        rows = self.listing("crm.contact.list", {"filter": {"@ID": list(ids)}, "select": ["ID", *self.card_fields]})
        return {r["ID"]: tuple(r[k] or "" for k in self.card_fields[:4]) for r in rows}

    def custom_fields(self) -> dict[tuple[str, str], str]:
        return {(entity, f["FIELD_NAME"]): f["USER_TYPE_ID"] for entity in ("contact", "company", "deal")
                for f in self.listing(f"crm.{entity}.userfield.list")}

    def automation_starts(self) -> Counter:
        """Running business processes per (template name, contact)."""
        running = self.listing("bizproc.workflow.instances", {"select": ["ID", "TEMPLATE_ID", "DOCUMENT_ID", "ENTITY"]})
        return Counter((self.templates.get(str(w["TEMPLATE_ID"]), "?"), w["DOCUMENT_ID"].removeprefix("CONTACT_"))
                       for w in running if w["ENTITY"] == "CCrmDocumentContact")

    def active_users(self) -> set[str]:
        return {u["ID"] for u in self.listing("user.get") if u["ACTIVE"] in (True, "Y")}

    def fired_managers(self) -> set[str]:
        return {u["ID"] for u in self.listing("user.get") if u["ACTIVE"] not in (True, "Y")}

    def prospects(self) -> tuple[set[str], set[str]]:
        """(buyers, prospects): contacts with a won deal, and the other contacts."""
        store = self.emulator.store
        buyers = {str(d.contact_ids[0]) for d in store.won_deals() if d.contact_ids}
        return buyers, {str(c) for c in store.contacts.rows} - buyers

    def genders(self) -> dict[str, str | None]:
        """Contact id -> the gender of that person in the shop the portal was seeded from."""
        emu, out = self.emulator, {}
        for c in emu.shop.customers:
            kind, ref = emu.store.customer_refs[c.id]
            if kind == "contact":
                out[str(ref)] = c.gender
            else:
                for person, contact_id in zip(c.contacts, emu.store.company_contacts[ref], strict=True):
                    out[str(contact_id)] = person.gender
        return out

    # --- request counts -----------------------------------------------------------------------------------

    def call_count(self, call: str) -> int:
        """Requests doing `call`, on their own or inside a batch, since the last reset."""
        stats = self.emulator.stats()
        return stats["requests"].get(call, 0) + stats["commands"].get(call, 0)

    def pull_request_bound(self, seen: Seen) -> int:
        """Each list costs ceil(n / 2,500); the first pages of every list share one request."""
        lists = [self.emulator.stats()["objects"]["contact"], len(seen.purchases), seen.line_items,
                 len(seen.products)]
        return min(sum(max(1, math.ceil(n / ROWS_PER_REQUEST)) for n in lists) + 1, len(seen.purchases) // 10)

    def list_requests(self, seen: Seen) -> dict[str, tuple[int, float]]:
        """Per list: (keyset pages used, most allowed). Every list is read by keyset (`start=-1`, `>ID`): a
        page per 50 rows and the short one that ends it, never a counted (`start >= 0`), offset or unordered
        call; rows come 250 deals per read, never per deal."""
        stats = self.emulator.stats()
        commands, lists = stats["commands"], stats["list_calls"]

        def used(method: str) -> int:  # pages served; references past a list's end resolve to nothing
            calls = lists.get(method, {})
            return calls.get("keyset", 0) - calls.get("unresolved", 0)

        deals = len(seen.purchases) + len(seen.removed)
        return {"customers": (used("crm.contact.list"), keyset_pages(len(seen.customers))),
                "purchases": (used("crm.deal.list"), keyset_pages(deals)),
                "line items": (used("crm.item.productrow.list"),
                               max(WITHIN * pages(seen.line_items), pages(seen.line_items) + math.ceil(deals / 250))),
                "counted, offset or unordered list calls": (
                    sum(c.get("counted", 0) + c.get("offset", 0) + c.get("unordered", 0) for c in lists.values()), 0),
                "rows per deal": (commands.get("crm.deal.productrows.get", 0) + commands.get("crm.productrow.list", 0),
                                  0)}

    def pull_lower_bound(self, seen: Seen) -> int:
        lists = [len(seen.customers), len(seen.purchases) + len(seen.removed), len(seen.products), seen.line_items]
        return sum(max(1, math.ceil(n / ROWS_PER_REQUEST)) for n in lists)

    def write_requests(self, report: SyncReport) -> tuple[int, int]:
        """A first run's requests besides the pull, and the fewest it needs: per chunk of 50 actions one batch per
        kind in it (tasks and e-mails go out apart); five reads before writing (tasks, repeat deals and e-mails
        already there, since the ledger is empty; whether `install` ran; the webhook's scopes and admin flag);
        the timelines of customers due an automation start, 50 a request; after writing, the tasks and the
        e-mails of the customers written to, 50 customers a request (a racing run's twins)."""
        def per_50(n: int) -> int:
            return -(-n // 50)

        plan = report.plan
        started = {a.customer_id for a in report.evaluation.plan if a.kind.value == "workflow"}
        chunks = sum(len({a.kind for a in plan[i:i + 50]}) for i in range(0, len(plan), 50))
        twins = sum(per_50(len({a.customer_id for a in plan if a.kind.value == kind})) for kind in ("task", "email"))
        need = chunks + 5 + per_50(len(started)) + twins
        return report.stats["requests"] - report.stats["pulled"]["requests"], need

    # --- what the portal's users do ------------------------------------------------------------------------

    def set_amount(self, purchase_id: str, amount: int) -> None:
        self.emulator.touch_purchase(int(purchase_id), OPPORTUNITY=f"{amount}.00")

    def mark_lost(self, purchase_id: str) -> None:
        self.emulator.touch_purchase(int(purchase_id), STAGE_ID="LOSE")

    def unlink_customer(self, purchase_id: str) -> None:
        self.emulator.touch_purchase(int(purchase_id), CONTACT_ID="0")

    def delete_customer(self, customer_id: str) -> None:
        self.call("crm.contact.delete", {"id": customer_id})  # its deals stay

    def delete_card_field(self, code: str) -> None:
        field = next(f for f in self.listing("crm.contact.userfield.list") if f["FIELD_NAME"] == code)
        self.call("crm.contact.userfield.delete", {"id": field["ID"]})

    def named_stage(self) -> tuple[str, str, str]:
        """A pipeline and stage a playbook may name, and how `HeldDeal.stage` says it."""
        return "Опт", "Подготовка документов", "1:C1:PREPARATION"

    def add_twins(self, task: Action, deal: Action) -> None:
        """What an older race left behind: a second task and a second deal with the same keys."""
        twin = next(t for t in self.our_tasks(["TITLE", "UF_CRM_TASK"]) if f"rs:{task.key}" in t["description"])
        self.call("tasks.task.add", {"fields": {"TITLE": twin["title"], "DESCRIPTION": twin["description"],
                                                "RESPONSIBLE_ID": 1, "UF_CRM_TASK": twin["ufCrmTask"],
                                                "TAGS": ["repeat-sales"]}})
        self.call("crm.deal.add", {"fields": {"TITLE": deal.title, "CONTACT_ID": deal.customer_id,
                                              "ORIGINATOR_ID": "repeat-sales", "ORIGIN_ID": deal.key}})

    def drop_gender_source(self) -> dict:
        """A portal whose cards carry no HONORIFIC; returns the settings the CLI runs with."""
        with self.emulator.store.lock:
            for contact in self.emulator.store.contacts.rows.values():
                contact.honorific = None
        return {}

    def gender_adapter_kw(self) -> dict:
        return {}  # HONORIFIC is a standard field: nothing to name
