"""Benchmark: many portals, one hosted app (issue 19) - tenant syncs per minute with 1, 2 and 4 workers, the
scaling efficiency, and the time from a portal's event to the action it makes due written in the CRM.

For each worker count it starts the whole hosted app with tests/hosting/harness.py: a private PostgreSQL
and Redis, `--portals` emulated Bitrix24 portals of one app (in this process), `repeat-sales serve` and K
`repeat-sales worker` processes. Then:

1. installs the app into every portal through the portal (`POST /_emulator/app/install`); each install
   prepares the portal and queues its first sync; the clock runs until every portal's CRM data equals the
   single-portal run of the same shop (`repeat-sales install` + `sync` on a webhook, SQLite): tenant syncs
   per minute = portals / that time. A portal that never gets there is counted and named.
2. posts one event per portal at once (a won deal, as a manager closes one): the portal sends its event
   to serve, serve keeps it and queues the tenant's sync, a worker writes the "thanks" the purchase made
   due. Event to written action = from the deal's creation to the action's appearance in the portal.

QUEUE_REDELIVER_SECONDS is the default 600 (the tests' 4 s re-sends every job that waits longer than that
in a long queue). The portals' rate limit is off and the app's own set to 50 requests/s: this measures what the app costs
(serve, workers, PostgreSQL, Redis), not Bitrix24's 2 requests/s (docs/scaling.md adds that on paper from
the requests each sync made, printed here). One JSON line per worker count, then a Markdown table.

    python benchmarks/many_portals.py                                  # 100 portals x 2,000 customers
    python benchmarks/many_portals.py --portals 10 --customers 300     # a quick look
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hosting.harness import Hosting, crm_state, markers, single_portal_state  # noqa: E402


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))] if ordered else float("nan")


def run(workers: int, portals: int, customers: int, single: dict, workdir: Path, timeout: float,
        state: str | None) -> dict:
    with Hosting(workdir / f"w{workers}", portals=portals, customers=customers, amocrm=False, workers=workers,
                 queue=True, pg_url=state, extra={"QUEUE_REDELIVER_SECONDS": 600}) as h:
        started = time.monotonic()
        h.install_all()
        installed = time.monotonic() - started
        equal = done_at = 0
        deadline = started + timeout
        while time.monotonic() < deadline:
            equal = sum(crm_state(emu) == single for emu in h.portals)
            if equal == portals:
                break
            time.sleep(1.0)
        done_at = time.monotonic() - started
        requests_before = [emu.stats()["requests_total"] for emu in h.portals]

        # one event per portal, all at once: a won deal whose "thanks" is due today
        due = {}
        posted = time.monotonic()
        for emu in h.portals:
            contact = sorted(emu.store.contacts.rows)[3]
            deal = emu.add_deal(contact, won=True, amount=4200, closed=datetime(2026, 6, 13, 12, 0))
            due[id(emu)] = (emu, f"v1:{contact}:calendar:{deal}:thanks", time.monotonic())
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(due) and time.monotonic() < deadline:
            for key, (emu, marker, at) in due.items():
                if key not in seen and markers(emu)[marker] >= 1:
                    seen[key] = time.monotonic() - at
            time.sleep(0.2)
        doubled = sum(max(markers(emu).values(), default=0) > 1 for emu in h.portals)
        time.sleep(3)  # the syncs the event's own writes set off
        per_portal = sync_counts(h)
        event_requests = statistics.median(emu.stats()["requests_total"] - n for emu, n in zip(h.portals, requests_before,
                                                                                               strict=True))
        return {"workers": workers, "portals": portals, "customers": customers,
                "installs_posted_s": round(installed, 1), "all_synced_s": round(done_at, 1),
                "equal_to_single": equal, "syncs_per_minute": round(60 * equal / done_at, 2) if done_at else 0,
                "events": len(due), "events_written": len(seen), "event_burst_s": round(time.monotonic() - posted, 1),
                "event_to_action_p50_s": round(statistics.median(seen.values()), 2) if seen else None,
                "event_to_action_p95_s": round(p95(list(seen.values())), 2) if seen else None,
                "portals_with_a_doubled_action": doubled,
                "requests_install_and_first_sync": statistics.median(requests_before),
                "requests_after_the_event": event_requests,
                # over install, first sync and the one event, with every echo of the app's own writes
                "sync_requests_per_portal": statistics.median(n for n, _ in per_portal.values()),
                "sync_runs_per_portal": statistics.median(r for _, r in per_portal.values())}


def sync_counts(h) -> dict[str, tuple[int, int]]:
    """Each tenant's sync requests kept in the inbox and its sync runs, once the inbox has nothing open."""
    from connector.store import engine

    def rows() -> list[tuple]:
        target = h.state_url if engine.is_postgres(h.state_url) else engine.sqlite_path(h.state_url)
        db = engine.connect(target, timeout=10)
        try:
            return db.execute("SELECT tenant, kind, done_at FROM app_inbox").fetchall()
        finally:
            db.close()

    deadline = time.monotonic() + 120
    while any(done is None for _, _, done in rows()) and time.monotonic() < deadline:
        time.sleep(0.5)
    requests = {}
    for tenant, kind, _ in rows():
        requests[tenant] = requests.get(tenant, 0) + (kind == "sync")
    runs = h.runs()
    return {t: (requests.get(t, 0), sum(r["kind"] == "sync" for r in runs.get(t, []))) for t in runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portals", type=int, default=100)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each phase may take at most")
    parser.add_argument("--state", default=None, help="a PostgreSQL server URL to use (default: a private one "
                        "started here), or `sqlite` for one SQLite file")
    args = parser.parse_args()
    # a kill (SIGTERM) unwinds the `with Hosting`: its serve, workers, PostgreSQL and Redis stop too; left
    # running, a worker of this run consumed the next run's jobs from a Redis on the same port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = [int(x) for x in args.workers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="rs-many-portals-"))
    single = single_portal_state(workdir / "single", args.customers, runs=1)
    rows = []
    for k in counts:
        row = run(k, args.portals, args.customers, single, workdir, args.timeout, args.state)
        first = rows[0] if rows else row  # efficiency: the speed-up over the fewest workers / the workers added
        row["scaling_efficiency"] = round((row["syncs_per_minute"] / first["syncs_per_minute"])
                                          / (k / first["workers"]), 2) if first["syncs_per_minute"] else None
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| workers | tenant syncs / min | scaling efficiency | event -> action p50 / p95 | "
          "portals equal to their single-tenant run | doubled |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['syncs_per_minute']} | {r['scaling_efficiency']} | "
              f"{r['event_to_action_p50_s']} s / {r['event_to_action_p95_s']} s ({r['events_written']}/{r['events']}) | "
              f"{r['equal_to_single']}/{r['portals']} | {r['portals_with_a_doubled_action']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
