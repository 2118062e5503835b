"""The one place that talks HTTP to a Bitrix24 portal, through fast-bitrix24.

fast-bitrix24 does the throttling (leaky bucket) and retries 5xx and dropped connections.
We hand it our own aiohttp session so that we can count every HTTP request it makes (its own
retries included), read error bodies (it never does), tell answers that are no answers (an HTML
page, a request the portal cut at 60 s, a body cut short) by name, and keep the webhook secret
out of every error we raise. The operating-time budget (budget.py) is ours: fast-bitrix24's own
per-method throttle sums cumulative values and would stall for minutes (its #249), so it is off.
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

from connector.bitrix.budget import OperatingBudget
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

PORTAL_CUT_SECONDS = 60  # Doc: settings/performance/limits.md - cloud requests are cut at 60 s
REQUEST_TIMEOUT_SECONDS = 75  # a little longer than the portal's own cut, so that its answer comes first
OPERATION_TIME_LIMIT = "OPERATION_TIME_LIMIT"  # Doc: settings/performance/limits.md, _includes/system-errors.md
MAX_REFUSED_RESENDS = 3  # a request refused for its operating time is sent again after short blocks, this often
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


class NotAnAnswer(Exception):
    """What came back is no REST answer: an HTML page, or the gateway's page for a request the portal cut
    at 60 s. Deliberately outside fast-bitrix24's retried errors: sending it again gets the same page
    (and a cut request bills its method another minute of operating time)."""

    def __init__(self, cause: str, status: int) -> None:
        super().__init__(cause)
        self.cause, self.status = cause, status


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Like aiohttp's check, but keeps the portal's error code (fast-bitrix24 never reads bodies)."""
    if response.status == 504:  # the gateway's page: the portal stopped the request at its 60-s cut
        raise NotAnAnswer("cut", response.status)
    if "html" in (response.headers.get("Content-Type") or "").lower():
        raise NotAnAnswer("html", response.status)
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


class _NamedFailuresResponse(aiohttp.ClientResponse):
    """Notes on its session why a body could not be read (fast-bitrix24 retries it and, retries spent,
    says only that attempts are exhausted)."""

    async def read(self) -> bytes:
        try:
            return await super().read()
        except aiohttp.ClientPayloadError:
            if self._session is not None:
                self._session.rs_last_failure = "truncated"  # type: ignore[attr-defined]
            raise


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
                 oauth_token=None, budget: OperatingBudget | None = None) -> None:
        self.webhook_url = webhook_url
        self.setting = ("the portal address saved at install (install the app again)" if oauth_token is not None
                        else "BITRIX_WEBHOOK_URL")
        parsed = urlparse(webhook_url)
        self.portal = f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)
        parts = [p for p in parsed.path.split("/") if p]
        self.webhook_user = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else None
        self.requests = 0
        self.requests_by_method: Counter[str] = Counter()
        self.budget = budget or OperatingBudget()
        self.gate = None  # QUEUE_URL: the portal's request bucket shared by all workers (connector/jobs/budget.py)
        self._loop = asyncio.new_event_loop()
        self._session = self._loop.run_until_complete(self._open_session())
        # operating_time_limit: fast-bitrix24's per-method throttle off (see the module docstring)
        self._bx = BitrixAsync(webhook_url, token_func=oauth_token, verbose=False,
                               requests_per_second=requests_per_second, request_pool_size=request_pool,
                               client=self._session, operating_time_limit=10**9)

    async def _open_session(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._count)
        trace.on_request_exception.append(self._note_failure)
        session = aiohttp.ClientSession(connector=_FailFastConnector(), raise_for_status=_raise_for_status,
                                        trace_configs=[trace], response_class=_NamedFailuresResponse,
                                        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS))
        session.rs_last_failure = ""  # type: ignore[attr-defined]
        return session

    async def _count(self, _session, _ctx, params: aiohttp.TraceRequestStartParams) -> None:
        self.requests += 1
        self.requests_by_method[params.url.path.rsplit("/", 1)[-1]] += 1

    async def _note_failure(self, session, _ctx, params: aiohttp.TraceRequestExceptionParams) -> None:
        exc = params.exception
        if isinstance(exc, asyncio.TimeoutError):
            session.rs_last_failure = "timeout"
        elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            session.rs_last_failure = "dropped"

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._session.close())
            self._loop.close()

    # --- calls ---------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, object] | None = None) -> dict:
        """One REST call; returns the whole envelope (`result`, `total`, `next`, `time`).

        Paced by the operating-time budget (a batch by its commands' methods too); a whole request
        refused with OPERATION_TIME_LIMIT did not run, so it is sent again once a short block is over.
        """
        params = dict(params or {})
        inner = _inner_methods(params) if method == "batch" else {}
        refusals = 0
        while True:
            self.budget.pace([method, *inner.values()])
            if self.gate is not None:
                self.gate.acquire()
            try:
                answer = self._loop.run_until_complete(self._bx.call(method, params, raw=True))
            except PortalUnreachable as exc:
                raise unreachable(exc, method, self.portal, self.setting) from None
            except Exception as exc:  # classified once, here; the original may carry the webhook URL
                error = classify(exc, method, self._session.rs_last_failure)  # type: ignore[attr-defined]
                self._session.rs_last_failure = ""  # type: ignore[attr-defined]
                if error.crm_code == OPERATION_TIME_LIMIT:
                    self.budget.refused(method)
                    refusals += 1
                    if refusals <= MAX_REFUSED_RESENDS and self.budget.wait_for([method]) <= self.budget.max_wait:
                        continue  # paced above: waits out the block, then sends again
                raise error from None
            break
        if not isinstance(answer, dict) or "result" not in answer:
            raise CrmRequestRejected("the portal answered without a result", crm="bitrix", method=method,
                                     hint="check that BITRIX_WEBHOOK_URL points at a Bitrix24 portal")
        self._learn_budget(method, answer, inner)
        return answer

    def _learn_budget(self, method: str, answer: dict, inner: dict[str, str]) -> None:
        """Operating time as the answer tells it: the request's own, and each command's in a batch."""
        self.budget.see(method, answer.get("time"))
        result = answer.get("result")
        if not inner or not isinstance(result, dict):
            return
        times, errors = result.get("result_time"), result.get("result_error")
        last: dict[str, float] = {}  # each method's `operating` after its previous command here
        for label, block in (times.items() if isinstance(times, dict) else ()):
            if label in inner and isinstance(block, dict):
                self.budget.see(inner[label], block, after=last.get(inner[label]))
                if "operating" in block:
                    last[inner[label]] = float(block["operating"])
        for label, error in (errors.items() if isinstance(errors, dict) else ()):
            if label in inner and isinstance(error, dict) and error.get("error") == OPERATION_TIME_LIMIT:
                self.budget.refused(inner[label])

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


def _inner_methods(params: Mapping[str, object]) -> dict[str, str]:
    """label -> method of each command in a batch's `cmd`."""
    cmd = params.get("cmd")
    items = cmd.items() if isinstance(cmd, Mapping) else enumerate(cmd) if isinstance(cmd, list) else ()
    return {str(label): str(line).partition("?")[0].strip().lower() for label, line in items}


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


_SPENT = {  # the last failure before fast-bitrix24's retries ran out -> what to tell
    "truncated": "the portal's answers kept breaking off before their end (a truncated body)",
    "timeout": f"the portal did not answer within {REQUEST_TIMEOUT_SECONDS} s",
    "dropped": "the portal kept dropping the connection",
}


def classify(exc: BaseException, method: str, last_failure: str = "") -> CrmError:
    """Turn fast-bitrix24 / aiohttp errors into ours. No URL, no body beyond the error code.

    `last_failure` names what went wrong on the last attempt when fast-bitrix24 spent its retries.
    """
    if isinstance(exc, CrmError):
        return exc
    if isinstance(exc, NotAnAnswer):
        if exc.cause == "cut":
            return CrmUnavailable(f"the portal cut the request at {PORTAL_CUT_SECONDS} s and answered its "
                                  "gateway's timeout page", crm="bitrix", method=method, status=exc.status,
                                  hint="the portal took too long over this request; run again later")
        return CrmUnavailable("the portal answered with an HTML page, not JSON: it may be blocked, suspended "
                              "or under maintenance", crm="bitrix", method=method, status=exc.status,
                              hint="open the portal in a browser to see why; run again once it works")
    if isinstance(exc, aiohttp.ContentTypeError):  # a reply that is not JSON, whatever its status
        return CrmUnavailable("the portal's answer is not JSON", crm="bitrix", method=method,
                              status=exc.status or None,
                              hint="check that BITRIX_WEBHOOK_URL points at a Bitrix24 REST endpoint")
    if isinstance(exc, ValueError) and not isinstance(exc, aiohttp.ClientError):  # JSON that ends too soon
        return CrmUnavailable("the portal's answer broke off before its end (not valid JSON)", crm="bitrix",
                              method=method, hint="run again; a lasting fault is the portal's or the network's")
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
        if status == 403 and code == "insufficient_scope" and method:
            scope = scope_of(method)
            return CrmRequestRejected(text, crm="bitrix", method=method, status=status, crm_code=code,
                                      hint=f"add the scope {scope} to the incoming webhook (or the app) and run "
                                           f"again; {method} needs it")
        if status == 403:
            return CrmRequestRejected(text, crm="bitrix", method=method, status=status, crm_code=code,
                                      hint="the webhook's user lacks rights or the webhook lacks a scope "
                                           "(crm, task, user)")
        return CrmRequestRejected(text, crm="bitrix", method=method, status=status, crm_code=code)
    if isinstance(exc, RuntimeError) and "attempts" in str(exc):
        what = _SPENT.get(last_failure, "the portal kept failing (5xx or dropped connections)")
        return CrmUnavailable(f"{what}; retries are spent", crm="bitrix", method=method,
                              hint="nothing is lost: run again later, written actions are not repeated")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return CrmUnavailable(f"cannot reach the portal ({type(exc).__name__})", crm="bitrix", method=method,
                              hint="check the network and BITRIX_WEBHOOK_URL's host")
    return CrmError(f"unexpected failure ({type(exc).__name__})", crm="bitrix", method=method)


# A method's scope is the first part of its name, with the few the docs name otherwise.
# Doc: api-reference/scopes/permissions.md (scopes and their methods)
_SCOPE_OF_PREFIX = {"tasks": "task", "im": "im", "imopenlines": "imopenlines", "bizproc": "bizproc",
                    "catalog": "catalog", "user": "user", "crm": "crm", "placement": "placement"}


def scope_of(method: str) -> str:
    """The scope a REST method belongs to (`crm.deal.list` -> crm, `tasks.task.add` -> task)."""
    head = method.split(".", 1)[0].lower()
    return _SCOPE_OF_PREFIX.get(head, head)
