"""Delivering account webhooks: urlencoded PHP-bracket forms POSTed to each subscribed destination.

Doc: developers.kommo.com/docs/webhooks-general and amocrm.ru/developers/content/crm_platform/webhooks-format -
`leads[status][0][id]=...&account[subdomain]=...`, every value a string, v2-era field names; companies
arrive under `contacts` with `type=company`, tasks under `task`. The receiver has 2 s to answer
100-299; a hook with more than 100 bad answers in 2 hours whose latest answer is bad is disabled.
No signature: account webhooks are unsigned.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime
from functools import partial
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from emulators.amocrm.store import AccountStore
from emulators.kit.delivery import FormSender
from emulators.kit.forms import php_pairs

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
DISABLE_AFTER_FAILURES = 100
FAILURE_WINDOW_SECONDS = 2 * 3600
TASK_ELEMENT_TYPES = {"contacts": 1, "leads": 2, "companies": 3, "customers": 12}


def _custom(values: list | None) -> list[dict]:
    out = []
    for cf in values or []:
        item = {"id": cf["field_id"], "name": cf["field_name"]}
        if cf.get("field_code"):
            item["code"] = cf["field_code"]
        if cf["field_type"] in ("date", "birthday", "date_time"):  # Doc: K-wh - date values arrive bare
            item["values"] = [v.get("value") for v in cf["values"]]
        else:
            item["values"] = [{k: v for k, v in (("value", x.get("value")), ("enum", x.get("enum_id"))) if v is not None}
                              for x in cf["values"]]
        out.append(item)
    return out


def lead_fields(store: AccountStore, lead: dict, before: dict | None) -> dict:
    body = {"id": lead["id"], "name": lead["name"], "status_id": lead["status_id"], "price": lead["price"],
            "responsible_user_id": lead["responsible_user_id"], "last_modified": lead["updated_at"],
            "modified_user_id": lead.get("updated_by", 0), "created_user_id": lead.get("created_by", 0),
            "date_create": lead["created_at"], "pipeline_id": lead["pipeline_id"], "account_id": store.account_id,
            "created_at": lead["created_at"], "updated_at": lead["updated_at"]}
    if before is not None:
        body["old_status_id"] = before.get("status_id")
        if before.get("pipeline_id") != lead["pipeline_id"]:
            body["old_pipeline_id"] = before.get("pipeline_id")
        if before.get("responsible_user_id") != lead["responsible_user_id"]:
            body["old_responsible_user_id"] = before.get("responsible_user_id")
    tags = [{"id": t, "name": store.tags["leads"][t]["name"]} for t in lead.get("tags", []) if t in store.tags["leads"]]
    if tags:
        body["tags"] = tags
    if lead.get("custom_fields_values"):
        body["custom_fields"] = _custom(lead["custom_fields_values"])
    return body


def events_for(store: AccountStore, entity: str, action: str, obj: dict, before: dict | None) -> list[tuple[str, str, str, dict]]:
    """(setting code, form entity key, form action, fields) for one change."""
    if entity == "leads" and action == "delete":  # Doc: K-wh - a deleted lead carries only these three
        return [("delete_lead", "leads", "delete", {"id": obj["id"], "status_id": obj["status_id"],
                                                    "pipeline_id": obj["pipeline_id"]})]
    if entity == "leads":
        fields = lead_fields(store, obj, before)
        out = [(f"{action}_lead", "leads", action, fields)]
        if before is not None and before.get("status_id") != obj["status_id"]:
            out.append(("status_lead", "leads", "status", fields))
        if before is not None and before.get("responsible_user_id") != obj["responsible_user_id"]:
            out.append(("responsible_lead", "leads", "responsible", fields))
        return out
    if entity in ("contacts", "companies"):
        kind = "company" if entity == "companies" else "contact"
        fields = {"id": obj["id"], "name": obj["name"], "responsible_user_id": obj["responsible_user_id"],
                  "date_create": obj["created_at"], "last_modified": obj["updated_at"], "created_at": obj["created_at"],
                  "updated_at": obj["updated_at"], "account_id": store.account_id, "type": kind}
        if obj.get("custom_fields_values"):
            fields["custom_fields"] = _custom(obj["custom_fields_values"])
        return [(f"{action}_{kind}", "contacts", action, fields)]
    if entity == "task":
        tz = ZoneInfo(store.timezone)
        till = datetime.fromtimestamp(obj["complete_till"], tz).strftime("%Y-%m-%d %H:%M:%S")
        fields = {"id": obj["id"], "element_id": obj.get("entity_id") or 0,
                  "element_type": TASK_ELEMENT_TYPES.get(obj.get("entity_type") or "", 0),
                  "task_type": obj["task_type_id"], "status": 1 if obj["is_completed"] else 0, "text": obj["text"],
                  "complete_till": till, "complete_before": obj["complete_till"],
                  "responsible_user_id": obj["responsible_user_id"], "last_modified": obj["updated_at"],
                  "created_user_id": obj["created_by"], "date_create": obj["created_at"], "account_id": store.account_id}
        return [(f"{action}_task", "task", action, fields)]
    return []


class WebhookSender:
    """One worker thread, so deliveries keep their order; what was sent is kept for tests."""

    def __init__(self, store: AccountStore, base_url: str) -> None:
        self.store, self.base_url = store, base_url
        self.sender = FormSender("amocrm-emulator-webhooks", timeout=TIMEOUT_SECONDS, user_agent="amoCRM-Webhooks/3.0")
        self.delivered: list[dict] = []
        self.history: dict[int, deque[tuple[float, bool]]] = {}

    def on_event(self, entity: str, action: str, obj: dict, before: dict | None) -> None:
        store = self.store
        for setting, key, form_action, fields in events_for(store, entity, action, obj, before):
            for hook in list(store.webhooks.values()):
                if hook["disabled"] or setting not in hook["settings"]:
                    continue
                pairs = php_pairs(fields, f"{key}[{form_action}][0]")
                pairs += [("account[subdomain]", store.subdomain), ("account[id]", str(store.account_id)),
                          ("account[_links][self]", self.base_url)]
                body = urlencode(pairs).encode()
                self.sender.enqueue(hook["destination"], body,
                                    partial(self._delivered, hook["id"], hook["destination"], body))

    def _delivered(self, hook_id: int, destination: str, body: bytes, status: int) -> None:
        self.delivered.append({"hook_id": hook_id, "destination": destination, "status": status,
                               "body": body.decode()})
        self._record(hook_id, 100 <= status <= 299)

    def _record(self, hook_id: int, ok: bool) -> None:
        now = time.time()
        marks = self.history.setdefault(hook_id, deque())
        marks.append((now, ok))
        while marks and now - marks[0][0] > FAILURE_WINDOW_SECONDS:
            marks.popleft()
        failures = sum(1 for _, good in marks if not good)
        hook = self.store.webhooks.get(hook_id)
        if hook is not None and not ok and failures > DISABLE_AFTER_FAILURES:
            hook["disabled"] = True  # Doc: K-wh - > 100 bad answers in 2 h, the latest bad

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.sender.wait_idle(timeout)

    def stop(self) -> None:
        self.sender.stop()
