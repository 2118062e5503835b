"""The webhook app (`repeat-sales serve`): verify, queue, answer at once; one worker does the work.

Routes (design.md "Webhook app routes"; each CRM's come from its app, named in connector.registry):
  GET  /healthz                   liveness, no secrets
  GET  /status                    last runs and the worker; `Authorization: Bearer <ADMIN_TOKEN>`
  POST /bitrix/install            ONAPPINSTALL: tokens verified with the auth server, events bound, robots added
  POST /bitrix/events             CRM events: the stored application_token and member_id, else 401/403
  POST /bitrix/robot              robot calls: application_token, or an access token the portal confirms
                                  (app.info); answered at once through bizproc.event.send
  GET  /amocrm/connect            admin: the consent URL with a fresh single-use `state`
  GET  /amocrm/oauth              the OAuth redirect: `state` checked, the code exchanged, the webhook added
  POST /amocrm/webhook/<secret>   account webhooks: the per-install secret, account id and subdomain
  POST /feedback/<secret>         an answer to the feedback question: purchase_id (the deal) and score 0-10;
                                  the secret is FEEDBACK_SECRET (unset: 404, another: 403); kept in the state
"""

from __future__ import annotations

import errno
import hmac
import logging
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial

from pydantic import SecretStr

from connector import tenant_settings
from connector.errors import WebhookRejected
from connector.redact import register_secret
from connector.settings import Settings
from connector.state import State
from connector.webapp import asgi
from connector.webapp.http import Request, Route
from connector.webapp.server import DEFAULT_LIMITS, AppServer
from connector.webapp.tenancy import TenantHost, amocrm_tenant, bitrix_tenant
from connector.webapp.worker import Job

log = logging.getLogger(__name__)

SECRET_KEYS = ("access_token", "refresh_token", "application_token", "secret")
SETTINGS_RECHECK_SECONDS = 1.0  # a `tenants set` is in force in a running `serve` this soon
MAX_UNVERIFIED_TENANTS = 5  # portals whose install the auth server is still to confirm, at once
NEW_TENANTS_PER_WINDOW, NEW_TENANT_WINDOW_SECONDS = 120, 600  # new portals' installs checked, per window
INSTALL_PATHS = frozenset({"/bitrix/install", "/amocrm/oauth"})  # where a removed tenant may come back


class WebApp:
    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8080,
                 today: Callable[[], date] | None = None, public_url: str | None = None, listen: bool = True,
                 watchdog: bool = False) -> None:
        """`listen`: bind host:port now (OSError when taken), for `start`; else `asgi` is served by
        `serve --workers N`'s processes (`watchdog`: such a process exits when its job worker dies)."""
        from connector import clock, tenants

        self.settings = settings
        self.given_today = today  # tests fix the day; else each tenant's today is in its own TIMEZONE
        self.today = today or (lambda: clock.today(settings.TIMEZONE))
        self.registry = tenants.registry(settings)  # every tenant's installs; bound to the default tenant
        for row in self.registry.tenants():  # keep stored secrets out of any log line
            for key, value in (self.registry.for_tenant(row["tenant"]).get(row["crm"]) or {}).items():
                if key in SECRET_KEYS:
                    register_secret(str(value))
        self.install_checks: deque[float] = deque()  # when new tenants' installs were taken lately
        self.server = AppServer(host, port) if listen else DEFAULT_LIMITS  # the limits live on it
        self.host, self.port = self.server.server_address if listen else (host, port)
        self.public_url = (public_url or settings.APP_PUBLIC_URL or f"http://{host}:{self.port}").rstrip("/")
        self._tenants_lock = threading.Lock()
        self._unverified: set[str] = set()  # tenants made for an install the auth server has not confirmed yet
        self._answering: Counter[str] = Counter()  # requests each tenant's host is answering now
        self.default = TenantHost(self, tenants.DEFAULT)
        self.tenants: dict[str, TenantHost] = {tenants.DEFAULT: self.default}
        for row in self.registry.tenants():
            if row["tenant"] not in self.tenants:
                self.tenants[row["tenant"]] = TenantHost(self, row["tenant"], row["crm"])
        # the default tenant's parts under their single-portal names (status, tests, the scheduled job)
        self.runtime, self.installs = self.default.runtime, self.default.installs
        self.worker, self.robots, self.apps = self.default.worker, self.default.robots, self.default.apps
        self._routes: dict[tuple[str, str], Route] = {("GET", "/healthz"): self.healthz, ("GET", "/status"): self.status}
        self._prefixes: dict[str, Route] = {}  # POST <prefix><param>, e.g. a webhook address with its secret
        for key in self.default.routes:  # each tenant's own app side answers, once the request names it
            self._routes[key] = partial(self._tenant_route, key)
        for prefix in self.default.prefixes:  # a webhook address: the tenant the delivery names checks it
            self._prefixes[prefix] = partial(self._tenant_route, ("POST", prefix))
        self._prefixes[FEEDBACK_PREFIX] = self.feedback
        self._started = False
        self._stop_timeout = 60.0
        self._settings_seen, self._settings_checked = tenant_settings.stamps(self.registry), time.monotonic()
        self.asgi = asgi.build(self, self.server, watchdog=watchdog)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebApp:
        """Serve on host:port from a thread (the job workers start with the app)."""
        self.server.start(self.asgi)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking requests, then let the worker finish everything it accepted."""
        self._stop_timeout = timeout
        self.server.stop(timeout)

    def start_workers(self) -> None:
        """Every known tenant's workers; a tenant met later starts its own (`tenant`)."""
        with self._tenants_lock:
            for tenant in self.tenants.values():
                tenant.start()
            self._started = True

    def stop_workers(self) -> None:
        with self._tenants_lock:
            hosts = list(self.tenants.values())
            self._started = False
        for tenant in hosts:
            tenant.stop(self._stop_timeout)

    def __enter__(self) -> WebApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- tenants ------------------------------------------------------------------------------

    def tenant(self, tenant: str, *, unverified: bool = False, crm: str = "bitrix",
               base_url: str | None = None) -> TenantHost:
        """The tenant's host, made (and started) the first time a request names it."""
        with self._tenants_lock:
            return self._host(tenant, unverified, crm, base_url)

    @contextmanager
    def answering(self, tenant: str, *, unverified: bool = False, crm: str = "bitrix",
                  base_url: str | None = None) -> Iterator[TenantHost]:
        """The tenant's host for one request: while the request is answered, no other portal's install
        prunes it (an install not yet stored in the inbox looks refused; dropping its host and schema then
        lost the install - a worker failed on `schema ... does not exist` with 100 portals installing)."""
        with self._tenants_lock:
            host = self._host(tenant, unverified, crm, base_url)
            self._answering[tenant] += 1
        try:
            yield host
        finally:
            with self._tenants_lock:
                self._answering[tenant] -= 1
                if not self._answering[tenant]:
                    del self._answering[tenant]

    def _host(self, tenant: str, unverified: bool, crm: str, base_url: str | None) -> TenantHost:
        """(Called under the tenants' lock.)"""
        found = self.tenants.get(tenant)
        if found is not None:
            return found
        self._prune_unverified()
        unverified = unverified and not self.registry.for_tenant(tenant).get(crm)  # another process's: known
        if unverified and not self._may_add_tenant():
            raise WebhookRejected(429, "too many installs; try again later")
        found = self.tenants[tenant] = TenantHost(self, tenant, crm, base_url)
        if unverified:
            self._unverified.add(tenant)
        if self._started:
            found.start()
        return found

    def _drop_removed(self, tenant: str) -> None:
        """`tenants remove` in another process deleted this tenant's tokens and state while its host lived on
        here: the portal installing again gets a new host and a new state, never the old host's state still
        open (a deleted SQLite file, a dropped schema: its writes were lost or failed)."""
        from connector import tenants

        with self._tenants_lock:
            host = self.tenants.get(tenant)
            if host is None or tenant == tenants.DEFAULT or self.registry.for_tenant(tenant).get(host.crm) \
                    or tenants.state_exists(self.settings, tenant):
                return
            del self.tenants[tenant]
            self._unverified.discard(tenant)
        log.info("tenant=%s was removed while serve ran: its new install starts from a new state", tenant)
        host.stop(5)

    def _may_add_tenant(self) -> bool:
        """A portal not yet known costs a check with the auth server: a few at once, a bounded number per
        window, whoever sends them (called under the tenants' lock)."""
        now = time.monotonic()
        while self.install_checks and now - self.install_checks[0] > NEW_TENANT_WINDOW_SECONDS:
            self.install_checks.popleft()
        if len(self._unverified) >= MAX_UNVERIFIED_TENANTS or len(self.install_checks) >= NEW_TENANTS_PER_WINDOW:
            return False
        self.install_checks.append(now)
        return True

    def _prune_unverified(self) -> None:
        """Installs the auth server refused leave no tenant behind (called under the tenants' lock)."""
        from connector import tenants

        for tenant in list(self._unverified):
            host = self.tenants[tenant]
            if self._answering[tenant]:
                continue  # its install request is still being answered: its job is not stored yet
            if host.installs.get(host.crm):
                self._unverified.discard(tenant)
            elif host.queued is not None and host.queued.queue.inbox.has_open(tenant):
                continue  # QUEUE_URL: a worker has its install still to do; dropping its schema now loses it
            elif host.worker.wait_idle(0):
                self._unverified.discard(tenant)
                del self.tenants[tenant]
                host.stop(5)
                tenants.drop_if_unused(self.settings, tenant)  # PostgreSQL: its empty schema goes too

    def follow_settings(self, *, now: float | None = None) -> None:
        """Tenants' settings changed by `repeat-sales tenants set/unset` come into force here without a
        restart: one cheap query at most every SETTINGS_RECHECK_SECONDS per process (not one per event),
        and the settings read again only of the tenants whose overrides changed."""
        now = time.monotonic() if now is None else now
        if now - self._settings_checked < SETTINGS_RECHECK_SECONDS:
            return
        self._settings_checked = now
        seen, before = tenant_settings.stamps(self.registry), self._settings_seen
        if seen == before:
            return
        self._settings_seen = seen
        changed = {t for t in seen.keys() | before.keys() if seen.get(t) != before.get(t)}
        for host in self._all_tenants():
            if host.id in changed:
                host.follow_settings()

    def _tenant_route(self, key: tuple[str, str], request: Request):
        from connector import tenants

        self.follow_settings()
        crm, base_url, tenant = "bitrix", None, tenants.DEFAULT
        if key[1].startswith("/bitrix/"):
            tenant = bitrix_tenant(self, key[1], request)
        elif key[1].startswith("/amocrm/"):
            crm = "amocrm"
            tenant, base_url = amocrm_tenant(self, key[1], request)
        if key[1] in INSTALL_PATHS:
            self._drop_removed(tenant)
        with self.answering(tenant, unverified=tenant not in self.tenants, crm=crm, base_url=base_url) as host:
            if key in host.routes:
                return host.routes[key](request)
            return host.prefixes[key[1]](request)

    # --- what routes share ----------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Route, str]:
        for prefix, handler in self._prefixes.items():
            if path.startswith(prefix):
                secret = path[len(prefix):]
                if method != "POST":
                    raise WebhookRejected(405, "method not allowed")
                if not secret or "/" in secret or len(secret) > 200:
                    raise WebhookRejected(401, "unknown webhook address")
                return handler, secret
        found = self._routes.get((method, path))
        if found is not None:
            return found, ""
        if any(p == path for _, p in self._routes):
            raise WebhookRejected(405, "method not allowed")
        raise WebhookRejected(404, "not found")

    def submit(self, job: Job) -> None:
        self.default.submit(job)

    def submit_robot(self, job: Job) -> None:
        """A robot's answer: run at once on the robots' lane (its `sync` and `after_sync` are not used)."""
        self.default.submit_robot(job)

    def request_sync(self, *, crm_event: bool = False) -> None:
        self.default.request_sync(crm_event=crm_event)

    def require_admin(self, request: Request) -> None:
        """`Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time; unset ADMIN_TOKEN locks the route."""
        token = self.settings.ADMIN_TOKEN
        if token is None:
            raise WebhookRejected(403, "set ADMIN_TOKEN to use this route")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 token.get_secret_value().encode()):
            raise WebhookRejected(401, "a valid admin token is required")

    # --- routes ---------------------------------------------------------------------------------

    def healthz(self, request: Request):
        with self._tenants_lock:
            hosts = list(self.tenants.values())
        if not all(t.alive() for t in hosts):
            return 503, {"status": "worker stopped"}
        return 200, {"status": "ok"}

    def status(self, request: Request):
        self.require_admin(request)
        state = self.runtime.open_state()
        try:
            runs = [_run_summary(r) for r in state.last_runs(20)]
        finally:
            state.close()
        installs = {}
        for name, app in self.apps.items():
            stored = self.installs.get(name)
            if stored:
                shown = app.install_status(stored)
                installs[name] = {**shown, "installed_at": _iso(shown.get("installed_at"))}
        worker = self.default.queued.snapshot() if self.default.queued else self.worker.snapshot()
        worker["last_sync_at"] = _iso(worker.get("last_sync_at"))
        served = sorted({row["tenant"] for row in self.registry.tenants()} | {"default"})
        return 200, {"crm": self.settings.CRM, "runs": runs, "worker": worker, "installs": installs,
                     "tenants": served}


    def feedback(self, request: Request):
        """Record one answer (0-10) for the purchase it rates; the next sync plans on it."""
        from connector.feedback import FeedbackAnswers, parse_score

        self.follow_settings()
        given = [h.settings.FEEDBACK_SECRET for h in self._all_tenants()]
        if all(expected is None for expected in given):
            raise WebhookRejected(404, "not found")
        host = self._feedback_tenant(request.param)
        if host is None:
            raise WebhookRejected(403, "unknown feedback address")
        form = _json_or_form(request)
        purchase_id = str(form.get("purchase_id") or "").strip()
        score = parse_score(form.get("score", ""))
        if not purchase_id or len(purchase_id) > 64 or score is None:
            raise WebhookRejected(400, "send purchase_id (the deal id) and score (an integer 0-10)")
        account = host.runtime.account()
        state = host.runtime.open_state()
        try:
            FeedbackAnswers(state).record(account, purchase_id, score, host.runtime.today())
        finally:
            state.close()
        host.request_sync()
        return 200, {"status": "recorded", "purchase_id": purchase_id, "score": score}

    def _all_tenants(self) -> list[TenantHost]:
        with self._tenants_lock:
            return [self.default, *(h for _, h in sorted(self.tenants.items()) if h is not self.default)]

    def _feedback_tenant(self, given: str) -> TenantHost | None:
        """The tenant whose FEEDBACK_SECRET the address carries (`tenants set ID FEEDBACK_SECRET=...` gives a
        tenant its own; one that keeps the .env's shares the default's address, and the default wins).
        Every secret is compared, in constant time each, so the answer's timing names no tenant."""
        found = None
        for host in self._all_tenants():
            expected = host.settings.FEEDBACK_SECRET
            if expected is not None and hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
                found = found or host
        return found


FEEDBACK_PREFIX = "/feedback/"


def _json_or_form(request: Request) -> dict:
    """A JSON object or a form body, flat: {"purchase_id": "17", "score": 9}."""
    ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        import json

        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected(400, "the body is not well-formed JSON") from None
        if not isinstance(data, dict):
            raise WebhookRejected(400, "expected a JSON object")
        return data
    return request.form()


def _iso(ts) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _run_summary(run: dict) -> dict:
    stats = run.get("stats") or {}
    seconds = round(run["finished"] - run["started"], 2) if run.get("finished") else None
    return {"id": run["id"], "kind": run["kind"], "account": run["account"], "started": _iso(run["started"]),
            "finished": _iso(run.get("finished")), "seconds": seconds, "dry_run": run["dry_run"],
            "requests": stats.get("requests"), "planned": stats.get("planned"), "written": stats.get("written"),
            "failed": stats.get("failed"), "error": run.get("error")}


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret setting's value (each CRM's webhook, client secret, tokens; the admin token)."""
    values = (getattr(settings, name) for name in type(settings).model_fields)
    return tuple(v.get_secret_value() for v in values if isinstance(v, SecretStr))


def run_serve(host: str, port: int, workers: int = 1) -> int:
    """`repeat-sales serve`: serve until SIGTERM/SIGINT, then finish the accepted work and exit 0;
    `workers` > 1: that many processes on one socket (uvicorn's supervisor), each with its job worker."""
    from connector.redact import setup_logging
    from connector.settings import load_settings

    settings = load_settings()
    setup_logging(settings.LOG_LEVEL, secrets=settings_secrets(settings))
    State(settings.state_target).close()  # a damaged or read-only state file stops here, not at the first event
    if workers > 1:
        return _serve_processes(settings, host, port, workers)
    try:
        app = WebApp(settings, host=host, port=port)
    except OSError as exc:
        return _cannot_listen(host, port, exc)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    log.info("serving url=%s public_url=%s crm=%s", app.url, app.public_url, settings.CRM)
    print(f"serving on {app.url} (public {app.public_url})", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        if not app.default.alive():
            log.error("the worker stopped; exiting")
            app.stop()
            return 1
    log.info("stopping: finishing accepted work")
    app.stop()
    return 0


def hosted_app():
    """The app of one `serve --workers N` process (uvicorn imports it by name in each process)."""
    from connector.redact import setup_logging
    from connector.settings import load_settings

    settings = load_settings()
    setup_logging(settings.LOG_LEVEL, secrets=settings_secrets(settings))
    return WebApp(settings, listen=False, watchdog=True).asgi


def _serve_processes(settings: Settings, host: str, port: int, workers: int) -> int:
    import os

    from connector.webapp.server import listen, run_workers

    try:
        sock = listen(host, port)
    except OSError as exc:
        return _cannot_listen(host, port, exc)
    url = f"http://{host}:{sock.getsockname()[1]}"
    if not settings.APP_PUBLIC_URL:  # the processes load the settings anew: tell them where they are seen
        os.environ["APP_PUBLIC_URL"] = url
    log.info("serving url=%s public_url=%s crm=%s workers=%s", url, settings.APP_PUBLIC_URL or url, settings.CRM,
             workers)
    print(f"serving on {url} (public {settings.APP_PUBLIC_URL or url}, {workers} processes)", file=sys.stderr,
          flush=True)
    return run_workers(sock, workers)


def _cannot_listen(host: str, port: int, exc: OSError) -> int:
    hint = ("another process listens there: stop it or choose another --port"
            if exc.errno == errno.EADDRINUSE else "check --host and --port")
    print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})", file=sys.stderr)
    return 1


__all__ = ["WebApp", "hosted_app", "run_serve"]
