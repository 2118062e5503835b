"""Both emulators answer the same control API, from Python and over HTTP (emulators.kit)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import requests

from emulators.amocrm import AmoEmulator
from emulators.bitrix import BitrixEmulator

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 6, 15)


def bitrix_call(emu, call: str) -> requests.Response:
    return requests.post(emu.webhook_url + call, json={"id": 1}, timeout=10)


def amocrm_call(emu, call: str) -> requests.Response:
    method, path = call.split(" ", 1)
    return requests.request(method, emu.base_url + path, headers={"Authorization": f"Bearer {emu.access_token}"},
                            timeout=10)


# (emulator class, how to make one call, a call a test targets, another call)
CRMS = {"bitrix": (BitrixEmulator, bitrix_call, "crm.deal.get", "crm.contact.get"),
        "amocrm": (AmoEmulator, amocrm_call, "GET /api/v4/account", "GET /api/v4/users")}


@pytest.fixture(params=sorted(CRMS))
def crm(request):
    cls, call, target, other = CRMS[request.param]
    with cls(customers=10, seed=5, today=TODAY) as emu:
        yield emu, lambda name: call(emu, name), target, other


def test_a_failure_queued_over_http_for_one_call_strikes_only_that_call_once(crm):
    emu, call, target, other = crm
    answer = requests.post(emu.base_url + "/_emulator/faults",
                           json={"fail_next": {"n": 1, "status": 503, "call": target}}, timeout=10)
    assert answer.status_code == 200
    assert call(other).status_code == 200
    assert call(target).status_code == 503
    assert call(target).status_code == 200


def test_the_same_fault_spec_drops_every_answer_on_both(crm):
    emu, call, target, _other = crm
    emu.set_faults("drop:1.0")
    with pytest.raises(requests.ConnectionError):
        call(target)
    emu.set_faults(None)
    assert call(target).status_code == 200


def test_stats_count_requests_per_call_and_reset_keeps_the_objects(crm):
    emu, call, target, _other = crm
    emu.fail_next(1, status=500)
    assert call(target).status_code == 500
    call(target)
    stats = requests.get(emu.base_url + "/_emulator/stats", timeout=10).json()
    assert stats["requests_total"] == 2 and sum(stats["requests"].values()) == 2 and stats["objects"]
    emu.reset_stats()
    after = emu.stats()
    assert (after["requests_total"], after["requests"], after["objects"]) == (0, {}, stats["objects"])


@pytest.mark.parametrize("name", sorted(CRMS))
def test_a_bad_fault_spec_is_refused_alike_by_both_standalone_emulators(name):
    result = subprocess.run([sys.executable, "-m", "connector", "emulator", name, "--faults", "503:2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "fault share 2.0 is not between 0 and 1" in result.stderr and "Traceback" not in result.stderr
