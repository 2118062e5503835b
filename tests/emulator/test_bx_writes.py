"""Writes: contacts, deals, product rows, tasks, comments, user fields; DATE_MODIFY moves."""

from __future__ import annotations

import time
from datetime import datetime

from bx_support import ok, rest


def test_contact_add_update_with_multifields(emu):
    cid = ok(emu, "crm.contact.add", {"fields": {"NAME": "Ада", "LAST_NAME": "Лавлейс",
                                                  "PHONE": [{"VALUE": "+79990000001", "VALUE_TYPE": "WORK"}],
                                                  "BIRTHDATE": "1990-12-10", "UF_CRM_RS_NO_MARKETING": "Y"}})["result"]
    assert isinstance(cid, int)
    got = ok(emu, "crm.contact.get", {"id": cid})["result"]
    assert got["BIRTHDATE"] == "1990-12-10T03:00:00+03:00" and got["UF_CRM_RS_NO_MARKETING"] == "Y"
    phone_id = got["PHONE"][0]["ID"]
    assert ok(emu, "crm.contact.update", {"id": cid, "fields": {
        "PHONE": [{"ID": phone_id, "DELETE": "Y"}], "EMAIL": [{"VALUE": "ada@example.com"}]}})["result"] is True
    got = ok(emu, "crm.contact.get", {"id": cid})["result"]
    assert "PHONE" not in got and got["EMAIL"][0]["VALUE"] == "ada@example.com" and got["HAS_PHONE"] == "N"
    r = rest(emu, "crm.contact.update", {"id": 10**6, "fields": {"NAME": "x"}})
    assert r.status_code == 400


def test_writes_bump_date_modify_for_incremental_pulls(emu):
    before = time.time() - 1  # any day: DATE_MODIFY is the portal's real clock, not the plan's day
    since = datetime.fromtimestamp(before).astimezone().isoformat()
    assert ok(emu, "crm.deal.list", {"filter": {">DATE_MODIFY": since}})["total"] == 0
    emu.touch_purchase(7, COMMENTS="позвонить")
    ok(emu, "crm.deal.update", {"id": 8, "fields": {"TITLE": "Новый заголовок", "CATEGORY_ID": 1}})
    changed = ok(emu, "crm.deal.list", {"filter": {">DATE_MODIFY": since}, "select": ["ID", "CATEGORY_ID"]})
    assert sorted(int(r["ID"]) for r in changed["result"]) == [7, 8]
    assert emu.store.deals.rows[8].category_id == emu.shop.deals[7].pipeline  # pipeline not changed by update


def test_deal_add_stage_semantics_and_rows(emu):
    contact = emu.store.customer_refs[1][1] if emu.store.customer_refs[1][0] == "contact" else 1
    did = ok(emu, "crm.deal.add", {"fields": {"TITLE": "Повтор", "CONTACT_ID": contact, "STAGE_ID": "NEW",
                                              "CURRENCY_ID": "RUB"}})["result"]
    deal = ok(emu, "crm.deal.get", {"id": did})["result"]
    assert deal["STAGE_SEMANTIC_ID"] == "P" and deal["CLOSED"] == "N" and deal["CONTACT_ID"] == str(contact)
    assert ok(emu, "crm.deal.productrows.set", {"id": did, "rows": [
        {"PRODUCT_ID": 1, "PRICE": 100, "QUANTITY": 2}, {"PRODUCT_NAME": "Доставка", "PRICE": 300}]})["result"]
    rows = ok(emu, "crm.deal.productrows.get", {"id": did})["result"]
    assert [r["PRODUCT_NAME"] for r in rows] == [emu.shop.product(1).name, "Доставка"]
    assert ok(emu, "crm.deal.get", {"id": did})["result"]["OPPORTUNITY"] == "500.00"
    ok(emu, "crm.deal.update", {"id": did, "fields": {"STAGE_ID": "WON"}})
    won = ok(emu, "crm.deal.get", {"id": did})["result"]
    assert won["STAGE_SEMANTIC_ID"] == "S" and won["CLOSED"] == "Y"
    assert rest(emu, "crm.deal.add", {"fields": {"CURRENCY_ID": "XXX"}}).status_code == 400
    c1 = ok(emu, "crm.deal.add", {"fields": {"STAGE_ID": "C1:PREPARATION"}})["result"]
    assert ok(emu, "crm.deal.get", {"id": c1})["result"]["CATEGORY_ID"] == "1"


def test_emulator_helpers_act_like_a_user(emu):
    n = len(emu.store.deals)
    did = emu.add_deal(1, won=True, products=[(2, 1, 1890.0)], closed=datetime(2026, 6, 1, 12, 0))
    assert len(emu.store.deals) == n + 1
    deal = ok(emu, "crm.deal.get", {"id": did})["result"]
    assert deal["STAGE_ID"] == "WON" and deal["CLOSEDATE"].startswith("2026-06-01")
    assert deal["OPPORTUNITY"] == "1890.00"


def test_tasks_add_list_by_tag_and_binding(emu):
    task = ok(emu, "tasks.task.add", {"fields": {
        "TITLE": "Позвонить клиенту", "RESPONSIBLE_ID": 2, "DESCRIPTION": "rs:v1:C1:reorder:D9:1",
        "DEADLINE": "2026-07-01T10:00:00+03:00", "UF_CRM_TASK": ["C_1", "D_9"], "TAGS": ["repeat-sales"]}})
    created = task["result"]["task"]
    assert created["id"].isdigit() and created["responsibleId"] == "2" and created["title"] == "Позвонить клиенту"
    listed = ok(emu, "tasks.task.list", {"filter": {"TAG": "repeat-sales"},
                                         "select": ["ID", "TITLE", "DESCRIPTION", "TAGS", "UF_CRM_TASK", "DEADLINE"]})
    assert listed["total"] == 1
    item = listed["result"]["tasks"][0]
    assert item["ufCrmTask"] == ["C_1", "D_9"] and [t["title"] for t in item["tags"].values()] == ["repeat-sales"]
    assert item["deadline"] == "2026-07-01T10:00:00+03:00"
    by_binding = ok(emu, "tasks.task.list", {"filter": {"UF_CRM_TASK": "D_9"}, "select": ["ID"]})
    assert [t["id"] for t in by_binding["result"]["tasks"]] == [created["id"]]
    got = ok(emu, "tasks.task.get", {"taskId": created["id"], "select": ["ID", "DESCRIPTION"]})["result"]
    assert got["task"]["description"] == "rs:v1:C1:reorder:D9:1"
    assert ok(emu, "tasks.task.delete", {"taskId": created["id"]})["result"] == {"task": True}
    assert ok(emu, "tasks.task.get", {"taskId": created["id"]})["result"] == []
    r = rest(emu, "tasks.task.add", {"fields": {"RESPONSIBLE_ID": 2}})
    assert r.status_code == 400 and r.json()["error"] == "ERROR_CORE"


def test_task_list_pages_newest_first_by_default(emu):
    for i in range(60):
        ok(emu, "tasks.task.add", {"fields": {"TITLE": f"t{i}", "RESPONSIBLE_ID": 1, "TAGS": ["bulk"]}})
    page = ok(emu, "tasks.task.list", {"filter": {"TAG": "bulk"}, "select": ["ID"]})
    ids = [int(t["id"]) for t in page["result"]["tasks"]]
    assert page["total"] == 60 and page["next"] == 50 and ids == sorted(ids, reverse=True)


def test_timeline_comments_take_lowercase_fields_only(emu):
    cid = ok(emu, "crm.timeline.comment.add", {"fields": {"ENTITY_ID": 3, "ENTITY_TYPE": "deal",
                                                          "COMMENT": "rs:v1:x"}})["result"]
    assert isinstance(cid, int)
    assert rest(emu, "crm.timeline.comment.add", {"FIELDS": {"ENTITY_ID": 3, "ENTITY_TYPE": "deal",
                                                             "COMMENT": "x"}}).status_code == 400
    listed = ok(emu, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": 3, "ENTITY_TYPE": "deal"}})
    assert [c["COMMENT"] for c in listed["result"]] == ["rs:v1:x"] and listed["total"] == 1
    assert rest(emu, "crm.timeline.comment.list", {"filter": {"ENTITY_ID": 3}}).status_code == 400


def test_userfields_add_and_list(emu):
    uid = ok(emu, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "RS_SEGMENT", "USER_TYPE_ID": "string",
                                                        "LABEL": "Сегмент"}})["result"]
    assert isinstance(uid, int)
    names = [f["FIELD_NAME"] for f in ok(emu, "crm.deal.userfield.list")["result"]]
    assert names == ["UF_CRM_RS_BONUS_PAID", "UF_CRM_RS_SEGMENT"]  # the shop's own field for bonuses paid, then ours
    again = rest(emu, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "RS_SEGMENT", "USER_TYPE_ID": "string"}})
    assert again.status_code == 400
    missing = rest(emu, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "X"}})
    assert missing.json() == {"error": "", "error_description": "The 'USER_TYPE_ID' field is not found."}
    ok(emu, "crm.deal.update", {"id": 2, "fields": {"UF_CRM_RS_SEGMENT": "vip"}})
    assert ok(emu, "crm.deal.list", {"filter": {"UF_CRM_RS_SEGMENT": "vip"}, "select": ["ID", "UF_*"]})["result"] == [
        {"ID": "2", "UF_CRM_RS_BONUS_PAID": None, "UF_CRM_RS_SEGMENT": "vip"}]
    contact_fields = [f["FIELD_NAME"] for f in ok(emu, "crm.contact.userfield.list")["result"]]
    assert "UF_CRM_RS_NO_MARKETING" in contact_fields
    assert "UF_CRM_RS_SEGMENT" in ok(emu, "crm.deal.fields")["result"]


def test_stats_count_requests_and_objects(emu):
    emu.reset_stats()
    ok(emu, "crm.deal.list", {"select": ["ID"]})
    ok(emu, "crm.deal.list", {"select": ["ID"], "start": 50})
    ok(emu, "tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 1}})
    stats = emu.stats()
    assert stats["requests_total"] == 3 and stats["requests"] == {"crm.deal.list": 2, "tasks.task.add": 1}
    assert stats["objects"]["task"] == len(emu.store.tasks) and stats["objects"]["deal"] == len(emu.shop.deals)
    assert {"contact", "company", "deal", "product", "product_row", "task", "comment", "userfield"} <= set(
        stats["objects"])
