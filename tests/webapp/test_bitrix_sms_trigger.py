"""SMS through the portal's own provider (issue 16): the app registers its automation trigger at install,
the admin binds the robot "Send SMS" to it once, and a sync writes the text into the customer's latest
deal and fires the trigger. Over HTTP: the emulated portal, the webhook app, the outbox as the witness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from web_support import SEED, TODAY, bitrix_settings

from connector.webapp import WebApp
from connector.webapp.runtime import Runtime
from emulators.bitrix import BitrixEmulator
from tests.conftest import ROOT, run_cli
from tests.test_delivery_channels import SLUGS, env_for, outbox

# the bundled playbook with its first reactivation step sent by SMS first
PLAYBOOK = """extends = "default.en"
[guards.holdout]
enabled = false
[guards.cap]
max_touches = 10
[rules.reactivation]
[[rules.reactivation.steps]]
name = "sms"
channels = ["sms", "email", "task"]
title = "SMS: {name}, your discount is waiting"
body = "{name}, your personal discount is valid for one more week."
subject = "{name}, your discount is waiting"
text = "{name}, your personal discount is valid for one more week."
"""


def sms_sent(emu) -> list[dict]:
    return [m for m in outbox(emu) if m["channel"] == "sms"]


@pytest.mark.parametrize("robot_bound", [True, False])
def test_sms_steps_go_through_the_admins_robot_once_and_wait_for_it_to_be_bound(tmp_path, robot_bound):
    playbook = tmp_path / "sms.toml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    with BitrixEmulator(customers=120, seed=SEED, today=TODAY, sms_automation=True) as portal:
        (tmp_path / "cli").mkdir()
        assert run_cli(["install"], env_for(portal, tmp_path / "cli")).returncode == 0  # the card and deal fields
        app = WebApp(bitrix_settings(portal, tmp_path, BITRIX_SMS_ROBOT=robot_bound, PLAYBOOK=str(playbook)), port=0,
                     today=lambda: TODAY).start()
        try:
            assert portal.app.install(app.url + "/bitrix/install") == 200  # registers the trigger, first sync
            assert app.worker.wait_idle(60), app.worker.last_error
            assert "rs_sms" in portal.store.triggers
            sent = sms_sent(portal)
            if not robot_bound:  # nobody said the robot is bound: nothing fired, the steps moved on to e-mail
                assert sent == [] and [m for m in outbox(portal) if m["channel"] == "email"]
                return
            assert sent
            keys = [m["key"] for m in sent]
            assert all(keys) and len(keys) == len(set(keys))  # each keyed by its card marker, once
            for message in sent:
                words = message["text"].casefold()
                assert message["text"] and "{" not in words and "rs:" not in words
                assert not any(s in words.split() for s in SLUGS)
                card = requests.post(portal.webhook_url + "crm.contact.get",
                                     json={"id": message["contact_id"]}).json()["result"]
                assert message["to"] in {p["VALUE"] for p in card.get("PHONE", [])}
            app.request_sync()
            assert app.worker.wait_idle(60), app.worker.last_error
            assert sms_sent(portal) == sent  # a rerun fires nothing new
        finally:
            app.stop(timeout=30)


def test_a_scheduled_run_killed_mid_sms_delivery_and_rerun_sends_each_sms_once(tmp_path):
    playbook = tmp_path / "sms.toml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    with BitrixEmulator(customers=120, seed=SEED, today=TODAY, sms_automation=True) as portal:
        (tmp_path / "cli").mkdir()
        assert run_cli(["install"], env_for(portal, tmp_path / "cli")).returncode == 0  # the card and deal fields
        settings = dict(BITRIX_SMS_ROBOT=True, PLAYBOOK=str(playbook))
        app = WebApp(bitrix_settings(portal, tmp_path, DRY_RUN=True, **settings), port=0, today=lambda: TODAY).start()
        try:  # the app installed (its tokens stored, the trigger registered); its first sync only previews
            assert portal.app.install(app.url + "/bitrix/install") == 200
            assert app.worker.wait_idle(60), app.worker.last_error
        finally:
            app.stop(timeout=30)
        assert "rs_sms" in portal.store.triggers and outbox(portal) == []
        config = bitrix_settings(portal, tmp_path, **settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BITRIX_", "AMOCRM_", "STATE_"))}
        env.update({k: (v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)) for k, v in dict(
            CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=config.BITRIX_APP_CLIENT_ID,
            BITRIX_APP_CLIENT_SECRET=config.BITRIX_APP_CLIENT_SECRET, BITRIX_OAUTH_URL=config.BITRIX_OAUTH_URL,
            BITRIX_REQUESTS_PER_SECOND=50, BITRIX_SMS_ROBOT="true", STATE_URL=f"sqlite:///{tmp_path / 'state.db'}",
            PLAYBOOK=str(playbook), PLAYBOOK_LANG="en", PYTHONPATH=str(ROOT), RS_TODAY=TODAY.isoformat()).items()})
        portal.set_latency(400, call="crm.automation.trigger.execute")  # each SMS answers slowly: time to kill
        proc = subprocess.Popen([sys.executable, "-m", "connector", "schedule"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not sms_sent(portal) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = sms_sent(portal)
        assert first, "the run was killed before any SMS went out"
        portal.set_latency(0, call="crm.automation.trigger.execute")
        runtime = Runtime(config, lambda: TODAY)
        state = runtime.open_state()
        try:
            report = runtime.sync(state)
            again = runtime.sync(state)
        finally:
            state.close()
        sent = outbox(portal)
        keys = [m["key"] for m in sent]
        assert len(keys) == len(set(keys))  # no customer got a touch twice
        planned = {a.key for a in report.plan if a.kind.value == "sms" and a.due <= TODAY}
        assert {m["key"] for m in sent if m["channel"] == "sms"} == planned  # every SMS due went out, once
        assert len(sms_sent(portal)) > len(first) and again.stats["written"] == 0
