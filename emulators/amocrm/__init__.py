"""An amoCRM account emulator: a real HTTP server faithful to API v4 for what repeat-sales uses.

Seeded from the shared synthetic shop (emulators.shop) under the shop's own ids, with
OAuth (rotating refresh tokens), the requests-per-second limit, webhooks, and scripted faults.

    with AmoEmulator(customers=300, seed=42) as emu:
        emu.base_url, emu.access_token          # AMOCRM_BASE_URL, AMOCRM_ACCESS_TOKEN
        emu.fail_next(3, status=503); emu.stats()
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import date

from connector import clock
from emulators.amocrm.auth import AuthServer
from emulators.amocrm.faults import FaultPlan, RateGate
from emulators.amocrm.render import Reply, problem
from emulators.amocrm.seed import seed_account
from emulators.amocrm.server import EmulatorServer
from emulators.amocrm.store import AccountStore
from emulators.amocrm.webhooks import WebhookSender
from emulators.shop import generate_shop

__all__ = ["AmoEmulator"]

MARKER_RE = re.compile(r"rs:(v\d+:\S+)")  # design.md: every object the plugin creates carries `rs:<key>`


class AmoEmulator:
    def __init__(self, customers: int = 300, seed: int = 42, today: date | None = None, rate_limit: bool = False,
                 latency_ms: int = 0, faults: str | dict | None = None, host: str = "127.0.0.1", port: int = 0,
                 requests_per_second: float = 7, access_token_ttl: int = 86400, *, block_after: int = 20,
                 block_seconds: float = 60.0, retry_after_seconds: float = 1.0,
                 gateway_timeout_over: int | None = None) -> None:
        self.today = today or clock.today()
        self.shop = generate_shop(customers, seed, self.today)
        self.store = AccountStore()
        seed_account(self.store, self.shop)
        self.faults = FaultPlan(faults, seed=seed, latency_ms=latency_ms)
        self.gate = RateGate(enabled=rate_limit, per_second=requests_per_second, block_after=block_after,
                             block_seconds=block_seconds)
        # Doc: developers.kommo.com/docs/http-codes - real accounts ask for 300 s; tests want less
        self.retry_after = retry_after_seconds
        # Doc (shared/reference/amocrm.md, Writes): a batch may end in 504 when too big or slow, and
        # the client should send fewer. Interpretation: a write of more than this many entities is
        # applied, then the gateway answers 504 (the worst case for exactly-once). None: never.
        self.gateway_timeout_over = gateway_timeout_over
        self._host, self._port = host, port
        self._access_ttl = access_token_ttl
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.auth: AuthServer | None = None
        self.webhooks: WebhookSender | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> AmoEmulator:
        if self._server is not None:
            return self
        self._server = EmulatorServer((self._host, self._port), self)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self.auth = AuthServer(account_id=self.store.account_id, user_id=self.store.current_user_id,
                               host=f"{host}:{port}", access_ttl=self._access_ttl)
        self.webhooks = WebhookSender(self.store, self.base_url)
        self.store.on_event = self.webhooks.on_event
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="amocrm-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.webhooks is not None:
            self.webhooks.stop()

    def __enter__(self) -> AmoEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- auth ------------------------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        """A valid long-lived token (a private integration's), for AMOCRM_ACCESS_TOKEN."""
        return self.auth.long_lived

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    @property
    def client_secret(self) -> str:
        return self.auth.client_secret

    @property
    def redirect_uri(self) -> str:
        return self.auth.redirect_uri

    def issue_auth_code(self) -> str:
        """What an admin's consent hands the redirect URI: a one-time code, alive 20 minutes."""
        return self.auth.issue_code()

    def expire_access_tokens(self, *, include_long_lived: bool = False) -> None:
        self.auth.expire_access_tokens(include_long_lived=include_long_lived)

    def revoke_grant(self) -> None:
        self.auth.revoke_grant()

    # --- faults and stats --------------------------------------------------------------------------

    def set_faults(self, spec: str | dict | None) -> None:
        self.faults.set_spec(spec)

    def fail_next(self, n: int, status: int = 503, path: str | None = None) -> None:
        self.faults.script(n, str(status), path)

    def drop_next(self, n: int, path: str | None = None) -> None:
        self.faults.script(n, "drop", path)

    def set_gateway_timeout_over(self, n: int | None) -> None:
        self.gateway_timeout_over = n

    def set_latency(self, ms: float, path: str | None = None) -> None:
        self.faults.set_latency(ms, path)

    def set_rate_limit(self, enabled: bool) -> None:
        self.gate.enabled = enabled
        if not enabled:
            self.gate.unblock()

    def count(self, name: str) -> None:
        with self._count_lock:
            self._counts[name] += 1

    def stats(self) -> dict:
        with self._count_lock:
            requests = dict(self._counts)
        return {"requests_total": sum(requests.values()), "requests": requests, "objects": self.store.counts(),
                "rate_limited": self.gate.rejected, "blocked": self.gate.blocked,
                "token_exchanges": self.auth.exchanges if self.auth else 0,
                "token_refreshes": self.auth.refreshes if self.auth else 0,
                "webhooks_delivered": len(self.webhooks.delivered) if self.webhooks else 0}

    def reset_stats(self) -> None:
        with self._count_lock:
            self._counts.clear()

    # --- user-like changes -------------------------------------------------------------------------

    def touch_lead(self, lead_id: int, **fields) -> dict:
        """A manager edits a lead in the UI (e.g. status_id=143): updated_at moves, webhooks fire."""
        store = self.store
        with store.lock:
            lead = store.leads[int(lead_id)]
            before = dict(lead)
            store.set_lead_fields(lead, fields)
            store.emit("leads", "update", lead, before)
            return dict(lead)

    def tasks_by_marker(self) -> Counter:
        """Ground truth for exactly-once checks: open tasks per `rs:<key>` marker."""
        with self.store.lock:
            return Counter(k for t in self.store.tasks.values() for k in MARKER_RE.findall(t["text"]))

    # --- control routes ----------------------------------------------------------------------------

    def control(self, method: str, path: str, raw: bytes) -> Reply:
        """`GET /_emulator/stats`, `POST /_emulator/faults`, `POST /_emulator/reset_stats`, `POST /_emulator/auth_code`."""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return problem(400, "Request body is not valid JSON")
        if path == "/_emulator/stats" and method == "GET":
            return Reply(200, self.stats(), "application/json")
        if path == "/_emulator/reset_stats" and method == "POST":
            self.reset_stats()
            return Reply(200, {"ok": True}, "application/json")
        if path == "/_emulator/auth_code" and method == "POST":
            return Reply(200, {"code": self.issue_auth_code(), "client_id": self.client_id,
                               "client_secret": self.client_secret, "redirect_uri": self.redirect_uri},
                         "application/json")
        if path == "/_emulator/faults" and method == "POST":
            try:
                self._apply_control(body if isinstance(body, dict) else {"spec": body})
            except (TypeError, ValueError) as exc:
                return problem(400, str(exc))
            return Reply(200, {"ok": True}, "application/json")
        return problem(404, f"Cannot {method} {path}")

    def _apply_control(self, body: dict) -> None:
        if "spec" in body:
            self.set_faults(body["spec"])
        for key, action in (("fail_next", "fail"), ("drop_next", "drop")):
            spec = body.get(key)
            if isinstance(spec, dict):
                if action == "fail":
                    self.fail_next(int(spec.get("n", 1)), int(spec.get("status", 503)), spec.get("path"))
                else:
                    self.drop_next(int(spec.get("n", 1)), spec.get("path"))
        if "latency_ms" in body:
            self.set_latency(float(body["latency_ms"]), body.get("path"))
        if "rate_limit" in body:
            self.set_rate_limit(bool(body["rate_limit"]))
        if body.get("expire_access_tokens"):
            self.expire_access_tokens()
        if body.get("revoke_grant"):
            self.revoke_grant()
        if body.get("clear"):
            self.faults.clear()
