"""Bitrix24 messenger and SMS touches (issue 16) over HTTP against the emulator: a message goes into the
customer's open-line chat where there is one, the others move on with the reason in the summary, and the
outbox (`GET /_emulator/outbox`) is the witness of what customers received."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import requests

from emulators.bitrix import BitrixEmulator
from tests.conftest import ROOT, TODAY, run_cli
from tests.test_delivery_channels import SLUGS, env_for, outbox, sync_json, touches_due

SCOPES = "crm,task,user,bizproc,imopenlines"  # the webhook README asks for, open lines ticked


def chats_of(emu) -> set[str]:
    with emu.store.lock:
        return {str(entity_id) for (_kind, entity_id), chats in emu.store.chats.items() if chats}


def clean(message: dict) -> bool:
    words = (message["subject"] + " " + message["text"]).casefold()
    return "{" not in words and "rs:" not in words and not any(s in words.split() for s in SLUGS)


@pytest.fixture
def shop():
    with BitrixEmulator(customers=200, seed=7, today=TODAY, chat_share=0.5, scopes=SCOPES) as emu:
        yield emu


def test_messenger_steps_reach_customers_with_a_chat_once_and_the_others_move_on_with_the_reason(shop, tmp_path):
    env = env_for(shop, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    report = sync_json(env)
    sent = outbox(shop)
    messages = [m for m in sent if m["channel"] == "messenger"]
    with_chat = chats_of(shop)
    assert messages and all(m["contact_id"] in with_chat for m in messages)  # only into an existing chat
    assert all(clean(m) for m in sent)
    planned = {e["key"]: e for e in touches_due(report)}
    assert {m["key"] for m in messages} == {k for k, e in planned.items() if e["kind"] == "message"}
    assert report["stats"]["written_by_kind"]["message"] == len(messages)
    first_choice = [e for e in planned.values() if e["channel"] == "messenger"]
    no_chat = [e for e in first_choice if e["customer_id"] not in with_chat]
    assert no_chat and all(e["kind"] != "message" for e in no_chat)  # moved on: e-mail, SMS or a task
    assert report["stats"]["channel_fallbacks"]["messenger:no_chat"] >= len(no_chat) - sum(
        1 for e in no_chat if e.get("missing"))
    again = sync_json(env)
    assert outbox(shop) == sent and again["stats"]["written"] == 0  # a rerun delivers nothing new


def test_a_lost_ledger_finds_the_chat_messages_by_their_card_marker_and_sends_none_again(shop, tmp_path):
    env = env_for(shop, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    sync_json(env)
    sent = outbox(shop)
    assert any(m["channel"] == "messenger" for m in sent)
    (tmp_path / "state.db").unlink()  # the ledger is gone: only the CRM's markers remain
    sync_json(env)
    assert outbox(shop) == sent


def test_a_sync_killed_mid_chat_delivery_and_rerun_sends_each_message_once(shop, tmp_path):
    env = env_for(shop, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    shop.set_latency(400, call="imopenlines.crm.message.add")  # each batch of messages answers slowly: time to kill
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sync"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not [m for m in outbox(shop) if m["channel"] == "messenger"] and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = outbox(shop)
    assert [m for m in first if m["channel"] == "messenger"], "the run was killed before any message went out"
    shop.set_latency(0, call="imopenlines.crm.message.add")
    report = sync_json(env)
    sync_json(env)
    sent = outbox(shop)
    keys = [m["key"] for m in sent]
    assert len(keys) == len(set(keys))  # no customer got a touch twice
    messages = {m["key"] for m in sent if m["channel"] == "messenger"}
    assert messages == {e["key"] for e in touches_due(report) if e["kind"] == "message"}
    assert len(sent) > len(first)


def test_without_the_imopenlines_scope_messenger_steps_go_to_their_next_channel_and_say_why(tmp_path):
    with BitrixEmulator(customers=120, seed=7, today=TODAY, scopes="crm,task,user,bizproc", chat_share=0.5) as emu:
        env = env_for(emu, tmp_path)
        assert run_cli(["install"], env).returncode == 0
        report = sync_json(env)
        assert not [m for m in outbox(emu) if m["channel"] == "messenger"]
        assert report["stats"]["channel_fallbacks"].get("messenger:no_openlines", 0) > 0
        assert not [e for e in report["plan"] if e["kind"] == "message"]
        tasks = requests.post(emu.webhook_url + "tasks.task.list", json={
            "filter": {"TAG": "repeat-sales"}, "select": ["ID", "DESCRIPTION"]}).json()["result"]["tasks"]
        assert any("открытым линиям" in t["description"] for t in tasks)


def test_a_channel_refused_on_the_card_gets_nothing(shop, tmp_path):
    env = env_for(shop, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    refusing = sorted(chats_of(shop), key=int)[:40]
    for cid in refusing:  # the manager types what the customer said, in their own words
        answer = requests.post(shop.webhook_url + "crm.contact.update", json={
            "id": cid, "fields": {"UF_CRM_RS_REFUSED_CHANNELS": "WhatsApp; почта"}}).json()
        assert answer.get("result") is True, answer
    report = sync_json(env)
    reached = {(m["contact_id"], m["channel"]) for m in outbox(shop)}
    assert not {(c, ch) for c in refusing for ch in ("messenger", "email")} & reached
    refused = [e for e in touches_due(report) if e["customer_id"] in refusing]
    assert refused and all(e["kind"] not in ("message", "email") for e in refused)
    assert report["stats"]["channel_fallbacks"].get("messenger:refused", 0) > 0


def test_webhook_sync_moves_sms_on_saying_the_app_is_needed(shop, tmp_path):
    env = env_for(shop, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    report = sync_json(env)
    assert not [m for m in outbox(shop) if m["channel"] == "sms"]
    assert not [e for e in report["plan"] if e["kind"] == "sms"]
    assert report["stats"]["channel_fallbacks"].get("sms:no_app", 0) > 0


def test_install_makes_the_refused_channels_and_sms_text_fields_and_uninstall_removes_them(shop, tmp_path):
    env = env_for(shop, tmp_path)
    made = json.loads(run_cli(["install", "--format", "json"], env).stdout)
    assert {"contact field UF_CRM_RS_REFUSED_CHANNELS", "company field UF_CRM_RS_REFUSED_CHANNELS",
            "deal field UF_CRM_RS_MESSAGE"} <= set(made["created"]) and made["missing"] == []
    again = json.loads(run_cli(["install", "--format", "json"], env).stdout)
    assert again["created"] == []
    gone = json.loads(run_cli(["install", "--uninstall", "--format", "json"], env).stdout)
    assert {"contact field UF_CRM_RS_REFUSED_CHANNELS", "deal field UF_CRM_RS_MESSAGE"} <= set(gone["removed"])
    fields = requests.post(shop.webhook_url + "crm.deal.userfield.list", json={}).json()["result"]
    assert "UF_CRM_RS_MESSAGE" not in {f["FIELD_NAME"] for f in fields}
