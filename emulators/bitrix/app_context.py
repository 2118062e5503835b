"""A local application installed on the emulated portal: OAuth tokens, the install callback,
event bindings, robots, and the POSTs the portal makes to the app.

Doc: settings/oauth/index.md, auto-renewal.md (access token 1 h, refresh token 180 days, every
renewal rotates the refresh token; `GET /oauth/token/?grant_type=refresh_token&client_id&client_secret
&refresh_token` on the auth server, here this host standing in for oauth.bitrix.info), error-codes.md
(`invalid_client`, `invalid_grant`); settings/app-installation/local-apps/installation-callback.md and
api-reference/common/events/on-app-install.md (the ONAPPINSTALL form); api-reference/events/index.md
(event payloads, `auth[application_token]`); api-reference/bizproc/bizproc-robot/*.md and
tutorials/bizproc/activity.md (robot calls with `event_token`, answered by bizproc.event.send);
settings/oauth/simple-way.md and api-reference/widgets/crm/detail-tab.md (opening the app or a placement:
a POST with `AUTH_ID`, `REFRESH_ID`, `member_id`, `PLACEMENT`, `PLACEMENT_OPTIONS` as a JSON string, and
`DOMAIN`, `PROTOCOL`, `LANG`, `APP_SID` in the query).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from .outbound import Outbound
from .protocol import ApiError, method_not_found, no_auth

if TYPE_CHECKING:  # pragma: no cover
    from .service import BitrixEmulator

ACCESS_TTL_SECONDS = 3600  # Doc: settings/oauth/auto-renewal.md
REFRESH_TTL_SECONDS = 180 * 86400
ROBOT_TIMEOUT_SECONDS = 660  # `timeout_duration` of a robot call (captured requests, official SDKs)
# Doc: api-reference/events/index.md - the events this portal can send
KNOWN_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUNINSTALL", "ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE",
                          "ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE", "ONCRMCOMPANYADD",
                          "ONCRMCOMPANYUPDATE", "ONCRMCOMPANYDELETE"})
_SHARED: dict[tuple[str, str], weakref.WeakSet] = {}  # (client_id, client_secret) -> the portals sharing that app
_SHARED_LOCK = threading.Lock()
DOCUMENT_TYPES = {"DEAL": "CCrmDocumentDeal", "LEAD": "CCrmDocumentLead", "CONTACT": "CCrmDocumentContact",
                  "COMPANY": "CCrmDocumentCompany"}


@dataclass(frozen=True)
class Caller:
    """Who makes a REST call: the incoming webhook's user, or the app with a user's OAuth token."""

    kind: str  # "webhook" | "app"
    user_id: int
    app: AppContext | None = None
    scopes: frozenset[str] | None = None  # of the webhook or the app (rights.py); None: not over HTTP


CALLER: ContextVar[Caller | None] = ContextVar("bitrix_emulator_caller", default=None)


def current_caller() -> Caller | None:
    return CALLER.get()


def resolve_caller(emu: BitrixEmulator, parts: list[str], params: dict) -> Caller:
    """`/rest/{user}/{code}/{method}` is the webhook; `/rest/{method}` needs `auth` (query, form or JSON key).

    Doc: settings/how-to-call-rest-api/authorization.md; _includes/system-errors.md (401 NO_AUTH_FOUND).
    """
    if len(parts) == 3:
        if parts[0] == str(emu.webhook_user) and hmac.compare_digest(parts[1], emu.webhook_token):
            return Caller("webhook", emu.webhook_user, emu.app, emu.scopes)
        raise no_auth()
    if len(parts) == 1:
        token = params.pop("auth", None)
        if isinstance(token, str) and token:
            return emu.app.authorize(token)
        raise no_auth()
    raise method_not_found()


@dataclass
class _EventToken:
    code: str
    document_id: list[str]
    returns: frozenset[str]
    subscription: bool
    expires_at: float
    used: bool = False


@dataclass
class Installed:
    handler: str
    domain: str  # the app's host: robot handlers must live on it (Doc: bizproc-robot-add.md)
    application_token: str
    bindings: list[dict] = field(default_factory=list)
    robots: dict[str, dict] = field(default_factory=dict)
    app_url: str = ""  # the app's page (the local app's "handler path"), opened as PLACEMENT=DEFAULT
    placements: list[dict] = field(default_factory=list)  # placement.bind: {placement, handler, title, ...}


class AppContext:
    """One local application ("uses API only"); `install(handler_url)` plays the portal's install."""

    def __init__(self, emu: BitrixEmulator, *, clock=time.time, client_id: str | None = None,
                 client_secret: str | None = None) -> None:
        self.emu = emu
        self.clock = clock
        self.lock = threading.Lock()
        # Doc: settings/oauth/index.md - a marketplace app's client_id/client_secret (partner cabinet) work for
        # any Bitrix24, a local app's only for its own: given keys make this portal one of many sharing an app.
        # Doc: settings/oauth/auto-renewal.md - client_id like app.573ad8a0346747.09223434 (local.… for local apps)
        self.client_id = client_id or f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
        self.client_secret = client_secret or secrets.token_urlsafe(36)
        # Doc: settings/oauth/index.md - member_id is the portal's own unique id (kept when its address changes):
        # never derived from the app or the seed alone, so portals seeded alike still differ
        self.member_id = hashlib.md5(f"member-{emu.seed}-{emu.webhook_token}-{secrets.token_hex(8)}".encode()).hexdigest()
        self.installed: Installed | None = None
        self._access: dict[str, tuple[float, int]] = {}  # token -> (expires at, user id)
        self._refresh: dict[str, tuple[float, int]] = {}  # live refresh tokens only
        self._event_tokens: dict[str, _EventToken] = {}
        self.returns: list[dict] = []  # what bizproc.event.send delivered, in order
        self.refreshes = 0
        self.outbound = Outbound()
        if client_id is not None:  # one app on many portals: they answer for each other's tokens
            with _SHARED_LOCK:
                _SHARED.setdefault((self.client_id, self.client_secret), weakref.WeakSet()).add(self)

    # ---- endpoints the app sees ----
    @property
    def client_endpoint(self) -> str:
        return f"{self.emu.base_url}/rest/"

    @property
    def server_endpoint(self) -> str:
        return f"{self.emu.base_url}/rest/"  # the auth server's REST root; this host plays oauth.bitrix.info

    @property
    def domain(self) -> str:
        return f"{self.emu.host}:{self.emu.port}"

    # ---- tokens ----
    def _issue(self, user_id: int) -> dict:
        now = self.clock()
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self._access[access] = (now + ACCESS_TTL_SECONDS, user_id)
        self._refresh[refresh] = (now + REFRESH_TTL_SECONDS, user_id)
        return {"access_token": access, "refresh_token": refresh, "expires": int(now + ACCESS_TTL_SECONDS),
                "expires_in": ACCESS_TTL_SECONDS}

    def issue_token(self, user_id: int = 1) -> str:
        """An access token of the installed app (what a test uses to call `/rest/` as the app)."""
        with self.lock:
            if self.installed is None:
                raise RuntimeError("install the app first")
            return self._issue(user_id)["access_token"]

    def authorize(self, token: str) -> Caller:
        with self.lock:
            entry = self._access.get(token)
            if entry is None or self.installed is None:
                raise no_auth()
            if entry[0] <= self.clock():
                # Doc: _includes/system-errors.md (401 expired_token)
                raise ApiError(401, "expired_token", "The access token provided has expired.")
            return Caller("app", entry[1], self, self.emu.scopes)

    def expire_access_tokens(self) -> None:
        """Every access token is past its hour: the app has to renew with its refresh token."""
        with self.lock:
            self._access = {t: (0.0, user) for t, (_, user) in self._access.items()}

    def token_endpoint(self, params: dict) -> tuple[int, dict]:
        """`/oauth/token/`: renew a pair. Doc: settings/oauth/auto-renewal.md, error-codes.md.

        Portals sharing an app's keys share one auth server too (Doc: settings/oauth/index.md - the auth
        server oauth.bitrix24.tech alone issues and renews every portal's tokens): any of them renews a
        refresh token of any other, as the one real server would."""
        if params.get("grant_type") != "refresh_token":
            return 400, {"error": "invalid_request", "error_description": "Unsupported grant_type"}
        client_id, secret = str(params.get("client_id") or ""), str(params.get("client_secret") or "")
        if not (hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(secret, self.client_secret)):
            return 401, {"error": "invalid_client", "error_description": "Invalid client"}
        refresh = str(params.get("refresh_token") or "")
        for app in self._sharing():
            answer = app._renew(refresh)
            if answer is not None:
                return 200, answer
        return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}

    def _sharing(self) -> list[AppContext]:
        """This portal's app first, then the other live portals given the same keys."""
        with _SHARED_LOCK:
            others = [a for a in _SHARED.get((self.client_id, self.client_secret), ()) if a is not self]
        return [self, *others]

    def _renew(self, refresh: str) -> dict | None:
        with self.lock:
            entry = self._refresh.get(refresh)
            if entry is None or entry[0] <= self.clock() or self.installed is None:
                return None
            del self._refresh[refresh]  # single use: rotation
            self.refreshes += 1
            pair = self._issue(entry[1])
        return {**pair, "client_endpoint": self.client_endpoint, "domain": self.domain,
                "member_id": self.member_id, "scope": self.scope, "server_endpoint": self.server_endpoint,
                "status": "L", "user_id": entry[1]}

    @property
    def scope(self) -> str:
        """The app's scopes as the portal writes them (`crm,task,user`): the emulator's `--scopes`."""
        return ",".join(sorted(self.emu.scopes))

    def _auth_block(self, user_id: int, *, with_refresh: bool = False, application_token: bool = True) -> dict:
        pair = self._issue(user_id)
        block = {"access_token": pair["access_token"], "expires": pair["expires"], "expires_in": pair["expires_in"],
                 "scope": self.scope, "domain": self.domain, "server_endpoint": self.server_endpoint, "status": "L",
                 "client_endpoint": self.client_endpoint, "member_id": self.member_id, "user_id": user_id}
        if application_token:
            block["application_token"] = self.installed.application_token if self.installed else ""
        if with_refresh:
            block["refresh_token"] = pair["refresh_token"]
        return block

    # ---- install ----
    def install(self, handler_url: str, *, user_id: int = 1, version: int = 1, app_url: str | None = None) -> int:
        """Add (or update) the app: a new application_token, handlers, robots and placements dropped, then the
        ONAPPINSTALL POST to `handler_url`. Returns the app's HTTP status (0 = no answer). `app_url` is the
        app's own page (a local app's handler path; the install path when not given)."""
        parts = urlsplit(handler_url)
        with self.lock:
            self.installed = Installed(handler_url, parts.netloc, secrets.token_hex(16), app_url=app_url or handler_url)
            payload = {"event": "ONAPPINSTALL",
                       "data": {"VERSION": str(version), "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"},
                       "ts": str(int(self.clock())), "auth": self._auth_block(user_id, with_refresh=True)}
        return self.outbound.post_now("install", handler_url, payload)

    def uninstall(self) -> None:
        """The admin removes the app: ONAPPUNINSTALL (application_token only) to its bindings, tokens revoked."""
        with self.lock:
            if self.installed is None:
                return
            for b in self.installed.bindings:
                if b["event"] == "ONAPPUNINSTALL":
                    self.outbound.enqueue("event", b["handler"], {
                        "event": "ONAPPUNINSTALL", "data": {"LANGUAGE_ID": "ru", "CLEAN": "0"}, "ts": str(int(self.clock())),
                        "auth": {"domain": self.domain, "member_id": self.member_id,
                                 "application_token": self.installed.application_token}})
            self.installed = None
            self._access.clear()
            self._refresh.clear()

    # ---- events ----
    def on_change(self, event: str, entity_id: int) -> None:
        """The portal's listener: queue `event` for every handler bound to it (called under the portal lock)."""
        with self.lock:
            if self.installed is None:
                return
            for b in self.installed.bindings:
                if b["event"] != event:
                    continue
                self.outbound.enqueue("event", b["handler"], {
                    "event": event, "event_handler_id": str(b["id"]), "data": {"FIELDS": {"ID": str(entity_id)}},
                    "ts": str(int(self.clock())), "auth": self._auth_block(int(b["auth_type"]) or 1)})

    def bindings(self) -> list[dict]:
        with self.lock:
            return [dict(b) for b in self.installed.bindings] if self.installed else []

    def robots(self) -> dict[str, dict]:
        with self.lock:
            return {k: dict(v) for k, v in self.installed.robots.items()} if self.installed else {}

    # ---- robots ----
    def run_robot(self, code: str, document_id: str, properties: dict | None = None, *, user_id: int = 1,
                  application_token: bool = True) -> str:
        """An automation rule fires robot `code` on `document_id` (e.g. "DEAL_12"): POST to its HANDLER.
        Returns the event token the app must answer with (bizproc.event.send).

        `application_token=False` sends the call as the docs list it, `auth[domain|access_token|
        refresh_token]` and the rest without `auth[application_token]` (Doc: tutorials/bizproc/activity.md);
        the app then has to confirm the access token with the portal (app.info)."""
        kind = document_id.rsplit("_", 1)[0]
        doc_class = DOCUMENT_TYPES.get(kind)
        if doc_class is None:
            raise ValueError(f"unknown document {document_id!r}; use DEAL_<id>, LEAD_<id>, CONTACT_<id>")
        with self.lock:
            if self.installed is None or code not in self.installed.robots:
                raise KeyError(f"no robot {code!r} is registered")
            robot = self.installed.robots[code]
            # Doc: bizproc-event-send.md - a token like "55c1dc1c3f0d75.78875596|A51601_…|hsyU….47dd…"
            token = (f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}|A{secrets.randbelow(10**5)}_"
                     f"{secrets.randbelow(10**5)}|{secrets.token_urlsafe(24)}.{secrets.token_hex(32)}")
            subscription = str(robot.get("USE_SUBSCRIPTION") or "Y").upper() != "N"
            doc = ["crm", doc_class, document_id]
            self._event_tokens[token] = _EventToken(code, doc, frozenset(robot.get("RETURN_PROPERTIES") or {}),
                                                    subscription, self.clock() + ROBOT_TIMEOUT_SECONDS)
            values = {k: (p or {}).get("Default", "") for k, p in (robot.get("PROPERTIES") or {}).items()}
            values.update(properties or {})
            auth_user = int(robot.get("AUTH_USER_ID") or user_id)
            payload = {"workflow_id": secrets.token_hex(12), "code": code, "document_id": doc,
                       "document_type": ["crm", doc_class, kind], "event_token": token, "properties": values,
                       "use_subscription": "Y" if subscription else "N", "timeout_duration": str(ROBOT_TIMEOUT_SECONDS),
                       "ts": str(int(self.clock())),
                       "auth": self._auth_block(auth_user, with_refresh=True, application_token=application_token)}
            handler = robot["HANDLER"]
        self.outbound.enqueue("robot", handler, payload)
        return token

    def event_send(self, token: str, values: dict, log_message: str) -> bool:
        """bizproc.event.send: a valid, live, unused token only. Doc: bizproc-event-send.md (403 ACCESS_DENIED)."""
        with self.lock:
            entry = self._event_tokens.get(token)
            if entry is None or entry.used or not entry.subscription or entry.expires_at <= self.clock():
                raise ApiError(403, "ACCESS_DENIED", "Access denied!")
            entry.used = True
            self.returns.append({"event_token": token, "code": entry.code, "document_id": list(entry.document_id),
                                 "return_values": {k: v for k, v in values.items() if k in entry.returns},
                                 "ignored": sorted(k for k in values if k not in entry.returns),
                                 "log_message": log_message})
        return True

    def returned(self, token: str) -> dict | None:
        with self.lock:
            return next((r for r in self.returns if r["event_token"] == token), None)

    # ---- opening the app in the portal's frame ----
    def open(self, placement: str = "DEFAULT", options: dict | None = None, *, user_id: int = 1,
             lang: str = "ru") -> dict:
        """What the portal POSTs to the app when a user opens it (DEFAULT: the app's page) or one of its
        placements (e.g. the CRM_CONTACT_DETAIL_TAB of a contact): `{"url": ..., "form": {...}}`, a fresh
        access token of `user_id` as AUTH_ID. Doc: settings/oauth/simple-way.md; widgets/crm/detail-tab.md."""
        placement = (placement or "DEFAULT").upper()
        with self.emu.store.lock:
            if user_id not in self.emu.store.users.rows:
                raise ValueError(f"no user {user_id} on the portal")
        with self.lock:
            if self.installed is None:
                raise ValueError("install the app first")
            if placement == "DEFAULT":
                handler = self.installed.app_url
            else:
                bound = [p for p in self.installed.placements if p["placement"] == placement]
                if not bound:
                    raise ValueError(f"the app has no handler bound to {placement}")
                handler = bound[0]["handler"]
            pair = self._issue(user_id)
            form = {"AUTH_ID": pair["access_token"], "AUTH_EXPIRES": str(pair["expires_in"]),
                    "REFRESH_ID": pair["refresh_token"], "SERVER_ENDPOINT": self.server_endpoint,
                    "APPLICATION_TOKEN": self.installed.application_token, "APPLICATION_SCOPE": self.scope,
                    "member_id": self.member_id, "status": "L", "PLACEMENT": placement,
                    "PLACEMENT_OPTIONS": json.dumps(options or {}, ensure_ascii=False)}
        query = urlencode({"DOMAIN": self.domain, "PROTOCOL": "0", "LANG": lang,
                           "APP_SID": secrets.token_hex(16)})
        return {"url": handler + ("&" if "?" in handler else "?") + query, "form": form}

    def placements(self) -> list[dict]:
        with self.lock:
            return [dict(p) for p in self.installed.placements] if self.installed else []

    # ---- HTTP control: /_emulator/app/* ----
    def control(self, command: str, route: list[str], body: bytes) -> tuple[int, dict]:
        """GET app -> snapshot; POST app/install {handler}; POST app/robot {code, document_id, properties,
        application_token (false: the call without auth[application_token])};
        POST app/expire_tokens; POST app/uninstall;
        POST app/open {placement, options, user_id, lang} -> {url, form}: what the portal POSTs to open the app."""
        try:
            data = json.loads(body.decode("utf-8") or "{}") if body else {}
        except ValueError:
            return 400, {"error": "BAD_CONTROL", "error_description": "the body is not JSON"}
        data = data if isinstance(data, dict) else {}
        name = "/".join(route)
        if command == "GET" and name == "":
            return 200, self.snapshot()
        if command != "POST":
            return 404, {"error": "NOT_FOUND", "error_description": f"no control route app/{name}"}
        try:
            if name == "install":
                return 200, {"status": self.install(str(data["handler"]), app_url=data.get("app_url"))}
            if name == "open":
                options = data.get("options") or {}
                if not isinstance(options, dict):
                    raise ValueError("options must be an object")
                return 200, self.open(str(data.get("placement") or "DEFAULT"), options,
                                      user_id=int(data.get("user_id") or 1), lang=str(data.get("lang") or "ru"))
            if name == "robot":
                token = self.run_robot(str(data["code"]), str(data["document_id"]), data.get("properties") or {},
                                       application_token=data.get("application_token", True) is not False)
                return 200, {"event_token": token}
            if name == "expire_tokens":
                self.expire_access_tokens()
                return 200, {"ok": True}
            if name == "uninstall":
                self.uninstall()
                return 200, {"ok": True}
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"error": "BAD_CONTROL", "error_description": str(exc)}
        return 404, {"error": "NOT_FOUND", "error_description": f"no control route app/{name}"}

    def snapshot(self) -> dict:
        """What tests and people inspect: the app's keys (as the portal's app form shows them), no tokens."""
        with self.lock:
            inst = self.installed
            out = {"client_id": self.client_id, "client_secret": self.client_secret, "installed": inst is not None,
                   "member_id": self.member_id,
                   "bindings": [dict(b) for b in inst.bindings] if inst else [],
                   "robots": sorted(inst.robots) if inst else [], "refreshes": self.refreshes,
                   "placements": [dict(p) for p in inst.placements] if inst else [],
                   "returns": [dict(r, event_token="***") for r in self.returns]}
        out["deliveries"] = [{"kind": d["kind"], "status": d["status"]} for d in self.outbound.sent()]
        return out

    def close(self) -> None:
        self.outbound.stop()
        with _SHARED_LOCK:
            _SHARED.get((self.client_id, self.client_secret), set()).discard(self)
