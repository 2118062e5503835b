"""The Bitrix24 side of the webhook app: the install callback, events, and the robots' handler.

Doc: api-reference/common/events/on-app-install.md and settings/app-installation/local-apps/
installation-callback.md (ONAPPINSTALL form with `auth[...]`); api-reference/events/index.md and
safe-event-handlers.md (payloads carry `auth[application_token]` and `auth[member_id]`: compare them
with what the install gave; events are never redelivered, so answer at once and queue);
api-reference/events/event-bind.md (handlers are dropped on reinstall: bind in every install);
api-reference/bizproc/bizproc-robot/bizproc-robot-add.md, bizproc-event-send.md (robots with
RETURN_PROPERTIES, answered with the call's `event_token`).

Rights are read first at install (rights.py): robots need an administrator and the `bizproc` scope, and
without them only the events are bound and the install says what is missing. A robot is answered on its
own lane from that one customer's fresh data (robot.py), in seconds, never after a sync; a deal deleted
in the portal (ONCRMDEALDELETE, Doc: api-reference/crm/deals/events/on-crm-deal-delete.md) leaves the
history at once.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from connector.bitrix.app_auth import CRM, app_tokens
from connector.bitrix.client import BitrixClient
from connector.bitrix.install import install as prepare_portal
from connector.bitrix.mapping import GenderSource, customer_ref, text
from connector.bitrix.rights import read_rights
from connector.bitrix.robot import read_customer
from connector.crm import PullPage
from connector.errors import CrmAuthError, CrmError, CrmRequestRejected, WebhookRejected
from connector.installs import DEFAULT_TENANT, Installs
from connector.state import State
from connector.webapp.classify import calendar, classification
from connector.webapp.forms import text_field
from connector.webapp.worker import Job

if TYPE_CHECKING:  # pragma: no cover
    from connector.settings import Settings
    from connector.webapp import WebApp

log = logging.getLogger(__name__)

BOUND_EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMCONTACTUPDATE", "ONAPPUNINSTALL")
SYNC_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMCONTACTADD", "ONCRMCONTACTUPDATE",
                         "ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE"})
TABS = ("CRM_CONTACT_DETAIL_TAB", "CRM_COMPANY_DETAIL_TAB")
TAB_TITLE = {"ru": "Повторные продажи", "en": "Repeat sales"}
CLASSIFY = "rs_classify_customer"
CALENDAR = "rs_post_purchase_calendar"
# Each install is checked with the auth server; unauthenticated callers must not make us hammer it
# (Doc: settings/oauth/auto-renewal.md - needless load can get an app blocked).
INSTALL_CHECKS_PER_WINDOW = 5
INSTALL_WINDOW_SECONDS = 600
_DOCUMENT = re.compile(r"^(DEAL|CONTACT|COMPANY|LEAD)_(\d{1,18})$")
CONFIRMED_TOKEN_SECONDS = 600  # an access token app.info confirmed is not asked about again for this long
_TEXT = {"Type": "string"}


def robot_fields(handler: str, user_id: int) -> dict[str, dict]:
    """The two robots, as bizproc.robot.add takes them (without CODE)."""
    deal = ["crm", "CCrmDocumentDeal", "DEAL"]
    only = {"INCLUDE": [["crm", "CCrmDocumentDeal"], ["crm", "CCrmDocumentContact"], ["crm", "CCrmDocumentCompany"]]}
    return {
        CLASSIFY: {
            "HANDLER": handler, "AUTH_USER_ID": user_id, "USE_SUBSCRIPTION": "Y", "DOCUMENT_TYPE": deal, "FILTER": only,
            "NAME": {"ru": "Классифицировать клиента", "en": "Classify the customer"},
            "DESCRIPTION": {"ru": "Сегмент, RFM, уровень и дата следующей покупки по истории покупок",
                            "en": "Segment, RFM, tier and next purchase date from the purchase history"},
            "RETURN_PROPERTIES": {
                "segment": {"Name": {"ru": "Сегмент", "en": "Segment"}, **_TEXT},
                "rfm": {"Name": {"ru": "RFM", "en": "RFM"}, **_TEXT},
                "tier": {"Name": {"ru": "Уровень", "en": "Tier"}, **_TEXT},
                "lifecycle": {"Name": {"ru": "Стадия жизненного цикла", "en": "Lifecycle stage"}, **_TEXT},
                "value": {"Name": {"ru": "Ценность", "en": "Value level"}, **_TEXT},
                "next_purchase_date": {"Name": {"ru": "Дата следующей покупки", "en": "Next purchase date"},
                                       "Type": "date"}}},
        CALENDAR: {
            "HANDLER": handler, "AUTH_USER_ID": user_id, "USE_SUBSCRIPTION": "Y", "DOCUMENT_TYPE": deal,
            "FILTER": {"INCLUDE": [["crm", "CCrmDocumentDeal"]]},
            "NAME": {"ru": "Запустить календарь после покупки", "en": "Start the post-purchase calendar"},
            "DESCRIPTION": {"ru": "Планирует шаги календаря по этой сделке сейчас, а не при следующем запуске",
                            "en": "Plans this deal's calendar steps now rather than at the next scheduled run"},
            "RETURN_PROPERTIES": {
                "planned_actions": {"Name": {"ru": "Запланировано действий", "en": "Actions planned"}, "Type": "int"},
                "next_step_date": {"Name": {"ru": "Дата следующего шага", "en": "Next step date"}, "Type": "date"}}},
    }


def bind_tabs(client: BitrixClient, handler: str) -> list[str]:
    """The customer's tab in contact and company cards, pointing at this server only: a handler left by an
    earlier address is unbound first, so a moved server never leaves a dead tab behind."""
    bound = client.call("placement.get")["result"] or []
    for placement in TABS:
        stale = [b for b in bound if str(b.get("placement", "")).upper() == placement and b.get("handler") != handler]
        for b in stale:
            client.call("placement.unbind", {"PLACEMENT": placement, "HANDLER": b.get("handler")})
        if not any(str(b.get("placement", "")).upper() == placement and b.get("handler") == handler for b in bound):
            client.call("placement.bind", {"PLACEMENT": placement, "HANDLER": handler, "TITLE": TAB_TITLE["ru"],
                                           "LANG_ALL": {lang: {"TITLE": t} for lang, t in TAB_TITLE.items()}})
    return list(TABS)


def prepare_installed(settings: Settings, installs: Installs, public_url: str, user_id: int) -> dict:
    """Prepare the portal the app is installed in, on its stored tokens: events, robots, tabs, card fields and
    the SMS trigger (as `repeat-sales install` does), and keep in its install what it has now. The install
    does it once; `install --tenant ID` again (an admin deleted a field or a robot; the app's fields grew).
    What it did: {"report": the card fields' InstallReport, "robots", "robots_added", "tabs", "missing"}."""
    events_url, robot_url = f"{public_url}/bitrix/events", f"{public_url}/bitrix/robot"
    client = app_client(settings, installs)
    try:
        rights = read_rights(client)  # first: what this user and these scopes allow
        app = client.call("app.info")["result"]  # who we are, to confirm robot calls' tokens later
        bound = {(str(b.get("event", "")).upper(), b.get("handler")) for b in client.call("event.get")["result"]}
        for event in BOUND_EVENTS:
            if (event, events_url) not in bound:
                client.call("event.bind", {"event": event, "handler": events_url})
        robots: list[str] = []
        present: set[str] = set()
        if rights.allows("robots"):
            present = set(client.call("bizproc.robot.list")["result"] or [])
            for code, fields in robot_fields(robot_url, user_id).items():
                if code in present:
                    client.call("bizproc.robot.update", {"CODE": code, "FIELDS": fields})
                else:
                    client.call("bizproc.robot.add", {"CODE": code, **fields})
            robots = [CLASSIFY, CALENDAR]
        tabs = bind_tabs(client, f"{public_url}/bitrix/tab") if rights.allows("tabs") else []
        # the portal prepared as `repeat-sales install` does: card fields, and the SMS trigger the admin binds
        # the robot "Send SMS" to (README); a portal whose installer is no admin says what is missing
        prepared = prepare_portal(client, rights=rights)
    finally:
        client.close()
    missing = [gap["message"] for gap in rights.missing(["robots", "tasks", "workflows", "tabs"])]
    missing += [line for line in prepared.missing if line not in missing]
    with installs.locked(CRM) as slot:
        if slot.data:
            slot.save({**slot.data, "events": list(BOUND_EVENTS), "robots": robots, "tabs": tabs, "missing": missing,
                       "fields": prepared.created + prepared.existing,
                       "app": {"ID": app.get("ID"), "CODE": app.get("CODE")}, "public_url": public_url})
    return {"report": prepared, "robots": robots, "robots_added": [r for r in robots if r not in present], "tabs": tabs,
            "missing": missing}


def app_client(settings: Settings, installs: Installs) -> BitrixClient:
    from connector.bitrix import share_budget

    tokens = app_tokens(settings, installs)
    return share_budget(BitrixClient(tokens.grant().client_endpoint, oauth_token=tokens.token_func,
                                     requests_per_second=settings.BITRIX_REQUESTS_PER_SECOND,
                                     request_pool=settings.BITRIX_REQUEST_POOL), settings)


def _same(given: str, stored: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), stored.encode())


class BitrixApp:
    def __init__(self, host: WebApp) -> None:
        self.host = host
        self.settings = host.settings
        self.installs = host.installs
        self._install_checks: deque[float] = deque()
        self._install_lock = threading.Lock()
        self._confirmed: dict[str, float] = {}  # digests of robot tokens app.info confirmed, and when
        from connector.webapp.pages import BitrixPages

        # the app's page, its settings and the customer's tab
        self.pages = BitrixPages(host, lambda: app_client(self.settings, self.installs))

    def routes(self) -> dict:
        """(method, path) -> handler, served by `repeat-sales serve` (design.md "Webhook app routes")."""
        return {("POST", "/bitrix/install"): self.on_install, ("POST", "/bitrix/events"): self.on_event,
                ("POST", "/bitrix/robot"): self.on_robot, **self.pages.routes()}

    def prefix_routes(self) -> dict:
        return {}

    @staticmethod
    def install_status(stored: dict) -> dict:
        """The installed app as GET /status shows it (no secret)."""
        return {"portal": stored.get("domain"), "installed_at": stored.get("installed_at"),
                "events": stored.get("events", []), "robots": stored.get("robots", []),
                "missing": stored.get("missing", [])}

    def _configured(self) -> None:
        if self.settings.BITRIX_APP_CLIENT_ID is None or self.settings.BITRIX_APP_CLIENT_SECRET is None:
            raise WebhookRejected(404, "the Bitrix24 app is not configured (BITRIX_APP_CLIENT_ID/SECRET)")

    def _verify(self, form: dict) -> dict:
        """The stored application_token and member_id, both, in constant time; anything else is 401
        and nothing happens (Doc: api-reference/events/safe-event-handlers.md)."""
        token, member = text_field(form, "auth", "application_token"), text_field(form, "auth", "member_id")
        stored = self.installs.get(CRM) or {}
        token_ok = _same(token, str(stored.get("application_token", "")))
        member_ok = _same(member, str(stored.get("member_id", "")))
        if not (stored and token_ok and member_ok):
            raise WebhookRejected(401, "not from the portal that installed the app")
        return stored

    # --- POST /bitrix/install ---------------------------------------------------------------

    def on_install(self, request):
        self._configured()
        form = request.form()
        if text_field(form, "event").upper() != "ONAPPINSTALL":
            raise WebhookRejected(400, "expected event=ONAPPINSTALL")
        auth = {k: text_field(form, "auth", k) for k in ("access_token", "refresh_token", "member_id",
                                                         "application_token", "domain", "scope")}
        if not all(auth[k] for k in ("access_token", "refresh_token", "member_id", "application_token")):
            raise WebhookRejected(400, "auth[access_token|refresh_token|member_id|application_token] are required")
        stored = self.installs.get(CRM)
        if stored and not _same(auth["member_id"], str(stored.get("member_id", ""))):
            raise WebhookRejected(403, "the app is installed in another portal; uninstall it there first")
        key = f"bitrix-install:{auth['member_id']}:{auth['application_token']}:{auth['refresh_token']}"
        if not self.installs.first_seen(key):
            return 200, {"ok": True, "duplicate": True}
        if not self._may_check_install():
            self.installs.forget_seen(key)
            return 429, {"error": "too many installs; try again later"}, {"Retry-After": str(INSTALL_WINDOW_SECONDS)}
        try:  # the tokens are checked with the auth server by the worker; until then nothing is stored.
            # `sync=True`: once the portal is prepared, the tenant's first sync follows on its own worker
            self.host.submit(Job("bitrix.install", run=partial(self.complete_install, auth), sync=True))
        except Exception:
            self.installs.forget_seen(key)
            raise
        return 200, {"ok": True, "status": "installing"}

    def _may_check_install(self) -> bool:
        now = time.monotonic()
        with self._install_lock:
            while self._install_checks and now - self._install_checks[0] > INSTALL_WINDOW_SECONDS:
                self._install_checks.popleft()
            if len(self._install_checks) >= INSTALL_CHECKS_PER_WINDOW:
                return False
            self._install_checks.append(now)
            return True

    def complete_install(self, auth: dict, state: State) -> None:
        try:
            grant = app_tokens(self.settings, self.installs).adopt(auth)
        except CrmAuthError:  # refused: a claim on the default tenant (tenancy.bitrix_tenant) lapses now
            if self.installs.tenant == DEFAULT_TENANT:
                self.installs.release_default(CRM, str(auth.get("member_id") or ""))
            raise
        done = prepare_installed(self.settings, self.installs, self.host.public_url, grant.user_id)
        for line in done["missing"]:
            log.warning("bitrix app install: %s", line)
        log.info("bitrix app=installed portal=%s events=%d robots=%d", grant.portal, len(BOUND_EVENTS),
                 len(done["robots"]))

    # --- POST /bitrix/events -----------------------------------------------------------------

    def on_event(self, request):
        self._configured()
        form = request.form()
        stored = self._verify(form)
        event = text_field(form, "event").upper()
        if event == "ONAPPUNINSTALL":
            self.host.submit(Job("bitrix.uninstall", run=partial(self._forget, stored.get("application_token"))))
            return 200, {"ok": True, "status": "uninstalling"}
        if event not in SYNC_EVENTS and event != "ONCRMDEALDELETE":
            return 200, {"ok": True, "ignored": event}
        entity = text_field(form, "data", "FIELDS", "ID", max_len=20)
        if not entity.isdigit():
            raise WebhookRejected(400, "data[FIELDS][ID] must be a number")
        key = f"bitrix-event:{stored['member_id']}:{event}:{entity}:{text_field(form, 'ts', max_len=20)}"
        if not self.installs.first_seen(key):
            return 200, {"ok": True, "duplicate": True}
        try:
            if event == "ONCRMDEALDELETE":  # an incremental read never sees a deleted deal: drop it now
                self.host.submit(Job("bitrix.deal_deleted", run=partial(self._forget_purchase, entity), sync=True))
            else:  # maybe the echo of the app's own write: the sync checks before it plans (connector.quiet)
                self.host.request_sync(crm_event=True)
        except Exception:
            self.installs.forget_seen(key)
            raise
        return 200, {"ok": True, "status": "queued"}

    def _forget_purchase(self, deal_id: str, state: State) -> None:
        """A deleted deal is no purchase any more: out of the snapshot before the sync that follows."""
        account = self.host.runtime.account()
        state.absorb(account, PullPage(removed_purchase_ids=[deal_id]), run_id=0)
        log.info("bitrix deal=%s deleted: left the history", deal_id)

    def _forget(self, application_token: str, state: State) -> None:
        with self.installs.locked(CRM) as slot:
            if slot.data and slot.data.get("application_token") == application_token:
                slot.delete()  # tokens gone with the app; a reinstall starts afresh
                log.info("bitrix app=uninstalled")

    # --- POST /bitrix/robot ------------------------------------------------------------------

    def on_robot(self, request):
        self._configured()
        form = request.form()
        self._verify_robot(form)
        code = text_field(form, "code", max_len=64)
        token = text_field(form, "event_token", max_len=1024)
        doc = form.get("document_id")
        last = (list(doc.values()) if isinstance(doc, dict) else [doc])[-1] if doc else ""
        match = _DOCUMENT.match(last) if isinstance(last, str) else None
        if code not in (CLASSIFY, CALENDAR) or not token or match is None:
            raise WebhookRejected(400, "expected code, event_token and document_id of a known robot")
        key = f"bitrix-robot:{token}"
        if not self.installs.first_seen(key):
            return 200, {"ok": True, "duplicate": True}
        call = {"code": code, "token": token, "kind": match.group(1), "id": match.group(2)}
        try:  # answered on the robots' lane at once; the sync that writes its steps follows on the main one
            self.host.submit_robot(Job(f"bitrix.robot.{code}", run=partial(self.answer_robot, call)))
        except Exception:
            self.installs.forget_seen(key)
            raise
        self.host.request_sync()
        return 200, {"ok": True, "status": "queued"}

    def _verify_robot(self, form: dict) -> None:
        """`auth[application_token]` as for events; without it, the call's access token as this app's on the
        installed portal (app.info); anything else 401, and nothing happens."""
        if text_field(form, "auth", "application_token"):
            self._verify(form)
            return
        stored = self.installs.get(CRM) or {}
        member, access = text_field(form, "auth", "member_id"), text_field(form, "auth", "access_token", max_len=512)
        if not (stored and access and _same(member, str(stored.get("member_id", "")))):
            raise WebhookRejected(401, "not from the portal that installed the app")
        digest = hmac.new(b"robot-token", access.encode(), "sha256").hexdigest()
        with self._install_lock:
            now = time.monotonic()
            self._confirmed = {t: at for t, at in self._confirmed.items() if now - at < CONFIRMED_TOKEN_SECONDS}
            if digest in self._confirmed:
                return
        mine = stored.get("app") or {}
        try:
            info = app_tokens(self.settings, self.installs).app_info(access)
        except CrmError as exc:
            raise WebhookRejected(503, f"cannot confirm the call with the portal now ({exc})") from None
        if not info or not mine or str(info.get("ID")) != str(mine.get("ID")) or info.get("CODE") != mine.get("CODE"):
            raise WebhookRejected(401, "the portal does not confirm this token as the app's")
        with self._install_lock:
            self._confirmed[digest] = time.monotonic()

    def answer_robot(self, call: dict, state: State) -> None:
        """The customer's classification or the deal's calendar from that customer's data as the portal holds
        it now (the rest of the base from the snapshot), sent through bizproc.event.send."""
        settings, runtime = self.settings, self.host.runtime
        client = app_client(settings, self.installs)
        try:
            customer, purchase = self._customer_of(client, call)
            account = f"{CRM}:{client.portal}"
            fresh = None
            if customer is not None:
                fresh = read_customer(client, customer, customer_key=settings.CUSTOMER_KEY,
                                      tz=ZoneInfo(settings.TIMEZONE) if settings.TIMEZONE else None,
                                      gender=GenderSource(settings.BITRIX_GENDER_FIELD,
                                                          settings.gender_values("BITRIX_GENDER_VALUES")),
                                      products=state.products(account))
            evaluation = runtime.evaluation_from_state(state, account, fresh)
            if call["code"] == CLASSIFY:
                values = classification(evaluation, customer)
            else:
                values = calendar(evaluation, evaluation.plan, customer, purchase, runtime.playbook, runtime.today())
            try:
                client.call("bizproc.event.send", {"event_token": call["token"], "return_values": values,
                                                   "log_message": f"repeat-sales: {call['code']} done"})
            except CrmRequestRejected as exc:  # the robot gave up waiting (stale token): nothing to retry
                log.warning("bitrix robot=%s answer refused: %s", call["code"], exc)
                return
            log.info("bitrix robot=%s document=%s_%s answered", call["code"], call["kind"], call["id"])
        finally:
            client.close()

    def _customer_of(self, client: BitrixClient, call: dict) -> tuple[str | None, str | None]:
        key = self.settings.CUSTOMER_KEY
        if call["kind"] == "DEAL":
            raw = client.call("crm.deal.get", {"id": call["id"]})["result"]
            return customer_ref(raw if isinstance(raw, dict) else {}, key), text(call["id"])
        if (call["kind"], key) in (("CONTACT", "contact"), ("COMPANY", "company")):
            return call["id"], None
        return None, None
