"""The one place that talks HTTP to an amoCRM account (the only importer of `requests`).

One request function: a client-side limiter keeps us under the account's requests-per-second
limit, tenacity retries what is safe to retry (reads: 429, 5xx, lost connections; writes and
token calls: only what surely did not run), a 401 gets one token refresh, and every failure is
classified here, once, into `connector.errors` with no URL and no token in the message.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connector.errors import (
    CrmAuthError,
    CrmError,
    CrmRateLimited,
    CrmRequestRejected,
    CrmUnavailable,
    CrmUnreachable,
)

log = logging.getLogger(__name__)

CRM = "amocrm"
TOKEN_PATH = "/oauth2/access_token"  # Doc: developers.kommo.com/reference/get-token - on the account host
REQUESTS_PER_SECOND = 7.0  # Doc: developers.kommo.com/docs/limitations - "not more than 7 requests per second"
WINDOW_MARGIN_SECONDS = 0.1  # our 1 s window is a little longer than the server's, so clocks may disagree
REQUEST_TIMEOUT_SECONDS = 60
MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 60.0  # a longer Retry-After is not waited out in-process: the run stops, the next goes on
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
ERROR_BODY_CHARS = 200
USER_AGENT = "repeat-sales/0.1 (+amoCRM API v4)"

Kind = Literal["read", "write", "token"]
_ID_RE = re.compile(r"/\d+(?=/|$)")


class TokenSource(Protocol):
    """What the client needs from auth: the current access token and, maybe, a refresh."""

    can_refresh: bool
    refused_hint: str

    def token(self) -> str: ...

    def refresh(self, stale: str) -> str: ...


class AmoValidationError(CrmRequestRejected):
    """HTTP 400 with `validation-errors`: which items of a batch (by `request_id`) were refused, and why.

    Doc: amocrm.com/developers/content/api/errors - a refused batch writes nothing.
    """

    def __init__(self, message: str, *, errors: dict[str, str], **kw) -> None:
        super().__init__(message, **kw)
        self.errors = errors


class AmoBlocked(CrmRequestRejected):
    """HTTP 403 with the gateway's page: the client's address is blocked after repeated 429s.

    Doc: developers.kommo.com/docs/limitations - requests from the IP are restricted; support lifts it.
    """


@dataclass
class _Failed(Exception):
    """One attempt's failure, as tenacity sees it: the error plus what is safe to do about it."""

    error: CrmError
    not_run: bool = False  # the server surely did not act on it (429, connection refused)
    wait: float | None = None  # the server's own wait (Retry-After header or `retry_after` in the body)
    final: bool = False  # never retried: no connection can be made (DNS, refused, TLS)


def path_template(path: str) -> str:
    """`/api/v4/leads/17/links` -> `/api/v4/leads/{id}/links`: a method name fit for logs and stats."""
    return _ID_RE.sub("/{id}", path)


class RateLimiter:
    """At most `per_second` requests in any sliding window of one second (plus a margin)."""

    def __init__(self, per_second: float, *, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.capacity = max(1, int(per_second))
        self.window = 1.0 + WINDOW_MARGIN_SECONDS if per_second >= 1 else 1.0 / per_second
        self.clock, self.sleep = clock, sleep
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = self.clock()
            while self.sent and now - self.sent[0] >= self.window:
                self.sent.popleft()
            if len(self.sent) >= self.capacity:
                self.sleep(max(0.0, self.sent[0] + self.window - now))
                self.sent.popleft()
                now = max(now, self.clock())
            self.sent.append(now)


class AmoClient:
    """HTTP to one account. `request` is the only function that sends; everything else calls it."""

    def __init__(self, base_url: str, *, auth: TokenSource | None = None,
                 requests_per_second: float = REQUESTS_PER_SECOND, max_attempts: int = MAX_ATTEMPTS,
                 max_wait_seconds: float = MAX_WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        parsed = urlparse(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("the amoCRM base URL must look like https://subdomain.amocrm.ru")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}"
        self.host = parsed.netloc
        self.auth = auth
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.max_wait_seconds = max_wait_seconds
        self.timeout = timeout
        self.limiter = RateLimiter(requests_per_second, clock=clock, sleep=sleep)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/hal+json, application/json"})
        self.requests = 0
        self.requests_by_method: Counter[str] = Counter()

    def close(self) -> None:
        self.session.close()

    # --- the one request function ------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, kind: Kind = "read") -> Any:
        """Send one call; returns the parsed JSON body, or None for an empty answer (204).

        Reads retry on 429 (after the server's wait), 5xx and lost connections; writes and token
        calls retry only on 429 and refused connections, since anything else may have been applied.
        """
        name = f"{method} {path_template(path)}"

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, _Failed):
                return False
            if exc.final or (exc.wait is not None and exc.wait > self.max_wait_seconds):
                return False
            return exc.not_run if kind != "read" else exc.error.retryable

        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), retry=retry_if_exception(retryable),
                            wait=self._wait, sleep=self.sleep, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, name, params, json_body, kind)
        except _Failed as failed:
            raise failed.error from None
        return None  # pragma: no cover - Retrying either returns or raises

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Failed) and exc.wait is not None:
            return exc.wait
        backoff = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (state.attempt_number - 1))
        return backoff * (0.75 + random.random() / 2)

    def _attempt(self, method: str, path: str, name: str, params, json_body, kind: Kind) -> Any:
        token = self.auth.token() if self.auth is not None and kind != "token" else None
        response = self._send(method, path, name, params, json_body, token)
        if response.status_code == 401 and token is not None and self.auth.can_refresh:
            # Doc: developers.kommo.com/docs/oauth-20 - an expired access token is refreshed once; a
            # 401 means the call was not run, so sending it again is safe even for a write
            fresh = self.auth.refresh(token)
            response = self._send(method, path, name, params, json_body, fresh)
        return self._parse(response, name, kind)

    def _send(self, method: str, path: str, name: str, params, json_body, token: str | None) -> requests.Response:
        self.limiter.acquire()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.requests += 1
        self.requests_by_method[name] += 1
        started = time.monotonic()
        try:
            response = self.session.request(method, self.base_url + path, params=params, json=json_body,
                                            headers=headers, timeout=self.timeout)
        except requests.ConnectionError as exc:
            cause = _unreachable(exc)
            if cause is not None:  # no connection at all: a setting or the host is wrong, retrying cannot help
                log.warning("amocrm method=%s error=unreachable cause=%s", name, cause[0])
                raise _Failed(_unreachable_error(cause, self.host, name), final=True) from None
            refused = _refused(exc)
            log.warning("amocrm method=%s error=%s refused=%s", name, type(exc).__name__, refused)
            raise _Failed(CrmUnavailable(f"cannot reach the account ({'connection refused' if refused else 'connection lost'})",
                                         crm=CRM, method=name,
                                         hint="check the network and AMOCRM_BASE_URL; nothing is lost, run again"),
                          not_run=refused) from None
        except requests.Timeout:
            raise _Failed(CrmUnavailable("the account did not answer in time", crm=CRM, method=name,
                                         hint="amoCRM is slow or overloaded; run again later")) from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            # the server (or a proxy) closed the connection mid-answer: a write may have run
            log.warning("amocrm method=%s error=answer_cut_short", name)
            raise _Failed(CrmUnavailable("the answer was cut short (the connection closed mid-answer)", crm=CRM,
                                         method=name, hint="a network or gateway fault; nothing is lost, "
                                                           "run again")) from None
        except requests.RequestException as exc:
            raise _Failed(CrmUnavailable(f"request failed ({type(exc).__name__})", crm=CRM, method=name)) from None
        log.debug("amocrm method=%s status=%s elapsed=%.3f", name, response.status_code, time.monotonic() - started)
        return response

    def _parse(self, response: requests.Response, name: str, kind: Kind) -> Any:
        status = response.status_code
        if status in (200, 201, 202, 204):  # Doc: amocrm-api-php AmoCRMApiRequest - the success codes
            if status == 204 or not response.content.strip():
                return None  # Doc: amocrm.ru/developers/content/crm_platform/tags-api - 204 = nothing found
            try:
                return response.json()
            except ValueError:
                raise _Failed(not_json(response, name, status)) from None
        raise classify(status, response, name, kind, self.auth)


def _refused(exc: requests.ConnectionError) -> bool:
    """True when the TCP connection was never made, so the server cannot have acted."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or "NewConnectionError" in type(cause).__name__:
            return True
        cause = cause.__cause__ or cause.__context__ or (cause.args[0] if cause.args and
                                                          isinstance(cause.args[0], BaseException) else None)
    return "Connection refused" in str(exc)


def _chain(exc: BaseException):
    """The exception and everything it wraps (requests -> urllib3 -> socket/ssl)."""
    seen, todo = set(), [exc]
    while todo:
        cause = todo.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        todo += [c for c in (cause.__cause__, cause.__context__, getattr(cause, "reason", None), *cause.args)
                 if isinstance(c, BaseException)]


def _unreachable(exc: requests.ConnectionError) -> tuple[str, str] | None:
    """("dns"|"refused"|"tls", detail) when no connection could be made at all; None for a lost one."""
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, requests.exceptions.SSLError | ssl.SSLError):
            ssl_error = next((c for c in chain if isinstance(c, ssl.SSLError)), None)
            return "tls", getattr(ssl_error, "reason", None) or "handshake failed"
    gaierror = next((c for c in chain if isinstance(c, socket.gaierror)), None)
    if gaierror is not None:
        return "dns", gaierror.strerror or str(gaierror)
    if any(type(c).__name__ == "NameResolutionError" for c in chain):  # urllib3 2, should the gaierror be gone
        return "dns", "name resolution failed"
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "refused", "connection refused"
    return None


def _unreachable_error(cause: tuple[str, str], host: str, name: str) -> CrmUnreachable:
    """The cause by name and AMOCRM_BASE_URL as the setting to fix; never the token."""
    kind, detail = cause
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if kind == "dns":
        text = f"the host name {bare} does not resolve (DNS: {detail})"
        hint = "check the account's address in AMOCRM_BASE_URL, e.g. https://subdomain.amocrm.ru"
    elif kind == "tls":
        text = f"the TLS handshake with {host} failed ({detail})"
        hint = ("check AMOCRM_BASE_URL: https:// for amoCRM, http:// only for a plain server such as the "
                "emulator; a certificate error means the server's certificate is not trusted here")
    else:
        text = f"{host} refused the connection (nothing listens there)"
        hint = "check the host and port in AMOCRM_BASE_URL and that the server is up"
    return CrmUnreachable(text, crm=CRM, method=name, hint=hint)


def is_html(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "").lower()
    return "html" in kind or response.content[:256].lstrip().lower().startswith((b"<html", b"<!doctype"))


def not_json(response: requests.Response, name: str, status: int) -> CrmUnavailable:
    """A success status whose body is not the API's JSON: a gateway's HTML page, or a body cut short.

    Doc: amocrm-api-php#526 - gateway pages arrive as HTML. Either may pass on its own, so a read tries
    again; a write's fate is unknown and is settled by its markers.
    """
    if is_html(response):
        return CrmUnavailable("the account answered with an HTML page, not the API's JSON", crm=CRM, method=name,
                              status=status, hint="a gateway in front of amoCRM failed, or AMOCRM_BASE_URL is not "
                                                  "the account's address (https://subdomain.amocrm.ru)")
    return CrmUnavailable("the answer is not complete JSON (cut short)", crm=CRM, method=name, status=status,
                          hint="a network or gateway fault; nothing is lost, run again")


def _body(response: requests.Response) -> dict:
    try:
        body = json.loads(response.content[:65536] or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: requests.Response, body: dict) -> float | None:
    header = response.headers.get("Retry-After")
    for value in (header, body.get("retry_after")):
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return None


def _text(body: dict, fallback: str) -> str:
    text = str(body.get("detail") or body.get("hint") or body.get("title") or fallback)
    return text[:ERROR_BODY_CHARS]


def classify(status: int, response: requests.Response, name: str, kind: Kind,
             auth: TokenSource | None) -> _Failed:
    """An HTTP error answer -> our hierarchy (wrapped for the retry loop). No URL, a cut body."""
    body = _body(response)
    kw = {"crm": CRM, "method": name, "status": status}
    if kind == "token" and status in (400, 401, 403):
        # Doc: developers.kommo.com/docs/oauth-20 - a used, expired or revoked code/refresh token
        return _Failed(CrmAuthError(_text(body, "the token request was refused"), **kw,
                                    hint=getattr(auth, "refused_hint", "") or "grant access again"))
    if status == 401:  # Doc: developers.kommo.com/docs/http-codes - bad, expired or revoked token
        return _Failed(CrmAuthError(_text(body, "unauthorized"), **kw,
                                    hint=getattr(auth, "refused_hint", "") or "check AMOCRM_ACCESS_TOKEN"))
    if status == 429:  # Doc: developers.kommo.com/docs/http-codes - `retry_after` in the body
        wait = _retry_after(response, body)
        asked = f"amoCRM asks to wait {wait:.0f} s; " if wait else ""
        return _Failed(CrmRateLimited(_text(body, "too many requests"), retry_after=wait, **kw,
                                      hint=f"{asked}the account's requests-per-second limit was hit; "
                                           "run again later"),
                       not_run=True, wait=wait)
    if status == 402:
        return _Failed(CrmRequestRejected(_text(body, "payment required"), **kw,
                                          hint="the amoCRM account's paid period is over; renew it"))
    if status == 403:
        if not body:  # Doc: developers.kommo.com/docs/limitations - an IP block answers a bare 403 page
            return _Failed(AmoBlocked("access blocked", **kw,
                                              hint="amoCRM blocks clients that keep exceeding 7 requests per "
                                                   "second; wait, or ask amoCRM support to lift the block"))
        return _Failed(CrmRequestRejected(_text(body, "forbidden"), **kw,
                                          hint="the token's user lacks rights for this; use an admin's grant"))
    if status == 400 and isinstance(body.get("validation-errors"), list):
        errors: dict[str, str] = {}
        for item in body["validation-errors"]:
            if isinstance(item, dict):
                reasons = [f"{e.get('path', '?')}: {e.get('detail', e.get('code', 'invalid'))}"
                           for e in item.get("errors") or [] if isinstance(e, dict)]
                errors[str(item.get("request_id"))] = "; ".join(reasons)[:ERROR_BODY_CHARS] or "invalid"
        return _Failed(AmoValidationError(_text(body, "validation failed"), errors=errors, **kw))
    if status == 404:
        return _Failed(CrmRequestRejected(_text(body, "not found"), **kw,
                                          hint="check AMOCRM_BASE_URL (the account's own address)"))
    if status >= 500:
        fallback = "server error (an HTML page from a gateway)" if is_html(response) else "server error"
        return _Failed(CrmUnavailable(_text(body, fallback), **kw,
                                      hint="amoCRM is failing; nothing is lost, run again later"))
    return _Failed(CrmRequestRejected(_text(body, "request refused"), **kw))
