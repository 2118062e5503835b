"""Several emulated portals sharing one app (`--app-client-id`/`--app-client-secret`), as real portals share
a marketplace app: the same keys renew tokens on each, every portal keeps its own member_id and domain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
from bx_support import SEED, TODAY
from test_bx_app_context import Receiver

from emulators.bitrix import BitrixEmulator

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, SECRET = "app.5f1e2d3c4b5a69.12345678", "shared-marketplace-secret-0123456789"


def renew(emu, refresh: str, client_id: str = CLIENT_ID, secret: str = SECRET) -> requests.Response:
    return requests.get(f"{emu.base_url}/oauth/token/", params={
        "grant_type": "refresh_token", "client_id": client_id, "client_secret": secret, "refresh_token": refresh},
        timeout=10)


def test_portals_given_one_apps_keys_share_it_and_stay_apart():
    receiver = Receiver()
    try:
        with BitrixEmulator(customers=20, seed=SEED, today=TODAY, app_client_id=CLIENT_ID,
                            app_client_secret=SECRET) as a, \
                BitrixEmulator(customers=20, seed=SEED, today=TODAY, app_client_id=CLIENT_ID,
                               app_client_secret=SECRET) as b:
            for emu in (a, b):  # installed through the control API, as a test of the hosted app does
                r = requests.post(f"{emu.base_url}/_emulator/app/install",
                                  json={"handler": receiver.url + "/bitrix/install"}, timeout=10)
                assert r.status_code == 200 and r.json()["status"] == 200
            forms = [got[2] for got in receiver.got]
            assert [f["auth[domain]"] for f in forms] == [a.app.domain, b.app.domain]
            assert forms[0]["auth[member_id]"] != forms[1]["auth[member_id]"]  # same seed, two portals
            assert forms[0]["auth[application_token]"] != forms[1]["auth[application_token]"]
            assert a.app.snapshot()["client_id"] == b.app.snapshot()["client_id"] == CLIENT_ID
            # one auth server for the app: each portal's token renews at either address, as that portal's
            for emu, form in zip((b, a), forms, strict=True):
                r = renew(emu, form["auth[refresh_token]"])
                assert r.status_code == 200 and r.json()["member_id"] == form["auth[member_id]"]
                assert r.json()["client_endpoint"] == f"http://{form['auth[domain]']}/rest/"
            # another app's keys are refused; a spent refresh token is spent everywhere
            assert renew(a, "whatever", secret="not-the-apps").json()["error"] == "invalid_client"
            assert renew(a, forms[0]["auth[refresh_token]"]).json()["error"] == "invalid_grant"
    finally:
        receiver.close()


def test_a_portal_with_its_own_app_renews_only_its_own_tokens():
    receiver = Receiver()
    try:
        with BitrixEmulator(customers=10, seed=SEED, today=TODAY) as a, \
                BitrixEmulator(customers=10, seed=SEED, today=TODAY) as b:
            a.app.install(receiver.url + "/i")
            r = renew(b, receiver.got[-1][2]["auth[refresh_token]"], b.app.client_id, b.app.client_secret)
            assert r.json()["error"] == "invalid_grant"
    finally:
        receiver.close()


def test_standalone_portal_takes_the_apps_keys_and_prints_them():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "emulators.bitrix", "--customers", "10", "--seed", "5",
                             "--app-client-id", CLIENT_ID, "--app-client-secret", SECRET],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        settings = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5))
        assert settings["BITRIX_APP_CLIENT_ID"] == CLIENT_ID and settings["BITRIX_APP_CLIENT_SECRET"] == SECRET
        snapshot = requests.get(settings["BITRIX_OAUTH_URL"] + "/_emulator/app", timeout=5).json()
        assert snapshot["client_id"] == CLIENT_ID
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_standalone_refuses_half_of_the_keys():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "emulators.bitrix", "--app-client-id", CLIENT_ID],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    assert done.returncode == 2 and "--app-client-secret" in done.stderr
