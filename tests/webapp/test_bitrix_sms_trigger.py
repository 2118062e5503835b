"""SMS through the portal's own provider (issue 16): the app registers its automation trigger at install,
the admin binds the robot "Send SMS" to it once, and a sync writes the text into the customer's latest
deal and fires the trigger. Over HTTP: the emulated portal, the webhook app, the outbox as the witness."""

from __future__ import annotations

import pytest
import requests
from web_support import SEED, TODAY, bitrix_settings

from connector.webapp import WebApp
from emulators.bitrix import BitrixEmulator
from tests.conftest import run_cli
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
