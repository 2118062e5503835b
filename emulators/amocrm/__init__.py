"""An amoCRM account emulator: a real HTTP server faithful to API v4 for what repeat-sales uses.

Seeded from the shared synthetic shop (emulators.shop) under the shop's own ids, with
OAuth (rotating refresh tokens), the requests-per-second limit and webhooks; faults, stats and the
control API are the shared kit's (emulators.kit).

    with AmoEmulator(customers=300, seed=42) as emu:
        emu.base_url, emu.access_token          # AMOCRM_BASE_URL, AMOCRM_ACCESS_TOKEN
        emu.fail_next(3, status=503, call="GET /api/v4/leads"); emu.stats()
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date

from connector import clock
from emulators.amocrm.auth import AuthServer
from emulators.amocrm.chats import seed_chats
from emulators.amocrm.customers import seed_customers
from emulators.amocrm.limits import BadAnswers, RateGate
from emulators.amocrm.seed import seed_account
from emulators.amocrm.server import Handler
from emulators.amocrm.store import AccountStore
from emulators.amocrm.webhooks import WebhookSender
from emulators.kit import Emulator
from emulators.shop import generate_shop

__all__ = ["AmoEmulator"]

MARKER_RE = re.compile(r"rs:(v\d+:\S+)")  # design.md: every object the plugin creates carries `rs:<key>`


class AmoEmulator(Emulator):
    thread_name = "amocrm-emulator"
    handler = Handler

    def __init__(self, customers: int = 300, seed: int = 42, today: date | None = None, rate_limit: bool = False,
                 latency_ms: int = 0, faults: str | dict | None = None, host: str = "127.0.0.1", port: int = 0,
                 requests_per_second: float = 7, access_token_ttl: int = 86400, *, block_after: int = 20,
                 block_seconds: float = 60.0, retry_after_seconds: float = 1.0,
                 gateway_timeout_over: int | None = None, api_filter: bool = True, admin: bool = True,
                 customers_mode: str = "disabled", chat_share: float = 0.6, account_id: int | None = None,
                 subdomain: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None) -> None:
        super().__init__(seed=seed, faults=faults, latency_ms=latency_ms, host=host, port=port)
        self.today = today or clock.today()
        self.shop = generate_shop(customers, seed, self.today)
        self.store = AccountStore(api_filter=api_filter, customers_mode=customers_mode)
        # several accounts, one integration: each its own id and subdomain, the integration's keys shared
        # (Doc: developers.kommo.com/docs/oauth-20 - one integration's client_id/secret, an account's own address)
        if account_id is not None:
            self.store.account_id = account_id
        if subdomain is not None:
            self.store.subdomain = subdomain
        self._keys = (client_id, client_secret)
        seed_account(self.store, self.shop)
        seed_customers(self.store)  # Customers mode: repeat purchases as customers' transactions
        seed_chats(self.store, seed, chat_share)  # messenger chats for a share of the contacts
        self.store.outbox = self.outbox  # what the generic Salesbot sends lands in GET /_emulator/outbox
        self.set_admin(admin)
        self.bad_answers = BadAnswers()
        self.gate = RateGate(enabled=rate_limit, per_second=requests_per_second, block_after=block_after,
                             block_seconds=block_seconds)
        # Doc: developers.kommo.com/docs/http-codes - real accounts ask for 300 s; tests want less
        self.retry_after = retry_after_seconds
        # Doc (shared/reference/amocrm.md, Writes): a batch may end in 504 when too big or slow, and
        # the client should send fewer. Interpretation: a write of more than this many entities is
        # applied, then the gateway answers 504 (the worst case for exactly-once). None: never.
        self.gateway_timeout_over = gateway_timeout_over
        self._access_ttl = access_token_ttl
        self.auth: AuthServer | None = None
        self.webhooks: WebhookSender | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        """The OAuth server and the webhooks name the account's own address."""
        self.auth = AuthServer(account_id=self.store.account_id, user_id=self.store.current_user_id,
                               host=f"{self.host}:{self.port}", access_ttl=self._access_ttl)
        if self._keys[0] is not None:
            self.auth.client_id = self._keys[0]
        if self._keys[1] is not None:
            self.auth.client_secret = self._keys[1]
        self.webhooks = WebhookSender(self.store, self.base_url)
        self.store.on_event = self.webhooks.on_event

    def on_stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()

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
        """Every access token issued so far is refused (401); the private integration's long-lived one
        too with `include_long_lived`."""
        self.auth.expire_access_tokens(include_long_lived=include_long_lived)

    def revoke_grant(self) -> None:
        self.auth.revoke_grant()

    def widget_token(self, user_id: int | None = None, *, ttl_seconds: int = 300, secret: str | None = None) -> str:
        """The one-time token the account's web interface adds to a widget's request (X-Auth-Token);
        `ttl_seconds < 0`: an expired one, `secret`: one signed with another key (a forgery)."""
        from emulators.amocrm.widget import one_time_token

        return one_time_token(secret or self.client_secret, account_url=self.base_url,
                              account_id=self.store.account_id, user_id=user_id or self.store.current_user_id,
                              client_id=self.client_id, redirect_uri=self.redirect_uri, ttl_seconds=ttl_seconds)

    # --- what the shared control API needs of an account ------------------------------------------

    def set_gateway_timeout_over(self, n: int | None) -> None:
        self.gateway_timeout_over = n

    def clear_faults(self) -> None:
        super().clear_faults()
        self.bad_answers.clear()

    def set_rate_limit(self, on: bool) -> None:
        self.gate.enabled = on
        if not on:
            self.gate.unblock()

    def object_counts(self) -> dict[str, int]:
        return self.store.counts()

    def extra_stats(self) -> dict:
        return {"rate_limited": self.gate.rejected, "blocked": self.gate.blocked,
                "token_exchanges": self.auth.exchanges if self.auth else 0,
                "token_refreshes": self.auth.refreshes if self.auth else 0,
                "webhooks_delivered": len(self.webhooks.delivered) if self.webhooks else 0}

    # --- user-like changes -------------------------------------------------------------------------

    def touch_purchase(self, purchase_id: int, **fields) -> None:
        """A manager edits a lead in the UI (e.g. status_id=143): updated_at moves, webhooks fire."""
        store = self.store
        with store.lock:
            lead = store.leads[int(purchase_id)]
            before = dict(lead)
            store.set_lead_fields(lead, fields)
            store.emit("leads", "update", lead, before)

    def delete_purchase(self, purchase_id: int) -> None:
        """A manager deletes a lead in the UI: it goes to the recycle bin, a `lead_deleted` event is listed
        and the `delete_lead` webhook fires."""
        self.store.delete_lead(int(purchase_id))

    def set_api_filter(self, on: bool) -> None:
        """The account's alpha list filtering on or off (`is_api_filter_enabled`); off, filters are ignored."""
        self.store.api_filter = bool(on)

    def set_admin(self, on: bool) -> None:
        """Whether the token's user is an administrator (admin-only methods answer 403 otherwise)."""
        with self.store.lock:
            user = self.store.users.get(self.store.current_user_id)
            if user is not None:
                user["rights"]["is_admin"] = bool(on)

    def answer_badly_next(self, n: int, kind: str = "html", call: str | None = None, status: int = 200) -> None:
        """The next n matching requests get a bad answer after they ran: `html` (a gateway's page in place of
        JSON, with `status`) or `truncated` (the JSON cut short, the connection closed)."""
        self.bad_answers.add(n, kind, call, status)

    def tasks_by_marker(self) -> Counter:
        """Ground truth for exactly-once checks: open tasks per `rs:<key>` marker."""
        with self.store.lock:
            return Counter(k for t in self.store.tasks.values() for k in MARKER_RE.findall(t["text"]))

    # --- control routes only an account has ----------------------------------------------------------

    def crm_control(self, command: str, route: list[str], body: bytes) -> tuple[int, object] | None:
        """`POST /_emulator/auth_code`: what an admin's consent hands the redirect URI, with the app's keys."""
        if route == ["auth_code"] and command == "POST":
            return 200, {"code": self.issue_auth_code(), "client_id": self.client_id,
                         "client_secret": self.client_secret, "redirect_uri": self.redirect_uri}
        if route == ["delete_purchase"] and command == "POST":
            try:
                self.delete_purchase(int(json.loads(body or b"{}")["id"]))
            except (KeyError, TypeError, ValueError):
                return 400, {"error": "BAD_CONTROL", "error_description": 'send {"id": <an existing lead id>}'}
            return 200, {"ok": True}
        return None

    def apply_control(self, data: dict) -> None:
        """The shared body of POST /_emulator/faults, and `revoke_grant`."""
        super().apply_control(data)
        if data.get("revoke_grant"):
            self.revoke_grant()
        if "api_filter" in data:
            self.set_api_filter(bool(data["api_filter"]))
        if "admin" in data:
            self.set_admin(bool(data["admin"]))
        if data.get("bad_answers"):
            spec = dict(data["bad_answers"])
            self.answer_badly_next(int(spec.get("n", 1)), str(spec.get("kind", "html")), spec.get("call"),
                                   int(spec.get("status", 200)))
