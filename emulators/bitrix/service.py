"""`BitrixEmulator`: a seeded portal behind a real HTTP server, steerable from Python or HTTP."""

from __future__ import annotations

import hashlib
import threading
from datetime import date, datetime

from emulators.shop import Shop, generate_shop

from .app_context import AppContext
from .dispatch import Dispatcher
from .limits import Faults, LeakyBucket, OperatingMeter, Stats
from .protocol import PORTAL_TZ, as_int, local_ts
from .seed import seed_portal
from .server import EmulatorHTTPServer
from .store import Portal


def default_token(seed: int) -> str:
    """A 16-character webhook code, the same for the same seed."""
    return hashlib.sha256(f"repeat-sales-emulator-{seed}".encode()).hexdigest()[:16]


class BitrixEmulator:
    """A Bitrix24 portal emulator seeded with the synthetic shop.

    Args:
        rate_limit: enforce the leaky bucket (`bucket_size` requests, draining
            `drain_per_second`).
        time_scale: speed of the rate-limit clocks: the bucket drains `time_scale` times faster
            and operating-time windows last `600 / time_scale` s, so a benchmark can replay the
            same protocol in less wall time (1.0 = real portal timing).
        operating_limit_seconds: per-method operating-time limit over 10 minutes (None = off);
            each call books `operating_per_call` seconds.
        faults: share spec such as "503:0.2,429:0.1,500:0.05,drop:0.05".
        shop: a ready shop to seed instead of generating one; keep_shop=False drops it after
            seeding (saves memory at a million deals; `emu.store` stays the ground truth).
    """

    def __init__(self, customers: int = 300, seed: int = 42, today: date | None = None,
                 rate_limit: bool = False, latency_ms: int = 0, faults: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, bucket_size: int = 50, drain_per_second: float = 2.0,
                 webhook_user: int = 1, webhook_token: str | None = None, *, time_scale: float = 1.0,
                 operating_limit_seconds: float | None = None, operating_per_call: float = 0.001,
                 shop: Shop | None = None, keep_shop: bool = True) -> None:
        shop = shop if shop is not None else generate_shop(customers, seed, today)
        self.seed = seed
        self.today = shop.today
        self.host, self.port = host, port
        self.webhook_user = webhook_user
        self.webhook_token = webhook_token or default_token(seed)
        self.time_scale = time_scale
        self.bucket_size, self.drain_per_second = bucket_size, drain_per_second
        self.bucket = LeakyBucket(bucket_size, drain_per_second, time_scale) if rate_limit else None
        self.meter = OperatingMeter(operating_per_call, operating_limit_seconds, time_scale)
        self.faults = Faults(faults, seed)
        self.faults.set_latency(latency_ms)
        self.stats_ = Stats()
        self.store = Portal({i: name for i, name in enumerate(shop.pipelines)})
        self.store.webhook_user = webhook_user
        seed_portal(self.store, shop, self.store.clock())
        # The shop is the ground truth of what was seeded; drop it for huge benchmark portals.
        self.shop: Shop | None = shop if keep_shop else None
        self.dispatcher = Dispatcher(self.store, self.meter, self.faults, self.stats_)
        # a local application's side of the portal: OAuth, install callback, events, robots
        self.app = AppContext(self)
        self.store.listeners.append(self.app.on_change)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----
    def start(self) -> BitrixEmulator:
        if self._server is None:
            self._server = EmulatorHTTPServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, name="bitrix-emulator",
                                            kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.app.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread (standalone mode) until `stop()` from another thread."""
        if self._server is None:
            self._server = EmulatorHTTPServer((self.host, self.port), self)
            self.port = self._server.server_address[1]
        self._server.serve_forever(poll_interval=0.1)

    def __enter__(self) -> BitrixEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/{self.webhook_user}/{self.webhook_token}/"

    # ---- counters ----
    def stats(self) -> dict:
        """Exactly what GET /_emulator/stats returns."""
        snap = self.stats_.snapshot()
        with self.store.lock:
            snap["objects"] = self.store.counts()
        return snap

    def reset_stats(self) -> None:
        """Zero the request counters (and the rate-limit state); objects stay."""
        self.stats_.reset()
        if self.bucket is not None:
            self.bucket.reset()
        self.meter.reset()

    # ---- faults ----
    def set_faults(self, spec: str | None) -> None:
        self.faults.set_spec(spec)

    def fail_next(self, n: int, status: int = 503, method: str | None = None) -> None:
        """The next n requests (or batch commands of `method`) fail with `status` and its documented body."""
        self.faults.fail_next(n, status, method)

    def drop_next(self, n: int, method: str | None = None) -> None:
        """The next n matching requests run, then the connection closes without an answer."""
        self.faults.drop_next(n, method)

    def set_latency(self, ms: int, method: str | None = None) -> None:
        self.faults.set_latency(ms, method)

    def set_rate_limit(self, on: bool) -> None:
        self.bucket = LeakyBucket(self.bucket_size, self.drain_per_second, self.time_scale) if on else None

    def apply_control(self, data: dict) -> None:
        """The body of POST /_emulator/faults: spec, fail_next, drop_next, latency_ms, rate_limit."""
        if "spec" in data:
            self.set_faults(data["spec"])
        fail = data.get("fail_next")
        if isinstance(fail, dict):
            self.fail_next(as_int(fail.get("n"), 0) or 0, as_int(fail.get("status"), 503) or 503, fail.get("method"))
        drop = data.get("drop_next")
        if isinstance(drop, dict):
            self.drop_next(as_int(drop.get("n"), 0) or 0, drop.get("method"))
        if "latency_ms" in data:
            self.set_latency(as_int(data["latency_ms"], 0) or 0, data.get("latency_method"))
        if "rate_limit" in data:
            self.set_rate_limit(bool(data["rate_limit"]))

    # ---- acting like a user ----
    def touch_deal(self, deal_id: int, **fields) -> None:
        """Change a deal as a user would (DATE_MODIFY becomes now). Keys are REST field names."""
        with self.store.lock:
            row = self.store.deals.rows[deal_id]
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
