"""Standalone account: `repeat-sales emulator amocrm` / `python -m emulators.amocrm` with the shared flags
(emulators.kit.standalone) and the account's own. Prints CRM=amocrm, AMOCRM_BASE_URL=...,
AMOCRM_ACCESS_TOKEN=... first (design.md)."""

from __future__ import annotations

import argparse

from emulators.kit import standalone


def build_parser() -> argparse.ArgumentParser:
    p = standalone.base_parser("amocrm", "An emulated amoCRM account (synthetic shop).")
    p.add_argument("--requests-per-second", type=float, default=7)
    return p


def run_standalone(argv: list[str] | None = None, out=None) -> int:
    """Serve until SIGTERM/SIGINT (0); 2 for bad flags, 1 when the port cannot be bound."""
    from emulators.amocrm import AmoEmulator

    args = build_parser().parse_args(argv)
    return standalone.serve(args, lambda: AmoEmulator(
        customers=args.customers, seed=args.seed, today=args.today, rate_limit=args.rate_limit,
        latency_ms=args.latency_ms, faults=args.faults, host=args.host, port=args.port,
        requests_per_second=args.requests_per_second),
        lambda emu: ["CRM=amocrm", f"AMOCRM_BASE_URL={emu.base_url}", f"AMOCRM_ACCESS_TOKEN={emu.access_token}"],
        "amoCRM emulator", out,
        hint=lambda emu: f"OAuth: AMOCRM_CLIENT_ID={emu.client_id} AMOCRM_REDIRECT_URI={emu.redirect_uri} "
                         "(POST /_emulator/auth_code for a code and the secret)")
