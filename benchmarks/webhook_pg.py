"""Benchmark: how many Bitrix24 webhook events per second `serve` takes with its state on PostgreSQL.

Each event request finds its tenant (the registry), checks the portal's signature against the stored
install, records the delivery as seen and queues a sync: three short state transactions. This measures
what a connection per transaction costs against connections reused from the per-process pool
(connector/store/engine.py). A private PostgreSQL is started for the run (initdb into a temp folder, Unix
socket only, as the `postgres` user when run as root), or RS_BENCH_PG_URL is used.

    python benchmarks/webhook_pg.py                   # 400 events, 4 client threads
    python benchmarks/webhook_pg.py --events 1000 --threads 8

One JSON line: {"events", "threads", "seconds", "events_per_s"}. On this machine (2 shared cores, 4 client
threads, 600 events): 34 events/s with a connection per call, 75 with the pool.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "webapp"))

import requests  # noqa: E402

from connector.settings import load_settings  # noqa: E402
from connector.webapp import WebApp  # noqa: E402
from emulators.bitrix import BitrixEmulator  # noqa: E402
from emulators.bitrix.outbound import php_form  # noqa: E402

TODAY = date(2026, 6, 15)
PORT = 55491


@contextmanager
def private_pg():
    given = os.environ.get("RS_BENCH_PG_URL")
    if given:
        yield given
        return
    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="rs-bench-pg-"))
    if prefix:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"

    def run(*args):
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", f"-p {PORT} -k {base} -c listen_addresses=''",
        "-l", str(base / "log"), "-w", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(base), "-p", str(PORT), "-U", "postgres", "rs_bench")
        yield f"postgresql://postgres@/rs_bench?host={quote(str(base))}&port={PORT}"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=base, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rs-bench-webhook-"))
    with private_pg() as url, BitrixEmulator(customers=200, seed=7, today=TODAY) as emu:
        settings = load_settings(CRM="bitrix", BITRIX_WEBHOOK_URL="", BITRIX_APP_CLIENT_ID=emu.app.client_id,
                                 BITRIX_APP_CLIENT_SECRET=emu.app.client_secret, BITRIX_OAUTH_URL=emu.base_url,
                                 BITRIX_REQUESTS_PER_SECOND=50, BITRIX_REQUEST_POOL=250, STATE_URL=url,
                                 EVENT_DEBOUNCE_SECONDS=5)
        app = WebApp(settings, port=0, today=lambda: TODAY).start()
        try:
            assert emu.app.install(app.url + "/bitrix/install") == 200
            assert app.worker.wait_idle(120), app.worker.last_error
            emu.touch_purchase(2, comments="an event to replay")
            assert emu.app.outbound.wait_idle(15)
            real = emu.app.outbound.sent("event")[-1]["data"]
            bodies = [php_form({**real, "ts": str(int(real["ts"]) + 1 + i)}) for i in range(args.events)]
            session = requests.Session()

            def post(body):
                r = session.post(app.url + "/bitrix/events", data=body, timeout=60,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
                assert r.status_code == 200, r.text

            post(bodies.pop())  # warm
            started = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(post, bodies))
            seconds = time.perf_counter() - started
            assert app.worker.wait_idle(120), app.worker.last_error
        finally:
            app.stop(timeout=60)
    print(json.dumps({"events": len(bodies), "threads": args.threads, "seconds": round(seconds, 2),
                      "events_per_s": round(len(bodies) / seconds, 1)}))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
