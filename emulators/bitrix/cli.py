"""Standalone emulator: print the settings that point the plugin at it, then serve until
SIGTERM / SIGINT (exit 0). `repeat-sales emulator bitrix` calls `run_standalone` with the same flags.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date

from .limits import parse_fault_spec


def _on_off(value: str) -> bool:
    v = value.strip().lower()
    if v in ("on", "yes", "true", "1"):
        return True
    if v in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError("expected on or off")


def _faults(value: str) -> str:
    try:
        parse_fault_spec(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def build_parser(prog: str = "python -m emulators.bitrix") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Local Bitrix24 portal emulator (synthetic shop).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed on start)")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=42, help="same seed, same shop and webhook code")
    p.add_argument("--today", type=date.fromisoformat, default=None,
                   help="anchor the shop's history at this date (YYYY-MM-DD; default: today)")
    p.add_argument("--latency-ms", type=int, default=0, help="every answer delayed by this much")
    p.add_argument("--faults", type=_faults, default=None, help='shares, e.g. "503:0.2,429:0.1,drop:0.05"')
    p.add_argument("--rate-limit", type=_on_off, default=True, help="leaky bucket on|off (default on)")
    p.add_argument("--time-scale", type=float, default=1.0, help="speed of the rate-limit clocks")
    p.add_argument("--operating-limit", type=float, default=None,
                   help="per-method operating seconds per 10 min before 429 (default off)")
    return p


def run_standalone(argv: list[str] | None = None, out=None) -> int:
    """Start, print `NAME=value` lines first (flushed), serve until SIGTERM/SIGINT.

    Returns 0 after a signal, 2 for bad flags, 1 when the port cannot be bound.
    """
    from .service import BitrixEmulator

    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    if args.customers < 0:
        print("error: --customers must be >= 0", file=sys.stderr)
        return 2
    emu = BitrixEmulator(customers=args.customers, seed=args.seed, today=args.today, rate_limit=args.rate_limit,
                         latency_ms=args.latency_ms, faults=args.faults, host=args.host, port=args.port,
                         time_scale=args.time_scale, operating_limit_seconds=args.operating_limit)
    try:
        emu.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        print("CRM=bitrix", file=out)
        print(f"BITRIX_WEBHOOK_URL={emu.webhook_url}", file=out)
        # the local app's keys, for `repeat-sales serve`; install it with POST /_emulator/app/install {"handler": URL}
        print(f"BITRIX_APP_CLIENT_ID={emu.app.client_id}", file=out)
        print(f"BITRIX_APP_CLIENT_SECRET={emu.app.client_secret}", file=out)
        print(f"BITRIX_OAUTH_URL={emu.base_url}", file=out)
        out.flush()
        print(f"# Bitrix24 emulator: {args.customers} customers, seed {args.seed}, "
              f"rate limit {'on' if args.rate_limit else 'off'}; stats at {emu.base_url}/_emulator/stats",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
