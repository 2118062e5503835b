"""What `scale_sync.py` needs per CRM: a standalone emulator process, the real adapter pointed at it,
user-like changes to deals, the request lower bound, and the naive way a script would pull.

Time scale T: both the emulator's rate limit and the client's limiter run T times faster than the
real CRM (Bitrix24: leaky bucket of 50 draining 2*T requests/s; amoCRM: 7*T requests/s), so the
same protocol, request for request, replays in 1/T of the wall time the real API would need.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.demo import ITEMS_PER_REQUEST, lower_bound  # noqa: E402

BITRIX_RPS = 2.0  # Doc: settings/performance/limits.md - the bucket drains 2 requests/s (X=50)
BITRIX_POOL = 45  # the client's burst, a little under the portal's bucket of 50: jitter never trips it
AMOCRM_RPS = 7.0  # Doc: developers.kommo.com/docs/limitations - at most 7 requests per second


@dataclass
class Emulator:
    """A standalone emulator process and the settings it printed first (design.md)."""

    crm: str
    process: subprocess.Popen
    settings: dict[str, str] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def root(self) -> str:
        url = self.settings.get("BITRIX_WEBHOOK_URL") or self.settings["AMOCRM_BASE_URL"]
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.root}/_emulator/stats", timeout=60) as answer:
            return json.loads(answer.read())

    def reset_stats(self) -> None:
        """Zero the request counters (Bitrix24: and the leaky bucket) between measured phases."""
        request = urllib.request.Request(f"{self.root}/_emulator/reset_stats", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def rss_mb(self) -> float:
        return _peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(crm: str, customers: int, seed: int, today: str, time_scale: float,
                   cost_model: str = "real") -> Emulator:
    """`python -m emulators.<crm> ... --rate-limit on` in its own process; returns once it serves.

    Bitrix24's `cost_model`: "real" bills each call the portal's time (operating-time limit, 60-s cut).
    """
    common = ["--customers", str(customers), "--seed", str(seed), "--today", today, "--rate-limit", "on"]
    if crm == "bitrix":
        args = ["-m", "emulators.bitrix", *common, "--time-scale", str(time_scale), "--cost-model", cost_model]
        wanted = ("BITRIX_WEBHOOK_URL",)
    else:
        args = ["-m", "emulators.amocrm", *common, "--requests-per-second", str(AMOCRM_RPS * time_scale)]
        wanted = ("AMOCRM_BASE_URL", "AMOCRM_ACCESS_TOKEN")
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    emulator = Emulator(crm, process)
    while not all(k in emulator.settings for k in wanted):
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {crm} emulator exited with {process.wait()} before printing its settings")
        name, _, value = line.strip().partition("=")
        emulator.settings[name] = value
    emulator.started_seconds = round(time.monotonic() - started, 1)
    return emulator


def make_adapter(emulator: Emulator, time_scale: float):
    """The real adapter, its client limiter sped up by the same factor as the emulator's limit."""
    if emulator.crm == "bitrix":
        from connector.bitrix import BitrixAdapter

        return BitrixAdapter(emulator.settings["BITRIX_WEBHOOK_URL"], requests_per_second=BITRIX_RPS * time_scale,
                             request_pool=BITRIX_POOL, budget=scaled_budget(time_scale))
    from connector.amocrm import AmoAdapter

    return AmoAdapter(emulator.settings["AMOCRM_BASE_URL"], access_token=emulator.settings["AMOCRM_ACCESS_TOKEN"],
                      requests_per_second=AMOCRM_RPS * time_scale)


def scaled_budget(time_scale: float):
    """The adapter's operating-time budget on the emulator's clock: 10-minute windows last 600 / T s,
    and the longest wait it sits through shrinks alike."""
    from connector.bitrix.budget import MAX_WAIT_SECONDS, WINDOW_SECONDS, OperatingBudget

    return OperatingBudget(window_seconds=WINDOW_SECONDS / time_scale, max_wait_seconds=MAX_WAIT_SECONDS / time_scale)


def offset_bitrix_read(emulator: Emulator, time_scale: float) -> dict:
    """The old way on the same portal: fast-bitrix24's get_all of the won deals, `start` = 0, 50, 100...
    (the first call learns `total`, then 50 offsets a batch). Returns what it read and how it ended."""
    import asyncio

    import aiohttp
    from fast_bitrix24 import BitrixAsync

    statuses: Counter[int] = Counter()

    async def answered(_session, _ctx, params) -> None:
        statuses[params.response.status] += 1

    async def read() -> list:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(answered)
        async with aiohttp.ClientSession(raise_for_status=True, trace_configs=[trace]) as session:
            bx = BitrixAsync(emulator.settings["BITRIX_WEBHOOK_URL"], verbose=False, client=session,
                             requests_per_second=BITRIX_RPS * time_scale, request_pool_size=BITRIX_POOL)
            with bx.slow(1):
                return await bx.get_all("crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S"},
                                                          "select": ["ID", "CONTACT_ID", "OPPORTUNITY"]})

    started = time.monotonic()
    loop = asyncio.new_event_loop()
    outcome, rows = "completed", 0
    try:
        rows = len(loop.run_until_complete(read()))
    except Exception as exc:  # what the script would have died of
        outcome = f"{type(exc).__name__}: {str(exc).split(', url=')[0][:160]}"
    finally:
        loop.close()
    return {"deals_read": rows, "outcome": outcome, "seconds": round(time.monotonic() - started, 1),
            "http_statuses": {str(k): v for k, v in sorted(statuses.items())}}


def pull_bound(crm: str, pulled: dict, *, deals_read: int | None = None) -> tuple[dict[str, int], int]:
    """The fewest requests that can carry what a pull read: ceil(items / per request) per list.

    Bitrix24 carries 2,500 list rows a request (50 pages of 50 in a batch); amoCRM 250 a page, and a
    lead's products come inside the lead (`with=catalog_elements`), so they cost nothing extra.
    """
    items = {"customers": pulled.get("customers", 0),
             "deals": pulled.get("purchases", 0) + pulled.get("removed", 0) if deals_read is None else deals_read,
             "products": pulled.get("products", 0)}
    if crm == "bitrix":
        items["product_rows"] = pulled.get("line_items", 0)
    return items, lower_bound(items, ITEMS_PER_REQUEST[crm])


def change_deals(emulator: Emulator, deal_ids: list[str], time_scale: float) -> int:
    """Change deals as users would, through the API (amount +1; Bitrix24: every 20th lost); returns requests."""
    if emulator.crm == "bitrix":
        from connector.bitrix.client import BitrixClient

        client = BitrixClient(emulator.settings["BITRIX_WEBHOOK_URL"], requests_per_second=BITRIX_RPS * time_scale,
                              request_pool=BITRIX_POOL)
        try:
            for i in range(0, len(deal_ids), 50):
                commands = {}
                for n, deal_id in enumerate(deal_ids[i:i + 50], start=i):
                    fields = {"STAGE_ID": "LOSE"} if n % 20 == 19 else {"OPPORTUNITY": 1000 + n % 997}
                    commands[f"u{n}"] = ("crm.deal.update", {"id": deal_id, "fields": fields})
                client.batch(commands)
            return client.requests
        finally:
            client.close()
    from connector.amocrm.client import AmoClient
    from connector.amocrm.tokens import LongLivedToken

    client = AmoClient(emulator.settings["AMOCRM_BASE_URL"], auth=LongLivedToken(emulator.settings["AMOCRM_ACCESS_TOKEN"]),
                       requests_per_second=AMOCRM_RPS * time_scale)
    try:
        for i in range(0, len(deal_ids), 250):  # Doc: amoCRM leads-api - up to 250 per PATCH
            body = [{"id": int(d), "price": 1000 + n % 997} for n, d in enumerate(deal_ids[i:i + 250], start=i)]
            client.request("PATCH", "/api/v4/leads", json_body=body, kind="write")
        return client.requests
    finally:
        client.close()


def naive_bitrix_pull(emulator: Emulator, time_scale: float) -> dict:
    """What a script would write with fast-bitrix24: get_all per list, then the rows deal by deal.

    `get_by_ID("crm.deal.productrows.get", ids)` sends one command per deal, 50 to a batch. It runs
    in fast-bitrix24's `slow()` mode (one request at a time): at its default 50 concurrent requests
    its throttle (which books a request only once answered) overruns the portal's bucket, draws 503
    storms and may give up ("All attempts to get data from server exhausted"). Refusals are counted.
    """
    import asyncio

    import aiohttp
    from fast_bitrix24 import BitrixAsync

    statuses: Counter[int] = Counter()

    async def answered(_session, _ctx, params) -> None:
        statuses[params.response.status] += 1

    async def refused(_session, _ctx, params) -> None:
        statuses[getattr(params.exception, "status", 0)] += 1

    async def pull() -> dict:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(answered)
        trace.on_request_exception.append(refused)
        async with aiohttp.ClientSession(raise_for_status=True, trace_configs=[trace]) as session:
            bx = BitrixAsync(emulator.settings["BITRIX_WEBHOOK_URL"], verbose=False, client=session,
                             requests_per_second=BITRIX_RPS * time_scale, request_pool_size=BITRIX_POOL)
            with bx.slow(1):
                contacts = await bx.get_all("crm.contact.list", {"select": [
                    "ID", "NAME", "LAST_NAME", "PHONE", "EMAIL", "UF_*"]})
                deals = await bx.get_all("crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S"}, "select": [
                    "ID", "CONTACT_ID", "CLOSEDATE", "OPPORTUNITY", "CURRENCY_ID"]})
                rows = await bx.get_by_ID("crm.deal.productrows.get", [d["ID"] for d in deals])
        return {"customers": len(contacts), "purchases": len(deals),
                "line_items": sum(len(r) for r in rows.values()) if isinstance(rows, dict) else 0}

    started = time.monotonic()
    loop = asyncio.new_event_loop()
    try:
        out = loop.run_until_complete(pull())
    finally:
        loop.close()
    return {**out, "seconds": round(time.monotonic() - started, 1), "refused_503": statuses.get(503, 0)}


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return math.nan
