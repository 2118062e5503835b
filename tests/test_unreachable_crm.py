"""A CRM address that cannot work (closed port, unknown host, TLS against plain HTTP) is named at once.

Before: ten attempts over ~17 s, then "the portal kept failing (5xx or dropped connections)".
Now: one attempt, the real cause, and the setting to fix - never the token.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from connector.amocrm import AmoAdapter
from connector.bitrix import BitrixAdapter
from connector.errors import CrmUnreachable
from emulators.amocrm import AmoEmulator
from emulators.bitrix import BitrixEmulator
from tests.conftest import TODAY, run_cli

UNKNOWN_HOST = "portal.repeat-sales-test.invalid"  # RFC 2606: never resolves, no network needed to fail


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bitrix():
    with BitrixEmulator(customers=10, seed=3, today=TODAY) as emu:
        yield emu


@pytest.fixture(scope="module")
def amocrm():
    with AmoEmulator(customers=10, seed=3, today=TODAY) as emu:
        yield emu


def bitrix_urls(emu) -> dict[str, str]:
    secret_path = urlsplit(emu.webhook_url).path  # /rest/1/<code>/
    return {"refused": f"http://127.0.0.1:{closed_port()}{secret_path}",
            "dns": f"https://{UNKNOWN_HOST}{secret_path}",
            "tls": emu.webhook_url.replace("http://", "https://")}  # TLS spoken to the plain-HTTP emulator


def amocrm_urls(emu) -> dict[str, str]:
    return {"refused": f"http://127.0.0.1:{closed_port()}", "dns": f"https://{UNKNOWN_HOST}",
            "tls": emu.base_url.replace("http://", "https://")}


CAUSES = {"refused": "refused the connection", "dns": "does not resolve", "tls": "TLS handshake"}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_bitrix_names_the_cause_and_the_setting_after_one_attempt(cause, bitrix):
    before = bitrix.stats()["requests_total"]
    adapter = BitrixAdapter(bitrix_urls(bitrix)[cause])
    try:
        with pytest.raises(CrmUnreachable) as caught:
            list(adapter.pull(None))
        attempts = adapter.request_count()
    finally:
        adapter.close()
    text = str(caught.value)
    assert CAUSES[cause] in text and "BITRIX_WEBHOOK_URL" in text
    assert "kept failing" not in text and "5xx" not in text
    assert attempts == 1, "no connection can be made: nothing to retry"
    assert urlsplit(bitrix.webhook_url).path.split("/")[3] not in text, "the webhook code is a secret"
    assert bitrix.stats()["requests_total"] == before, "the portal received no request"


@pytest.mark.parametrize("kind", ["read", "write"])
@pytest.mark.parametrize("cause", list(CAUSES))
def test_amocrm_names_the_cause_and_the_setting_after_one_attempt(cause, kind, amocrm):
    before = amocrm.stats()["requests_total"]
    adapter = AmoAdapter(amocrm_urls(amocrm)[cause], access_token=amocrm.access_token,
                         sleep=lambda seconds: None)
    try:
        with pytest.raises(CrmUnreachable) as caught:
            adapter.client.request("GET" if kind == "read" else "POST", "/api/v4/leads", kind=kind,
                                   json_body=None if kind == "read" else [{"name": "x"}])
        attempts = adapter.request_count()
    finally:
        adapter.close()
    text = str(caught.value)
    assert CAUSES[cause] in text and "AMOCRM_BASE_URL" in text
    assert attempts == 1, "no connection can be made: nothing to retry"
    assert amocrm.access_token not in text
    assert amocrm.stats()["requests_total"] == before, "the account received no request"


def test_sync_against_a_closed_port_exits_1_with_one_line_naming_the_setting(tmp_path, cli_env, portal):
    port = closed_port()
    secret = urlsplit(portal.webhook_url).path
    env = {**cli_env, "BITRIX_WEBHOOK_URL": f"http://127.0.0.1:{port}{secret}"}
    result = run_cli(["sync", "--dry-run", "--as-of", TODAY.isoformat()], env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"127.0.0.1:{port} refused the connection" in line and "BITRIX_WEBHOOK_URL" in line
    assert secret.split("/")[3] not in result.stderr + result.stdout


def test_amocrm_sync_against_an_unknown_host_exits_1_naming_the_setting(tmp_path, cli_env, amocrm):
    env = {k: v for k, v in cli_env.items() if not k.startswith("BITRIX_")}
    env.update(CRM="amocrm", AMOCRM_BASE_URL=f"https://{UNKNOWN_HOST}", AMOCRM_ACCESS_TOKEN=amocrm.access_token)
    result = run_cli(["sync", "--dry-run", "--as-of", TODAY.isoformat()], env, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "does not resolve" in line and "AMOCRM_BASE_URL" in line
    assert amocrm.access_token not in result.stderr + result.stdout
