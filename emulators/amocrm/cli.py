"""Standalone account: `repeat-sales emulator amocrm` / `python -m emulators.amocrm` with the shared flags
(emulators.kit.standalone) and the account's own. Prints CRM=amocrm, AMOCRM_BASE_URL=...,
AMOCRM_ACCESS_TOKEN=... first (design.md)."""

from __future__ import annotations

import argparse

from emulators.kit import standalone


def build_parser() -> argparse.ArgumentParser:
    p = standalone.base_parser("amocrm", "An emulated amoCRM account (synthetic shop).")
    p.add_argument("--requests-per-second", type=float, default=7)
    p.add_argument("--api-filter", type=standalone.on_off, default=True,
                   help="the account's alpha list filtering (is_api_filter_enabled) on|off; off, filters are ignored")
    p.add_argument("--token-admin", type=standalone.on_off, default=True,
                   help="whether the token's user is an administrator yes|no (users and webhooks are admin-only)")
    p.add_argument("--customers-mode", default="disabled",
                   choices=("unavailable", "disabled", "segments", "dynamic", "periodicity"),
                   help="the account's Customers mode (customers_mode)")
    return p


def run_standalone(argv: list[str] | None = None, out=None) -> int:
    """Serve until SIGTERM/SIGINT (0); 2 for bad flags, 1 when the port cannot be bound."""
    from emulators.amocrm import AmoEmulator

    args = build_parser().parse_args(argv)
    return standalone.serve(args, lambda: AmoEmulator(
        customers=args.customers, seed=args.seed, today=args.today, rate_limit=args.rate_limit,
        latency_ms=args.latency_ms, faults=args.faults, host=args.host, port=args.port,
        requests_per_second=args.requests_per_second, api_filter=args.api_filter, admin=args.token_admin,
        customers_mode=args.customers_mode),
        lambda emu: ["CRM=amocrm", f"AMOCRM_BASE_URL={emu.base_url}", f"AMOCRM_ACCESS_TOKEN={emu.access_token}"],
        "amoCRM emulator", out,
        hint=lambda emu: f"OAuth: AMOCRM_CLIENT_ID={emu.client_id} AMOCRM_REDIRECT_URI={emu.redirect_uri} "
                         "(POST /_emulator/auth_code for a code and the secret)")
