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
from collections.abc import Callable
from datetime import UTC, date, datetime

from pydantic import SecretStr

from connector.errors import WebhookRejected
from connector.redact import register_secret
from connector.settings import Settings
from connector.state import State
from connector.webapp.http import AppHTTPServer, Request, Route
from connector.webapp.runtime import Runtime
from connector.webapp.worker import Job, Worker

log = logging.getLogger(__name__)

SECRET_KEYS = ("access_token", "refresh_token", "application_token", "secret")


class WebApp:
    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 8080,
                 today: Callable[[], date] | None = None, public_url: str | None = None) -> None:
        from connector import clock, registry

        self.settings = settings
        self.runtime = Runtime(settings, today or (lambda: clock.today(settings.TIMEZONE)))
        self.installs = self.runtime.installs
        for crm in registry.NAMES:  # keep stored secrets out of any log line
            for key, value in (self.installs.get(crm) or {}).items():
                if key in SECRET_KEYS:
                    register_secret(str(value))
        self.worker = Worker(self.runtime.sync, self.runtime.open_state,
                             debounce_seconds=settings.EVENT_DEBOUNCE_SECONDS)
        # robots' answers on their own lane: a robot waits seconds, never behind a sync (issue 15, item 5)
        self.robots = Worker(self.runtime.sync, self.runtime.open_state, debounce_seconds=0)
        self.queued = None  # QUEUE_URL: each job kept in the inbox before the answer, run by `repeat-sales worker`
        if settings.QUEUE_URL is not None:
            from connector.jobs.serving import QueuedWork

            self.queued = QueuedWork(self, settings)
        self.server = AppHTTPServer((host, port), self)
        self.host, self.port = self.server.server_address[0], self.server.server_address[1]
        self.public_url = (public_url or settings.APP_PUBLIC_URL or f"http://{host}:{self.port}").rstrip("/")
        self.apps = {crm.name: crm.webapp_class()(self) for crm in registry.CRMS.values()}  # each CRM's side
        self._routes: dict[tuple[str, str], Route] = {("GET", "/healthz"): self.healthz, ("GET", "/status"): self.status}
        self._prefixes: dict[str, Route] = {}  # POST <prefix><param>, e.g. a webhook address with its secret
        for app in self.apps.values():
            self._routes.update(app.routes())
            self._prefixes.update(app.prefix_routes())
        self._prefixes[FEEDBACK_PREFIX] = self.feedback
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebApp:
        if self.queued is None:
            self.worker.start()
            self.robots.start()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="repeat-sales-webapp", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking requests, then let the worker finish everything it accepted."""
        self.server.shutdown()
        self.server.server_close()
        self.robots.stop(timeout)
        self.worker.stop(timeout)

    def __enter__(self) -> WebApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
        (self.queued or self.worker).submit(job)

    def submit_robot(self, job: Job) -> None:
        """A robot's answer: run at once on the robots' lane (its `sync` and `after_sync` are not used)."""
        if self.queued is not None:
            self.queued.submit_robot(job)
        else:
            self.robots.submit(job)

    def request_sync(self) -> None:
        (self.queued or self.worker).request_sync()

    def worker_alive(self) -> bool:
        """The in-process workers run (with QUEUE_URL the workers are other processes: always True here)."""
        return self.queued is not None or (self.worker.alive() and self.robots.alive())

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
        if not self.worker_alive():
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
        worker = self.queued.snapshot() if self.queued else self.worker.snapshot()
        worker["last_sync_at"] = _iso(worker.get("last_sync_at"))
        return 200, {"crm": self.settings.CRM, "runs": runs, "worker": worker, "installs": installs}


    def feedback(self, request: Request):
        """Record one answer (0-10) for the purchase it rates; the next sync plans on it."""
        from connector.feedback import FeedbackAnswers, parse_score

        expected = self.settings.FEEDBACK_SECRET
        if expected is None:
            raise WebhookRejected(404, "not found")
        if not hmac.compare_digest(request.param.encode(), expected.get_secret_value().encode()):
            raise WebhookRejected(403, "unknown feedback address")
        form = _json_or_form(request)
        purchase_id = str(form.get("purchase_id") or "").strip()
        score = parse_score(form.get("score", ""))
        if not purchase_id or len(purchase_id) > 64 or score is None:
            raise WebhookRejected(400, "send purchase_id (the deal id) and score (an integer 0-10)")
        account = self.runtime.account()
        state = self.runtime.open_state()
        try:
            FeedbackAnswers(state).record(account, purchase_id, score, self.runtime.today())
        finally:
            state.close()
        self.request_sync()
        return 200, {"status": "recorded", "purchase_id": purchase_id, "score": score}


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


def run_serve(host: str, port: int) -> int:
    """`repeat-sales serve`: serve until SIGTERM/SIGINT, then finish the accepted work and exit 0."""
    from connector.redact import setup_logging
    from connector.settings import load_settings

    settings = load_settings()
    setup_logging(settings.LOG_LEVEL, secrets=settings_secrets(settings))
    State(settings.state_path).close()  # a damaged or read-only state file stops here, not at the first event
    try:
        app = WebApp(settings, host=host, port=port)
    except OSError as exc:
        hint = ("another process listens there: stop it or choose another --port"
                if exc.errno == errno.EADDRINUSE else "check --host and --port")
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    log.info("serving url=%s public_url=%s crm=%s", app.url, app.public_url, settings.CRM)
    print(f"serving on {app.url} (public {app.public_url})", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        if not app.worker_alive():
            log.error("the worker stopped; exiting")
            app.stop()
            return 1
    log.info("stopping: finishing accepted work")
    app.stop()
    return 0


__all__ = ["WebApp", "run_serve"]
