"""`BitrixEmulator`: a seeded portal behind a real HTTP server, steerable from Python or HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime

from emulators.kit import Emulator
from emulators.shop import Shop, generate_shop

from .app_context import AppContext
from .bad_answers import BadAnswers
from .dispatch import Dispatcher
from .limits import OPERATING_LIMIT_SECONDS, CostModel, LeakyBucket, OperatingMeter
from .openlines import seed_chats
from .protocol import PORTAL_TZ, local_ts
from .rights import parse_scopes
from .seed import seed_portal
from .server import Handler
from .store import Portal


def default_token(seed: int) -> str:
    """A 16-character webhook code, the same for the same seed."""
    return hashlib.sha256(f"repeat-sales-emulator-{seed}".encode()).hexdigest()[:16]


class BitrixEmulator(Emulator):
    """A Bitrix24 portal emulator seeded with the synthetic shop; the control API is `Emulator`'s.

    Args:
        rate_limit: enforce the leaky bucket (`bucket_size` requests, draining
            `drain_per_second`).
        time_scale: speed of the rate-limit clocks: the bucket drains `time_scale` times faster
            and operating-time windows (and blocks) last `600 / time_scale` s, so a benchmark can
            replay the same protocol in less wall time (1.0 = real portal timing).
        cost_model: "real" (default) bills each call the time the portal would spend on it: a list
            call with start >= 0 ~21 us for each row counted and skipped, a keyset call one page,
            and cuts a request past 60 s; "off" bills every call `operating_per_call` (limits.py).
        operating_limit_seconds: per-method operating-time limit over 10 minutes; by default 480 s
            with the real cost model, none with "off"; 0 or less = none.
        batch_billing: "inner" (the docs: each command to its method) or "whole" (the request to
            `batch`, as measured on a self-hosted portal).
        faults: share spec such as "503:0.2,429:0.1,500:0.05,drop:0.05".
        shop: a ready shop to seed instead of generating one; keep_shop=False drops it after
            seeding (saves memory at a million deals; `emu.store` stays the ground truth).
        webhook_admin: whether the webhook's user (also the user the app is installed by) is a portal
            administrator; admin-only methods refuse everyone else (rights.py).
        scopes: the scopes of the webhook and of the app's tokens, e.g. "crm,task,user" (None: all the
            plugin uses); a method outside them answers 403 insufficient_scope.
        mailbox: whether the portal has a mailbox to send e-mail activities from (`--mailbox yes|no`);
            without one crm.activity.add answers `Email send error. "From" is not found`.
        chat_share: the share of customer cards with an open-line chat (WhatsApp for a card with a phone,
            Telegram otherwise), the same cards for the same seed (`--chat-share`; openlines.py). 0 by
            default: a fresh portal has no open lines connected.
        sms_automation: whether the admin bound the robot "Send SMS" to the app's trigger
            (`--sms-automation yes|no`, `set_sms_automation`; triggers.py).
        app_client_id, app_client_secret: the keys of the app installed here (`--app-client-id`,
            `--app-client-secret`); several portals given the same keys share one app, as real portals share a
            marketplace app, each with its own member_id and domain (generated keys when not given).
    """

    thread_name = "bitrix-emulator"
    handler = Handler

    def __init__(self, customers: int = 300, seed: int = 42, today: date | None = None,
                 rate_limit: bool = False, latency_ms: int = 0, faults: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, bucket_size: int = 50, drain_per_second: float = 2.0,
                 webhook_user: int = 1, webhook_token: str | None = None, *, time_scale: float = 1.0,
                 operating_limit_seconds: float | None = None, operating_per_call: float = 0.001,
                 cost_model: str = "real", batch_billing: str = "inner",
                 shop: Shop | None = None, keep_shop: bool = True, webhook_admin: bool = True,
                 scopes: str | Iterable[str] | None = None, mailbox: bool = True, chat_share: float = 0.0,
                 sms_automation: bool = False, app_client_id: str | None = None,
                 app_client_secret: str | None = None) -> None:
        super().__init__(seed=seed, faults=faults, latency_ms=latency_ms, host=host, port=port,
                         count_commands=True)
        shop = shop if shop is not None else generate_shop(customers, seed, today)
        self.today = shop.today
        self.webhook_user = webhook_user
        self.webhook_token = webhook_token or default_token(seed)
        self.time_scale = time_scale
        self.bucket_size, self.drain_per_second = bucket_size, drain_per_second
        self.bucket = LeakyBucket(bucket_size, drain_per_second, time_scale) if rate_limit else None
        self.cost = CostModel(cost_model, operating_per_call)
        if operating_limit_seconds is None and self.cost.real:
            operating_limit_seconds = OPERATING_LIMIT_SECONDS
        limit = operating_limit_seconds if operating_limit_seconds and operating_limit_seconds > 0 else None
        self.meter = OperatingMeter(operating_per_call, limit, time_scale)
        self.bad_answers = BadAnswers()
        self.store = Portal({i: name for i, name in enumerate(shop.pipelines)})
        self.store.webhook_user = webhook_user
        seed_portal(self.store, shop, self.store.clock())
        self.store.mailbox = mailbox
        seed_chats(self.store, seed, chat_share)
        self.store.sms_automation = sms_automation
        self.store.outbox = self.outbox  # e-mails sent from the portal land in GET /_emulator/outbox
        self.scopes = parse_scopes(scopes)
        self.set_rights(admin=webhook_admin)
        # The shop is the ground truth of what was seeded; drop it for huge benchmark portals.
        self.shop: Shop | None = shop if keep_shop else None
        self.dispatcher = Dispatcher(self.store, self.meter, self.faults, self.requests, self.cost, batch_billing)
        # a local application's side of the portal: OAuth, install callback, events, robots
        self.app = AppContext(self, client_id=app_client_id, client_secret=app_client_secret)
        self.store.listeners.append(self.app.on_change)

    def on_stop(self) -> None:
        self.app.close()

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/{self.webhook_user}/{self.webhook_token}/"

    # ---- what the shared control API needs of a portal ----
    def object_counts(self) -> dict[str, int]:
        with self.store.lock:
            return self.store.counts()

    def reset_limits(self) -> None:
        if self.bucket is not None:
            self.bucket.reset()
        self.meter.reset()
        self.dispatcher.lists.reset()
        self.dispatcher.refused.clear()

    def extra_stats(self) -> dict:
        """`list_calls` (keyset / counted / offset / unordered calls and rows served, per list method),
        `operating` (per method: the highest 10-minute sum and all time booked) and `refused`
        (OPERATION_TIME_LIMIT answers, requests cut at 60 s) and `rate_limited` (requests the leaky bucket
        answered 503 QUERY_LIMIT_EXCEEDED; Doc: settings/performance/limits.md) since the last reset."""
        bucket = self.bucket
        return {"list_calls": self.dispatcher.lists.snapshot(), "operating": self.meter.snapshot(),
                "refused": dict(self.dispatcher.refused), "rate_limited": bucket.rejected if bucket else 0}

    # ---- a busy portal, and answers that are not the portal's JSON ----
    def add_operating(self, seconds: float, call: str | None = None) -> None:
        """Every call of `call` (of every method, without) keeps the portal `seconds` longer: billed as
        operating time and counted toward the 60-s cut, never slept. 0 takes it back."""
        key = call.strip().lower() if call else None
        if seconds:
            self.cost.extra[key] = float(seconds)
        else:
            self.cost.extra.pop(key, None)

    def answer_html(self, n: int | None = None, status: int = 200, call: str | None = None) -> None:
        """The next n requests (all, with None, until `clear_faults`; those doing `call`, when given) get a
        text/html page instead of JSON; nothing runs."""
        self.bad_answers.answer_html(n, status, call)

    def truncate_next(self, n: int, call: str | None = None) -> None:
        """The next n requests (doing `call`, when given) run, then their JSON ends half-way."""
        self.bad_answers.truncate_next(n, call)

    def clear_faults(self) -> None:
        super().clear_faults()
        self.bad_answers.clear()
        self.cost.extra.clear()

    def apply_control(self, data: dict) -> None:
        """The shared keys, plus `answer_html {n, status, call}`, `truncate_next {n, call}` and
        `add_operating {seconds, call}`, `sms_automation` true|false."""
        super().apply_control(data)
        html = data.get("answer_html")
        if isinstance(html, dict):
            n = html.get("n")
            self.answer_html(None if n is None else int(n), int(html.get("status", 200)), html.get("call"))
        cut = data.get("truncate_next")
        if isinstance(cut, dict):
            self.truncate_next(int(cut.get("n", 1)), cut.get("call"))
        if "sms_automation" in data:
            self.set_sms_automation(bool(data["sms_automation"]))
        busy = data.get("add_operating")
        if isinstance(busy, dict):
            self.add_operating(float(busy.get("seconds", 0)), busy.get("call"))

    def set_sms_automation(self, on: bool) -> None:
        """The admin bound (True) or unbound the robot "Send SMS" on the app's trigger."""
        with self.store.lock:
            self.store.sms_automation = on

    def set_rate_limit(self, on: bool) -> None:
        self.bucket = LeakyBucket(self.bucket_size, self.drain_per_second, self.time_scale) if on else None

    def set_rights(self, *, admin: bool | None = None, scopes: str | Iterable[str] | None = None) -> None:
        """Make the webhook's user an administrator or not, and/or change the scopes (`--webhook-admin`,
        `--scopes`); calls from then on are judged by them."""
        if admin is not None:
            with self.store.lock:
                user = self.store.users.rows.get(self.webhook_user)
                if user is not None:
                    user.is_admin = admin
        if scopes is not None:
            self.scopes = parse_scopes(scopes)

    def expire_access_tokens(self) -> None:
        self.app.expire_access_tokens()

    def crm_control(self, command: str, route: list[str], body: bytes) -> tuple[int, object] | None:
        if route[:1] == ["app"]:  # /_emulator/app/...: the local application's side (app_context.py)
            return self.app.control(command, route[1:], body)
        return None

    # ---- acting like a user ----
    def touch_purchase(self, purchase_id: int, **fields) -> None:
        """Change a deal as a user would (DATE_MODIFY becomes now, events fire). Keys are REST field names."""
        with self.store.lock:
            row = self.store.deals.rows[purchase_id]
            self.store.write_deal(row, {k.upper(): v for k, v in fields.items()})

    def add_deal(self, contact_id: int, won: bool = True, amount: float | None = None,
                 products: list[tuple[int, float, float]] | None = None, closed: datetime | None = None,
                 company_id: int | None = None, category_id: int = 0, currency: str = "RUB") -> int:
        """Create a deal for a contact, as a user would; returns its id."""
        with self.store.lock:
            portal = self.store
            code = "WON" if won else "NEW"
            fields: dict = {"CONTACT_ID": contact_id, "CATEGORY_ID": category_id, "CURRENCY_ID": currency,
                            "STAGE_ID": code if category_id == 0 else f"C{category_id}:{code}"}
            if company_id:
                fields["COMPANY_ID"] = company_id
            if closed is not None:
                ts = local_ts(closed) if closed.tzinfo is None else int(closed.timestamp())
                fields["CLOSEDATE"] = datetime.fromtimestamp(ts, PORTAL_TZ).isoformat()
            if amount is not None:
                fields["OPPORTUNITY"] = amount
                fields["IS_MANUAL_OPPORTUNITY"] = "Y" if not products else "N"
            deal = portal.write_deal(None, fields)
            if products:
                portal.set_product_rows(deal, [{"PRODUCT_ID": pid, "QUANTITY": qty, "PRICE": price}
                                               for pid, qty, price in products])
            return deal.id
