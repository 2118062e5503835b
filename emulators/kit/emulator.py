"""`Emulator`: the lifecycle and the one control API every CRM emulator offers, from Python and over
HTTP (`GET /_emulator/stats`, `POST /_emulator/reset_stats`, `POST /_emulator/faults`,
`GET /_emulator/outbox`).

A CRM's emulator adds its store, its API handler and what only it has (rate limits, tokens, purchases).
"""

from __future__ import annotations

import json
import threading

from .faults import Faults
from .http import EmulatorHandler, EmulatorHTTPServer
from .outbox import Outbox
from .stats import RequestStats


class Emulator:
    """Start/stop (or `with`), faults, latency, stats and user-like edits under the same names everywhere.

    Args:
        faults: random shares, e.g. "503:0.2,429:0.1,drop:0.05" (see `emulators.kit.faults`).
        latency_ms: every answer delayed by this much.
        count_commands: also count the commands inside batches (`stats()["commands"]`).
    """

    thread_name = "emulator"  # the server thread's name
    handler: type[EmulatorHandler] = EmulatorHandler

    def __init__(self, *, seed: int, faults: str | dict | None, latency_ms: float, host: str, port: int,
                 count_commands: bool = False) -> None:
        self.seed = seed
        self.host, self.port = host, port
        self.faults = Faults(faults, seed, latency_ms)
        self.requests = RequestStats(commands=count_commands)
        self.outbox = Outbox()  # what would have reached customers (GET /_emulator/outbox)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----
    def start(self) -> Emulator:
        if self._server is None:
            self._server = EmulatorHTTPServer((self.host, self.port), self.handler, self)
            self.port = self._server.server_address[1]
            self.on_start()
            self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name,
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
        self.on_stop()

    def on_start(self) -> None:
        """Bound to a port, not yet serving: set up what needs the address."""

    def on_stop(self) -> None:
        """Stopped: end background senders."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- counters ----
    def stats(self) -> dict:
        """Exactly what GET /_emulator/stats returns: requests per call, and what the CRM holds now."""
        snap = self.requests.snapshot()
        snap["objects"] = self.object_counts()
        snap.update(self.extra_stats())
        return snap

    def reset_stats(self) -> None:
        """Zero the request counters (and the rate-limit state); objects stay."""
        self.requests.reset()
        self.reset_limits()

    def object_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def extra_stats(self) -> dict:
        return {}

    def reset_limits(self) -> None:
        """Forget the rate-limit state (a CRM without one has nothing to forget)."""

    # ---- faults ----
    def set_faults(self, spec: str | dict | None) -> None:
        """Random shares from now on, e.g. "503:0.2,drop:0.05"; None stops them."""
        self.faults.set_spec(spec)

    def fail_next(self, n: int, status: int = 503, call: str | None = None) -> None:
        """The next n requests (those doing `call` only, when given) fail with `status` and the CRM's body;
        nothing runs. `call`: a Bitrix24 method (also hit inside a batch) or an amoCRM "METHOD /path"."""
        self.faults.fail_next(n, status, call)

    def drop_next(self, n: int, call: str | None = None) -> None:
        """The next n matching requests run, then the connection closes without an answer."""
        self.faults.drop_next(n, call)

    def set_latency(self, ms: float, call: str | None = None) -> None:
        """Every answer (or, with `call`, each answer doing it) takes at least `ms` more."""
        self.faults.set_latency(ms, call)

    def clear_faults(self) -> None:
        """No queued faults, random shares or latency any more."""
        self.faults.clear()

    def set_rate_limit(self, on: bool) -> None:
        raise NotImplementedError

    # ---- acting like the CRM's users ----
    def touch_purchase(self, purchase_id: int, **fields) -> None:
        """A manager edits a purchase (a deal, a lead): its modification time moves, events fire.
        Keys are the CRM's API field names."""
        raise NotImplementedError

    def expire_access_tokens(self) -> None:
        """Every OAuth access token issued so far is refused from now on (401); refreshing works."""
        raise NotImplementedError

    # ---- over HTTP ----
    def control(self, command: str, route: list[str], body: bytes) -> tuple[int, object]:
        """Answer `/_emulator/<route>`; routes only one CRM has go to `crm_control`."""
        name = "/".join(route)
        if name == "stats" and command == "GET":
            return 200, self.stats()
        if name == "outbox" and command == "GET":
            return 200, self.outbox.items()
        if name == "reset_stats" and command == "POST":
            self.reset_stats()
            return 200, {"ok": True}
        if name == "faults" and command == "POST":
            try:
                data = json.loads(body.decode("utf-8") or "{}")
                self.apply_control(data if isinstance(data, dict) else {"spec": data})
            except (TypeError, ValueError, AttributeError) as err:
                return control_error(400, "BAD_CONTROL", str(err))
            return 200, {"ok": True}
        answer = self.crm_control(command, route, body)
        return answer if answer is not None else control_error(404, "NOT_FOUND", f"no control route {name!r}")

    def crm_control(self, command: str, route: list[str], body: bytes) -> tuple[int, object] | None:
        return None

    def apply_control(self, data: dict) -> None:
        """The body of POST /_emulator/faults: `spec`, `fail_next {n, status, call}`, `drop_next {n, call}`,
        `latency_ms` (with `call`), `rate_limit`, `expire_access_tokens`, `clear`."""
        if data.get("clear"):
            self.clear_faults()
        if "spec" in data:
            self.set_faults(data["spec"])
        fail = data.get("fail_next")
        if isinstance(fail, dict):
            self.fail_next(int(fail.get("n", 1)), int(fail.get("status", 503)), fail.get("call"))
        drop = data.get("drop_next")
        if isinstance(drop, dict):
            self.drop_next(int(drop.get("n", 1)), drop.get("call"))
        if "latency_ms" in data:
            self.set_latency(float(data["latency_ms"]), data.get("call"))
        if "rate_limit" in data:
            self.set_rate_limit(bool(data["rate_limit"]))
        if data.get("expire_access_tokens"):
            self.expire_access_tokens()


def control_error(status: int, code: str, description: str) -> tuple[int, dict]:
    return status, {"error": code, "error_description": description}
