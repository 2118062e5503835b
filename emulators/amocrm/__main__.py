"""`python -m emulators.amocrm`: serve an emulated amoCRM account until SIGTERM/SIGINT.

Prints first, one per line: CRM=amocrm, AMOCRM_BASE_URL=..., AMOCRM_ACCESS_TOKEN=... (design.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repeat-sales emulator amocrm", description="an emulated amoCRM account")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--today", type=date.fromisoformat, default=None, help="the shop's today (YYYY-MM-DD)")
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--faults", default=None, help="e.g. 503:0.2,429:0.1,drop:0.05")
    p.add_argument("--rate-limit", choices=["on", "off"], default="on")
    p.add_argument("--requests-per-second", type=float, default=7)
    return p


def run_standalone(argv: list[str] | None = None) -> int:
    from emulators.amocrm import AmoEmulator
    from emulators.amocrm.faults import parse_spec

    args = build_parser().parse_args(argv)
    if args.customers < 0:
        print("error: --customers must be >= 0", file=sys.stderr)
        return 2
    try:
        parse_spec(args.faults)
    except ValueError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    emu = AmoEmulator(customers=args.customers, seed=args.seed, today=args.today, rate_limit=args.rate_limit == "on",
                      latency_ms=args.latency_ms, faults=args.faults, host=args.host, port=args.port,
                      requests_per_second=args.requests_per_second)
    try:
        emu.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        print("CRM=amocrm", flush=True)
        print(f"AMOCRM_BASE_URL={emu.base_url}", flush=True)
        print(f"AMOCRM_ACCESS_TOKEN={emu.access_token}", flush=True)
        print(f"# amoCRM emulator: {args.customers} customers, seed {args.seed}, rate limit {args.rate_limit}; "
              f"OAuth: AMOCRM_CLIENT_ID={emu.client_id} AMOCRM_REDIRECT_URI={emu.redirect_uri} "
              f"(POST /_emulator/auth_code for a code and the secret)", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_standalone())
