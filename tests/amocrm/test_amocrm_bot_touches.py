"""Messenger and SMS steps through amoCRM's generic Salesbot (issue 16), over HTTP against the amoCRM
emulator: the outbox (`GET /_emulator/outbox`) is the witness of what reached customers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from amo_support import TODAY

from emulators.amocrm import AmoEmulator
from emulators.amocrm.chats import MESSAGE_BOT_ID
from tests.conftest import ROOT, run_cli

SLUGS = ("bronze", "silver", "gold", "champions", "lost_champions", "at_risk", "hibernating", "sleeping")
BOT_CHANNELS = ("messenger", "sms")


def outbox(emu) -> list[dict]:
    return requests.get(emu.base_url + "/_emulator/outbox", timeout=10).json()


def env_for(emu, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_"))}
    env.update(CRM="amocrm", AMOCRM_BASE_URL=emu.base_url, AMOCRM_ACCESS_TOKEN=emu.access_token,
               AMOCRM_REQUESTS_PER_SECOND="7", STATE_URL=f"sqlite:///{tmp_path / 'state.db'}",
               PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat(), **extra)
    return env


def sync_json(env) -> dict:
    done = run_cli(["sync", "--format", "json"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def bot_steps_due(report: dict) -> list[dict]:
    return [e for e in report["plan"] if e["due"] <= TODAY.isoformat() and e["kind"] == "bot"]


def contact(emu, cid: str) -> dict:
    r = requests.get(f"{emu.base_url}/api/v4/contacts/{cid}", headers={"Authorization": f"Bearer {emu.access_token}"},
                     timeout=10)
    return r.json()


@pytest.fixture
def account():
    with AmoEmulator(customers=120, seed=7, today=TODAY) as emu:
        yield emu


def test_install_creates_the_message_fields_prints_the_bot_and_uninstall_removes_them(account, tmp_path):
    env = env_for(account, tmp_path)
    done = run_cli(["install"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Salesbot" in done.stdout and "AMOCRM_SALESBOT_ID" in done.stdout and "RS_MESSAGE" in done.stdout
    codes = {f["code"] for f in account.store.custom_fields["contacts"]}
    assert {"RS_MESSAGE", "RS_MESSAGE_KEY", "RS_MESSAGE_SENT"} <= codes
    assert run_cli(["install", "--uninstall"], env).returncode == 0
    codes = {f["code"] for f in account.store.custom_fields["contacts"]}
    assert not {"RS_MESSAGE", "RS_MESSAGE_KEY", "RS_MESSAGE_SENT"} & codes


def test_messenger_steps_reach_customers_with_a_chat_once_and_the_rest_take_the_next_channel(account, tmp_path):
    env = env_for(account, tmp_path, AMOCRM_SALESBOT_ID=str(MESSAGE_BOT_ID))
    assert run_cli(["install"], env).returncode == 0
    report = sync_json(env)
    sent = outbox(account)
    bots = bot_steps_due(report)
    assert bots and report["stats"]["written_by_kind"]["bot"] == len(sent) == len(bots)
    assert {m["key"] for m in sent} == {e["key"] for e in bots}  # each touch once, its key from the CRM side
    assert all(e["channel"] in ("messenger", "sms", "email") for e in bots)  # the step's first choice stays
    chats = account.store.chats
    for message in sent:
        words = message["text"].casefold()
        assert message["channel"] == "messenger" and message["to"] == chats[int(message["contact_id"])]
        assert words.strip() and "{" not in words and "rs:" not in words and not any(s in words.split() for s in SLUGS)
        card = contact(account, message["contact_id"])
        flags = [cf for cf in card.get("custom_fields_values") or [] if cf["field_code"] == "NO_MARKETING"]
        assert not flags  # nothing to an opted-out customer
    no_chat = report["stats"]["channel_fallbacks"].get("messenger:no_chat", 0)
    assert no_chat > 0  # contacts without a chat went on to their next channel, and the summary says so
    again = sync_json(env)
    assert len(outbox(account)) == len(sent) and again["stats"]["written"] == 0  # a rerun delivers nothing new


def test_without_a_bot_every_messenger_step_goes_to_its_next_channel_and_says_why(account, tmp_path):
    env = env_for(account, tmp_path)
    assert run_cli(["install"], env).returncode == 0
    report = sync_json(env)
    assert outbox(account) == []
    assert not [e for e in report["plan"] if e["kind"] == "bot"]
    assert report["stats"]["channel_fallbacks"]["messenger:no_bot"] > 0
    tasks = [t["text"] for t in account.store.tasks.values()]
    assert any("AMOCRM_SALESBOT_ID" in t for t in tasks)


def test_a_bot_id_the_account_does_not_know_moves_touches_on(account, tmp_path):
    env = env_for(account, tmp_path, AMOCRM_SALESBOT_ID="99999")
    assert run_cli(["install"], env).returncode == 0
    report = sync_json(env)
    assert outbox(account) == [] and report["stats"]["channel_fallbacks"]["messenger:no_bot"] > 0


def test_a_sync_killed_mid_delivery_and_rerun_delivers_each_touch_once(account, tmp_path):
    env = env_for(account, tmp_path, AMOCRM_SALESBOT_ID=str(MESSAGE_BOT_ID), AMOCRM_WRITE_BATCH="10")
    assert run_cli(["install"], env).returncode == 0
    account.set_latency(300, call="POST /api/v2/salesbot/run")  # each run answers slowly: time to kill
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sync"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not outbox(account) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.6)  # a run the killed process had sent is still carried out by the account
    first = outbox(account)
    assert first, "the run was killed before any message went out"
    account.set_latency(0, call="POST /api/v2/salesbot/run")
    report = sync_json(env)
    sync_json(env)
    sent = outbox(account)
    keys = [m["key"] for m in sent]
    assert len(keys) == len(set(keys))  # no customer got a touch twice
    assert set(keys) == {e["key"] for e in bot_steps_due(report)} | {m["key"] for m in first}
    assert len(sent) > len(first)
