"""`repeat-sales emulator <crm>`: the flags every emulator takes, then print the settings that point the
plugin at it (first on stdout, one `NAME=value` a line, design.md) and serve until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date

from .emulator import Emulator
from .faults import parse_fault_spec


def on_off(value: str) -> bool:
    v = value.strip().lower()
    if v in ("on", "yes", "true", "1"):
        return True
    if v in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError("expected on or off")


def fault_spec(value: str) -> str:
    try:
        parse_fault_spec(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def base_parser(crm: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"repeat-sales emulator {crm}", description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed on start)")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=42, help="same seed, same shop")
    p.add_argument("--today", type=date.fromisoformat, default=None,
                   help="anchor the shop's history at this date (YYYY-MM-DD; default: today)")
    p.add_argument("--latency-ms", type=int, default=0, help="every answer delayed by this much")
    p.add_argument("--faults", type=fault_spec, default=None,
                   help='shares of requests, e.g. "503:0.2,429:0.1,drop:0.05" (drop: run, then no answer)')
    p.add_argument("--rate-limit", type=on_off, default=True, help="the CRM's rate limit on|off (default on)")
    return p


def serve(args: argparse.Namespace, make: Callable[[], Emulator], settings: Callable[[Emulator], list[str]],
          title: str, out=None, hint: Callable[[Emulator], str] | None = None) -> int:
    """Start, print `settings(emu)` lines first (flushed), then `title` and `hint` on stderr; serve
    until a signal.

    Returns 0 after a signal, 2 for bad flags, 1 when the port cannot be bound.
    """
    out = out or sys.stdout
    if args.customers < 0:
        print("error: --customers must be >= 0", file=sys.stderr)
        return 2
    emu = make()
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
        for line in settings(emu):
            print(line, file=out)
        out.flush()
        rate = "on" if args.rate_limit else "off"
        print(f"# {title}: {args.customers} customers, seed {args.seed}, rate limit {rate}; "
              f"stats at {emu.base_url}/_emulator/stats", file=sys.stderr, flush=True)
        if hint is not None:
            print(f"# {hint(emu)}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
