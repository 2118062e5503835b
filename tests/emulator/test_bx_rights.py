"""Rights and scopes on the emulated portal: a webhook's (or token's) user may be an administrator or not,
and its scopes bound what it may call - each refusal with the body its doc page shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from bx_support import CUSTOMERS, SEED, TODAY, ok, rest

from emulators.bitrix import BitrixEmulator
from emulators.bitrix.writeback_methods import add_workflow_template

ROOT = Path(__file__).resolve().parents[2]
SCOPE_ERROR = {"error": "insufficient_scope",
               "error_description": "The request requires higher privileges than provided by the webhook token"}


def portal(**rights) -> BitrixEmulator:
    return BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY, **rights)


def start(emu: BitrixEmulator, template: int, contact: int = 1) -> requests.Response:
    return rest(emu, "bizproc.workflow.start", {"TEMPLATE_ID": template,
                                                "DOCUMENT_ID": ["crm", "CCrmDocumentContact", f"CONTACT_{contact}"]})


def test_an_administrators_webhook_may_call_admin_only_methods_and_another_user_may_not():
    with portal(webhook_admin=True) as emu:
        template = add_workflow_template(emu.store, "Welcome")
        assert ok(emu, "profile")["result"]["ADMIN"] is True and ok(emu, "user.admin")["result"] is True
        assert start(emu, template).status_code == 200
        assert ok(emu, "bizproc.workflow.template.list", {"select": ["ID", "NAME"]})["result"]
        assert isinstance(ok(emu, "crm.contact.userfield.add", {"fields": {"FIELD_NAME": "X1",
                                                                           "USER_TYPE_ID": "string"}})["result"], int)
    with portal(webhook_admin=False) as emu:
        template = add_workflow_template(emu.store, "Welcome")
        assert ok(emu, "profile")["result"]["ADMIN"] is False and ok(emu, "user.admin")["result"] is False
        r = start(emu, template)  # Doc: bizproc-workflow-start.md
        assert (r.status_code, r.json()) == (403, {"error": "ACCESS_DENIED", "error_description": "Access denied!"})
        r = rest(emu, "bizproc.workflow.template.list", {"select": ["ID"]})  # Doc: ...template-list.md (400)
        assert (r.status_code, r.json()["error"]) == (400, "ACCESS_DENIED")
        r = rest(emu, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "X1", "USER_TYPE_ID": "string"}})
        assert (r.status_code, r.json()) == (400, {"error": "", "error_description": "Access denied"})
        # inside a batch the refusal is that command's error; the others run
        both = ok(emu, "batch", {"halt": 0, "cmd": {
            "w": f"bizproc.workflow.start?TEMPLATE_ID={template}&DOCUMENT_ID[0]=crm&DOCUMENT_ID[1]=CCrmDocumentContact"
                 "&DOCUMENT_ID[2]=CONTACT_1", "d": "crm.deal.get?id=1"}})["result"]
        assert both["result_error"]["w"]["error"] == "ACCESS_DENIED" and both["result"]["d"]["ID"] == "1"
        assert ok(emu, "crm.deal.list", {"select": ["ID"]})["total"] > 0  # reading is everyone's


def test_methods_outside_the_webhooks_scopes_answer_insufficient_scope():
    with portal(scopes="crm") as emu:
        assert ok(emu, "scope")["result"] == ["crm"]
        assert "task" in ok(emu, "scope", {"full": True})["result"]
        for method, params in (("tasks.task.add", {"fields": {"TITLE": "x", "RESPONSIBLE_ID": 1}}),
                               ("user.get", {}), ("bizproc.workflow.template.list", {})):
            r = rest(emu, method, params)
            assert (r.status_code, r.json()) == (403, SCOPE_ERROR), method
        assert ok(emu, "crm.deal.get", {"id": 1})["result"]["ID"] == "1"
        assert ok(emu, "profile")["result"]["ID"] == "1"  # the basic scope needs no box ticked
        inner = ok(emu, "batch", {"cmd": {"t": "tasks.task.list?select[0]=ID", "d": "crm.deal.get?id=2"}})["result"]
        assert inner["result_error"]["t"] == SCOPE_ERROR and inner["result"]["d"]["ID"] == "2"
    with portal(scopes="crm,task,user") as emu:
        assert ok(emu, "scope")["result"] == ["crm", "task", "user", "user_basic", "user_brief"]
        assert ok(emu, "tasks.task.list", {"select": ["ID"]})["result"] is not None
        assert ok(emu, "user.get")["result"]


def test_app_tokens_carry_the_same_user_and_scopes(tmp_path):
    with portal(webhook_admin=False, scopes="crm,bizproc") as emu:
        emu.app.install("http://127.0.0.1:9/bitrix/install")  # no one listens: the install still happens
        token = emu.app.issue_token()

        def app(method: str, params: dict | None = None) -> requests.Response:
            return requests.post(f"{emu.base_url}/rest/{method}", json={"auth": token, **(params or {})}, timeout=10)

        assert app("scope").json()["result"] == ["bizproc", "crm"]
        assert app("app.info").json()["result"]["INSTALLED"] is True
        assert app("tasks.task.list").json() == SCOPE_ERROR
        r = app("bizproc.robot.list")  # Doc: bizproc-robot-list.md - administrators only
        assert (r.status_code, r.json()["error_description"]) == (400, "Access denied!")
        emu.set_rights(admin=True)
        assert app("bizproc.robot.list").json()["result"] == []


def test_standalone_flags_set_the_webhooks_rights():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "emulators.bitrix", "--customers", "10", "--rate-limit", "off",
                             "--webhook-admin", "no", "--scopes", "crm,user"], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        url = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))["BITRIX_WEBHOOK_URL"]
        assert requests.post(url + "user.admin", json={}, timeout=5).json()["result"] is False
        assert requests.post(url + "scope", json={}, timeout=5).json()["result"] == ["crm", "user", "user_basic",
                                                                                     "user_brief"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("bad", ["maybe"])
def test_a_bad_admin_flag_is_refused(bad):
    proc = subprocess.run([sys.executable, "-m", "emulators.bitrix", "--webhook-admin", bad], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "--webhook-admin" in proc.stderr
