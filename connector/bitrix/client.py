"""The one place that talks HTTP to a Bitrix24 portal, through fast-bitrix24.

fast-bitrix24 does the throttling (leaky bucket) and retries 5xx and dropped connections.
We hand it our own aiohttp session so that we can count every HTTP request it makes (its own
retries included), read error bodies (it never does), and keep the webhook secret out of
every error we raise.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import socket
import ssl
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlparse

import aiohttp
from fast_bitrix24 import BitrixAsync

from connector.errors import (
    CrmAuthError,
    CrmError,
    CrmRateLimited,
    CrmRequestRejected,
    CrmUnavailable,
    CrmUnreachable,
)

log = logging.getLogger(__name__)
logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)  # it logs params and answers (PII)

REQUEST_TIMEOUT_SECONDS = 60  # Doc: settings/performance/limits.md - cloud requests are cut at 60 s
BATCH_LIMIT = 50  # Doc: settings/how-to-call-rest-api/batch.md - at most 50 commands
PAGE_SIZE = 50  # Doc: settings/how-to-call-rest-api/list-methods-pecularities.md


def php_query(params: Mapping[str, object], prefix: str = "") -> str:
    """PHP-style query string for a batch command: `filter[>ID]=5&select[0]=ID`.

    None becomes an empty value (not the string "None"), booleans become Y/N.
    """
    pairs: list[tuple[str, str]] = []

    def walk(value: object, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif isinstance(value, bool):
            pairs.append((key, "Y" if value else "N"))
        else:
            pairs.append((key, "" if value is None else str(value)))

    walk(params, prefix)
    return "&".join(f"{_quote_key(k)}={v if _PLAIN.fullmatch(v) else quote(v, safe='')}" for k, v in pairs)


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote() leaves as is: long id lists skip it


@functools.lru_cache(maxsize=4096)
def _quote_key(key: str) -> str:
    return quote(key, safe="[]")


@dataclass
class BatchResult:
    result: dict[str, object] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Like aiohttp's check, but keeps the portal's error code (fast-bitrix24 never reads bodies)."""
    if response.status < 400:
        return
    code = description = ""
    try:
        body = json.loads((await response.read())[:4096] or b"{}")
        code = str(body.get("error", ""))
        description = str(body.get("error_description", ""))[:200]
    except (ValueError, aiohttp.ClientError, AttributeError):
        pass
    raise aiohttp.ClientResponseError(response.request_info, response.history, status=response.status,
                                      message=f"{code}|{description}", headers=response.headers)


_DNS_ERROR = getattr(aiohttp, "ClientConnectorDNSError", ())  # aiohttp >= 3.10; older ones carry a gaierror


class PortalUnreachable(Exception):
    """No connection could be made (DNS, refused, TLS). Deliberately outside fast-bitrix24's retried
    errors: its loop would spend ~17 s on ten attempts as if the portal were in a 5xx storm."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(cause)
        self.cause, self.detail = cause, detail


def unreachable_cause(exc: aiohttp.ClientConnectorError) -> tuple[str, str] | None:
    """("dns"|"refused"|"tls", detail) when no connection can be made at all; None for what may pass."""
    os_error = exc.os_error
    if isinstance(exc, _DNS_ERROR) or isinstance(os_error, socket.gaierror):
        return "dns", os_error.strerror or str(os_error)
    if isinstance(exc, aiohttp.ClientSSLError) or isinstance(os_error, ssl.SSLError):
        return "tls", getattr(os_error, "reason", None) or type(os_error).__name__
    if isinstance(os_error, ConnectionRefusedError):
        return "refused", os_error.strerror or "connection refused"
    return None


class _FailFastConnector(aiohttp.TCPConnector):
    """Turns a connection that cannot be made into PortalUnreachable; a connection lost later stays retried."""

    async def connect(self, req, traces, timeout):
        try:
            return await super().connect(req, traces, timeout)
        except aiohttp.ClientConnectorError as exc:
            cause = unreachable_cause(exc)
            if cause is None:
                raise
            raise PortalUnreachable(*cause) from None


class BitrixClient:
    """Synchronous facade: each call runs on this client's own event loop and session."""

    def __init__(self, webhook_url: str, *, requests_per_second: float = 2.0, request_pool: int = 50,
                 oauth_token=None) -> None:
        self.webhook_url = webhook_url
        self.setting = ("the portal address saved at install (install the app again)" if oauth_token is not None
                        else "BITRIX_WEBHOOK_URL")
        parsed = urlparse(webhook_url)
        self.portal = f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)
        parts = [p for p in parsed.path.split("/") if p]
        self.webhook_user = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else None
        self.requests = 0
        self.requests_by_method: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._session = self._loop.run_until_complete(self._open_session())
        self._bx = BitrixAsync(webhook_url, token_func=oauth_token, verbose=False,
                               requests_per_second=requests_per_second, request_pool_size=request_pool,
                               client=self._session)

    async def _open_session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._count)
        return aiohttp.ClientSession(connector=_FailFastConnector(), raise_for_status=_raise_for_status,
                                     trace_configs=[trace],
                                     timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))

    async def _count(self, _session, _ctx, params: aiohttp.TraceRequestStartParams) -> None:
        self.requests += 1
        self.requests_by_method[params.url.path.rsplit("/", 1)[-1]] += 1

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._session.close())
            self._loop.close()

    # --- calls ---------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, object] | None = None) -> dict:
        """One REST call; returns the whole envelope (`result`, `total`, `next`, `time`)."""
        try:
            answer = self._loop.run_until_complete(self._bx.call(method, dict(params or {}), raw=True))
        except PortalUnreachable as exc:
            raise unreachable(exc, method, self.portal, self.setting) from None
        except Exception as exc:  # classified once, here; the original may carry the webhook URL
            raise classify(exc, method) from None
        if not isinstance(answer, dict) or "result" not in answer:
            raise CrmRequestRejected("the portal answered without a result", crm="bitrix", method=method,
                                     hint="check that BITRIX_WEBHOOK_URL points at a Bitrix24 portal")
        return answer

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, object]]], *, halt: bool = False) -> BatchResult:
        """Up to 50 commands in one HTTP request; per-command errors come back, not raised."""
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch holds at most {BATCH_LIMIT} commands, got {len(commands)}")
        cmd = {label: f"{method}?{php_query(params)}" for label, (method, params) in commands.items()}
        answer = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})["result"]
        out = BatchResult()
        for part, target in (("result", out.result), ("result_error", out.errors),
                             ("result_total", out.total), ("result_next", out.next)):
            value = answer.get(part) if isinstance(answer, dict) else None
            if isinstance(value, dict):  # empty parts come as [] (Doc: batch.md)
                target.update(value)
        return out


def unreachable(exc: PortalUnreachable, method: str, portal: str, setting: str) -> CrmUnreachable:
    """The cause by name and the setting to fix; the host only, never the webhook's path (its secret)."""
    host = portal.rsplit(":", 1)[0] if portal.count(":") == 1 else portal
    if exc.cause == "dns":
        text = f"the host name {host} does not resolve (DNS: {exc.detail})"
        hint = f"check the portal's host in {setting}, e.g. https://x.bitrix24.ru/rest/1/<code>/"
    elif exc.cause == "tls":
        text = f"the TLS handshake with {portal} failed ({exc.detail})"
        hint = (f"check {setting}: https:// for a portal with TLS, http:// for a plain one such as the emulator; "
                "a certificate error means the portal's certificate is not trusted here")
    else:
        text = f"{portal} refused the connection (nothing listens there)"
        hint = f"check the host and port in {setting} and that the portal is up"
    return CrmUnreachable(text, crm="bitrix", method=method, hint=hint)


def classify(exc: BaseException, method: str) -> CrmError:
    """Turn fast-bitrix24 / aiohttp errors into ours. No URL, no body beyond the error code."""
    if isinstance(exc, CrmError):
        return exc
    if isinstance(exc, aiohttp.ClientResponseError):
        code, _, description = (exc.message or "").partition("|")
        status = exc.status
        text = description or code or "request refused"
        if status == 401:
            return CrmAuthError(text, crm="bitrix", method=method, status=status, crm_code=code,
                                hint="the portal refused the webhook: check BITRIX_WEBHOOK_URL (deleted, "
                                     "expired or mistyped code) and create a new incoming webhook if needed")
        if status == 429:
            return CrmRateLimited(text, crm="bitrix", method=method, status=status, crm_code=code,
                                  hint="the method's operating-time limit is spent; the next run will go on")
        if status == 403:
            return CrmRequestRejected(text, crm="bitrix", method=method, status=status, crm_code=code,
                                      hint="the webhook's user lacks rights or the webhook lacks a scope "
                                           "(crm, task, user)")
        return CrmRequestRejected(text, crm="bitrix", method=method, status=status, crm_code=code)
    if isinstance(exc, RuntimeError) and "attempts" in str(exc):
        return CrmUnavailable("the portal kept failing (5xx or dropped connections); retries are spent",
                              crm="bitrix", method=method,
                              hint="nothing is lost: run again later, written actions are not repeated")
    if isinstance(exc, aiohttp.ContentTypeError):
        return CrmRequestRejected("the answer is not JSON", crm="bitrix", method=method,
                                  hint="check that BITRIX_WEBHOOK_URL points at a Bitrix24 REST endpoint")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return CrmUnavailable(f"cannot reach the portal ({type(exc).__name__})", crm="bitrix", method=method,
                              hint="check the network and BITRIX_WEBHOOK_URL's host")
    return CrmError(f"unexpected failure ({type(exc).__name__})", crm="bitrix", method=method)
