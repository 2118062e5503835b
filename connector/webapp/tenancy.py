"""One tenant inside `repeat-sales serve`, and how a request finds its tenant.

A `TenantHost` is what a CRM's app side (BitrixApp, AmoApp, the pages) sees as its host: settings, runtime,
installs, workers and public address - every one of them the tenant's own (connector.tenants). The app
sides are built once per tenant, so a route runs against exactly one tenant's tokens, state and playbook.

Which tenant a Bitrix24 request is for comes from the portal's signed fields: `auth[member_id]` (install,
events, robots) or `member_id` (the pages), looked up among the stored installs. A member_id nobody
installed goes to the default tenant, whose own checks then refuse it (its stored member_id and
application_token differ), so a forged member_id reaches no tenant's data. An install from a portal not
yet known becomes a new tenant only once the auth server confirms its tokens (BitrixApp.complete_install).
With no install of its own, the default is the first portal whose install arrives: it is claimed at once
(Installs.claim_default), so another portal installing before a worker stored the first is its own tenant.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connector import registry, tenants
from connector.errors import WebhookRejected
from connector.webapp.forms import text_field
from connector.webapp.runtime import Runtime
from connector.webapp.worker import Job, Worker

if TYPE_CHECKING:  # pragma: no cover
    from connector.webapp import WebApp
    from connector.webapp.http import Request

log = logging.getLogger(__name__)

BITRIX, AMOCRM = "bitrix", "amocrm"
_HOST = re.compile(r"^[a-z0-9.-]{1,200}(:\d{1,5})?$")


class TenantHost:
    """A tenant's settings, runtime, installs and two workers (syncs and jobs; robots' answers apart)."""

    def __init__(self, web: WebApp, tenant: str, crm: str | None = None, base_url: str | None = None) -> None:
        self.web, self.id, self.crm, self.base_url = web, tenant, crm or web.settings.CRM, base_url
        self.installs = web.registry.for_tenant(tenant)
        self.public_url = web.public_url
        self._build(tenants.settings_for(web.settings, tenant, crm, base_url))
        # the workers run what the runtime in force runs (`follow_settings` may replace it)
        self.worker = Worker(self._sync, self._open_state, debounce_seconds=self.settings.EVENT_DEBOUNCE_SECONDS)
        # robots' answers on their own lane: a robot waits seconds, never behind a sync (issue 15, item 5)
        self.robots = Worker(self._sync, self._open_state, debounce_seconds=0)
        self.queued = None  # QUEUE_URL: each job kept in the inbox before the answer, run by `repeat-sales worker`
        if web.settings.QUEUE_URL is not None:
            from connector.jobs.serving import QueuedWork

            self.queued = QueuedWork(self, web.settings)

    def _build(self, settings) -> None:
        """The settings and everything made from them: the runtime and each CRM's app side with its routes."""
        from connector import clock

        self.settings = settings
        today = self.web.given_today or (lambda: clock.today(settings.TIMEZONE))  # the tenant's own zone
        self.runtime = Runtime(settings, today, installs=self.installs)
        self.apps = {crm.name: crm.webapp_class()(self) for crm in registry.CRMS.values()}  # each CRM's side
        self.routes = {key: handler for app in self.apps.values() for key, handler in app.routes().items()}
        self.prefixes = {p: handler for app in self.apps.values() for p, handler in app.prefix_routes().items()}

    def follow_settings(self) -> bool:
        """`repeat-sales tenants set/unset` while `serve` runs: the tenant's settings read again, and its
        runtime and app sides made anew when they changed (requests already running finish on the old)."""
        if self.id == tenants.DEFAULT:
            return False  # the `.env`'s: read at start, as ever
        fresh = tenants.settings_for(self.web.settings, self.id, self.crm, self.base_url)
        if fresh == self.settings:
            return False
        self._build(fresh)
        log.info("tenant=%s settings changed: in force from now on", self.id)
        return True

    def _sync(self, state, **kw):
        return self.runtime.sync(state, **kw)

    def _open_state(self):
        return self.runtime.open_state()

    def start(self) -> TenantHost:
        if self.queued is None:  # with QUEUE_URL the workers are `repeat-sales worker` processes
            self.worker.start()
            self.robots.start()
        return self

    def alive(self) -> bool:
        """The tenant's in-process workers run (always, with QUEUE_URL: they are other processes)."""
        return self.queued is not None or (self.worker.alive() and self.robots.alive())

    def stop(self, timeout: float) -> None:
        self.robots.stop(timeout)
        self.worker.stop(timeout)

    # --- what the CRM app sides call on their host ------------------------------------------------

    def submit(self, job: Job) -> None:
        (self.queued or self.worker).submit(job)

    def submit_robot(self, job: Job) -> None:
        """A robot's answer: run at once on the robots' lane (its `sync` and `after_sync` are not used)."""
        if self.queued is not None:
            self.queued.submit_robot(job)
        else:
            self.robots.submit(job)

    def request_sync(self, *, crm_event: bool = False) -> None:
        (self.queued or self.worker).request_sync(crm_event=crm_event)

    def require_admin(self, request: Request) -> None:
        self.web.require_admin(request)


def bitrix_tenant(web: WebApp, path: str, request: Request) -> str:
    """The tenant a Bitrix24 request is signed for (see the module's docstring)."""
    form = request.form()
    member = text_field(form, "auth", "member_id", max_len=64) or text_field(form, "member_id", max_len=64)
    found = web.registry.tenant_of(BITRIX, member) if member else None
    if found is not None:
        return found
    if path != "/bitrix/install" or not member:
        return tenants.DEFAULT
    default = web.registry.get(BITRIX)
    if web.settings.CRM == BITRIX and (default.get("member_id") == member if default is not None
                                       else web.registry.claim_default(BITRIX, member)):
        return tenants.DEFAULT  # the `.env`'s portal (the first to install): the single-portal app, as before
    if not tenants.valid_id(member):
        raise WebhookRejected(400, "auth[member_id] is not a portal id")
    return member


def amocrm_tenant(web: WebApp, path: str, request: Request) -> tuple[str, str | None]:
    """The tenant an amoCRM request is for, and a new account's address (the OAuth redirect only).

    The redirect names its account (`referer`): the `.env`'s account is the default tenant, another account
    of the same amoCRM (the same parent domain as AMOCRM_BASE_URL: the integration's secret is only ever
    sent there) is a tenant of its own. The widget's session names its account in the one-time token's
    issuer, a page address in its signed `account`, a webhook delivery in `account[id]`; each tenant's own
    checks then verify the signature, secret and account, so a name nobody connected reaches the default
    tenant's checks and is refused there."""
    settings = web.settings
    if path == "/amocrm/oauth":
        referer = str(request.query.get("referer") or "").strip().lower()
        base = urlsplit((settings.AMOCRM_BASE_URL or "").strip())
        if not referer or (settings.CRM == AMOCRM and referer == base.netloc.lower()) \
                or not _same_amocrm(referer, base.hostname or ""):
            return tenants.DEFAULT, None  # a foreign address: the default's checks spend the state and refuse
        return tenants.amocrm_id(referer), f"{base.scheme}://{referer}"
    if path.startswith("/amocrm/webhook/"):
        found = web.registry.tenant_of(AMOCRM, text_field(request.form(), "account", "id", max_len=20))
        return found or tenants.DEFAULT, None
    if path == "/amocrm/widget/session":
        host = _issuer(request.headers.get("x-auth-token", ""))
        tenant = tenants.amocrm_id(host) if host else ""
        known = tenant and web.registry.for_tenant(tenant).get(AMOCRM)
        return (tenant if known else tenants.DEFAULT), None
    if path.startswith("/amocrm/widget/"):
        given = dict(request.query) if request.method == "GET" else request.form()
        found = web.registry.tenant_of(AMOCRM, text_field(given, "account", max_len=20))
        return found or tenants.DEFAULT, None
    return tenants.DEFAULT, None


def _same_amocrm(referer: str, base_host: str) -> bool:
    """Whether `referer` is an account of the same amoCRM as AMOCRM_BASE_URL (`*.amocrm.ru`; a local
    emulator's loopback address for a loopback one)."""
    from connector.settings import is_loopback

    if not _HOST.match(referer) or not base_host:
        return False
    host = referer.rsplit(":", 1)[0]
    if is_loopback(base_host):
        return is_loopback(host)
    parent = base_host.lower().split(".", 1)[1] if "." in base_host else ""
    return "." in parent and host.endswith("." + parent)


def _issuer(token: str) -> str:
    """The account host a widget's one-time token claims (unverified: it only picks whose checks run)."""
    parts = (token or "").split(".")
    if len(parts) != 3 or len(token) > 4096:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return ""
    issuer = str(claims.get("iss") or "") if isinstance(claims, dict) else ""
    host = (urlsplit(issuer).netloc or issuer).lower()
    return host if _HOST.match(host) else ""
