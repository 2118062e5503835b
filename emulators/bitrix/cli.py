"""Standalone portal: `repeat-sales emulator bitrix` / `python -m emulators.bitrix` with the shared flags
(emulators.kit.standalone) and the portal's own."""

from __future__ import annotations

import argparse

from emulators.kit import standalone


def build_parser() -> argparse.ArgumentParser:
    p = standalone.base_parser("bitrix", "Local Bitrix24 portal emulator (synthetic shop).")
    p.add_argument("--time-scale", type=float, default=1.0, help="speed of the rate-limit clocks")
    p.add_argument("--cost-model", choices=("real", "off"), default="real",
                   help="real: bill each call the portal's time (counting, offsets; 60-s cut); off: a fixed time")
    p.add_argument("--operating-limit", type=float, default=None,
                   help="per-method operating seconds per 10 min before 429 (default 480 with the real "
                        "cost model, none with off; 0 = none)")
    p.add_argument("--batch-billing", choices=("inner", "whole"), default="inner",
                   help="inner: each batch command billed to its method (the docs); whole: to `batch`")
    p.add_argument("--webhook-admin", type=standalone.on_off, default=True,
                   help="yes|no: the webhook's user (and the app's installer) is a portal administrator")
    p.add_argument("--scopes", default=None,
                   help="scopes of the webhook and the app, e.g. crm,task,user,bizproc (default: all the plugin uses)")
    p.add_argument("--mailbox", type=standalone.on_off, default=True,
                   help="yes|no: the portal has a mailbox to send e-mails from (no: \"From\" is not found)")
    p.add_argument("--chat-share", type=float, default=0.0,
                   help="share of customer cards with an open-line chat (WhatsApp/Telegram), the same cards for "
                        "a seed (default 0: no open lines connected)")
    p.add_argument("--sms-automation", type=standalone.on_off, default=False,
                   help="yes|no: the admin bound the robot \"Send SMS\" to the app's trigger")
    # Doc: settings/oauth/index.md - a marketplace app's keys work for any Bitrix24
    p.add_argument("--app-client-id", default=None,
                   help="the app's client_id, shared by every portal started with it (default: a new local app)")
    p.add_argument("--app-client-secret", default=None,
                   help="the app's client_secret, with --app-client-id (default: a new one)")
    return p


def settings(emu) -> list[str]:
    # the local app's keys are for `repeat-sales serve`; install it with POST /_emulator/app/install {"handler": URL}
    return ["CRM=bitrix", f"BITRIX_WEBHOOK_URL={emu.webhook_url}", f"BITRIX_APP_CLIENT_ID={emu.app.client_id}",
            f"BITRIX_APP_CLIENT_SECRET={emu.app.client_secret}", f"BITRIX_OAUTH_URL={emu.base_url}"]


def run_standalone(argv: list[str] | None = None, out=None) -> int:
    """Serve until SIGTERM/SIGINT (0); 2 for bad flags, 1 when the port cannot be bound."""
    from .service import BitrixEmulator

    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.app_client_id is None) != (args.app_client_secret is None):
        parser.error("give --app-client-id and --app-client-secret together")
    return standalone.serve(args, lambda: BitrixEmulator(
        customers=args.customers, seed=args.seed, today=args.today, rate_limit=args.rate_limit,
        latency_ms=args.latency_ms, faults=args.faults, host=args.host, port=args.port,
        time_scale=args.time_scale, operating_limit_seconds=args.operating_limit, cost_model=args.cost_model,
        batch_billing=args.batch_billing, webhook_admin=args.webhook_admin, scopes=args.scopes,
        mailbox=args.mailbox, chat_share=args.chat_share, sms_automation=args.sms_automation,
        app_client_id=args.app_client_id, app_client_secret=args.app_client_secret),
        settings, "Bitrix24 emulator", out)
