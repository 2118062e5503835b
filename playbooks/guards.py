"""Guards, applied after the rules: hold-out, opt-out, missing channel, quiet days, frequency cap.

Every action a guard removes is returned as a `Suppressed` with its reason, in that order:
`holdout`, `opt_out`, `no_channel`, `quiet_day`, `frequency_cap`. A dated step (a birthday or a
holiday greeting, `payload["send_by"]`) is never moved: on a quiet day it is dropped, and its rule
plans it again on the next day of its window, up to the date itself, never after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta

from connector.model import Action, ActionKind, Channel, Customer
from playbooks.api import Suppressed
from playbooks.channels import is_touch, route
from playbooks.schema import (
    WEEKDAYS,
    GuardsConfig,
    HoldoutConfig,
    OptOutConfig,
    QuietConfig,
    parse_quiet_date,
)

CONTACT_NEEDS = {Channel.EMAIL: "emails", Channel.SMS: "phones", Channel.CALL: "phones"}


def holdout_bucket(customer_id: str, salt: str) -> float:
    """A stable number in [0, 100) from sha256(salt:customer_id): the same on every run and machine."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def is_holdout(customer_id: str, cfg: HoldoutConfig) -> bool:
    """In the control group: bucket below `percent`. Independent of segment, so each segment
    holds about `percent` % of its customers, and a customer never moves in or out with others."""
    return cfg.enabled and cfg.percent > 0 and holdout_bucket(customer_id, cfg.salt) < cfg.percent


def holdout_column(customer_ids: Sequence[str], cfg: HoldoutConfig):
    """[is_holdout(c, cfg) for c in customer_ids] as a numpy bool array: one sha256 per customer (the
    same digests, with the texts encoded in one go and no Python call per customer besides the hash), the
    bucket arithmetic on the column (a uint64 to a double rounds as int / 2**64 does)."""
    import numpy as np

    out = np.zeros(len(customer_ids), dtype=bool)
    if not (cfg.enabled and cfg.percent > 0) or not len(customer_ids):
        return out
    prefix = f"{cfg.salt}:"
    for at in range(0, len(customer_ids), HASHED_AT_ONCE):  # the texts and digests of all at once: 230 bytes
        ids = customer_ids[at:at + HASHED_AT_ONCE]  # a customer, 1.5 GB at 6.8M customers
        texts = (prefix + ("\n" + prefix).join(ids)).encode().split(b"\n")
        if len(texts) != len(ids):  # a line break inside an id: one text at a time
            texts = [f"{prefix}{c}".encode() for c in ids]
        digests = b"".join(map(_digest, map(hashlib.sha256, texts)))
        first = np.frombuffer(digests, dtype=">u8").reshape(-1, 4)[:, 0]
        out[at:at + len(ids)] = first.astype(np.float64) / 2.0**64 * 100.0 < cfg.percent
    return out


HASHED_AT_ONCE = 65_536


_digest = type(hashlib.sha256()).digest


def is_opted_out(customer: Customer, cfg: OptOutConfig) -> bool:
    truthy = {t.casefold() for t in cfg.truthy}
    for name in cfg.fields:
        value = customer.fields.get(name)
        if value is not None and str(value).strip().casefold() in truthy:
            return True
    tags = {t.casefold() for t in customer.tags}
    return any(t.casefold() in tags for t in cfg.tags)


_QUIET: dict[tuple[int, date], tuple[QuietConfig, bool]] = {}  # (config, day) -> answer: one plan asks about few days


def is_quiet(day: date, cfg: QuietConfig) -> bool:
    known = _QUIET.get((id(cfg), day))
    if known is not None and known[0] is cfg:
        return known[1]
    if len(_QUIET) >= 4096:
        _QUIET.clear()
    quiet = _is_quiet(day, cfg)
    _QUIET[(id(cfg), day)] = (cfg, quiet)
    return quiet


def _is_quiet(day: date, cfg: QuietConfig) -> bool:
    if WEEKDAYS[day.weekday()] in cfg.weekdays:
        return True
    for text in cfg.dates:
        y, m, d = parse_quiet_date(text) or (-1, 0, 0)
        if (day.month, day.day) == (m, d) and y in (0, day.year):
            return True
    return False


def next_allowed(day: date, cfg: QuietConfig) -> date | None:
    for _ in range(400):
        if not is_quiet(day, cfg):
            return day
        day += timedelta(days=1)
    return None


def _customer_facing(action: Action) -> bool:
    return action.channel != Channel.TASK


def guard_customer(customer: Customer, actions: Sequence[Action], today: date, cfg: GuardsConfig,
                   applied: Sequence[tuple[str, str, date]], *, holdout: bool
                   ) -> tuple[list[Action], list[Suppressed]]:
    """Apply every guard to one customer's actions; returns (kept, suppressed)."""
    dropped: list[Suppressed] = []

    def drop(a: Action, reason: str) -> None:
        dropped.append(Suppressed(a.key, a.customer_id, a.rule, reason))

    if holdout:
        for a in actions:
            drop(a, "holdout")
        return [], dropped
    kept = list(actions)
    if is_opted_out(customer, cfg.opt_out):
        survivors = []
        for a in kept:
            if cfg.opt_out.keep == "service_tasks" and not _customer_facing(a):
                survivors.append(a)
            else:
                drop(a, "opt_out")
        kept = survivors
    survivors = []
    for a in kept:
        if is_touch(a):  # a step naming its channels: the first one that reaches this customer
            routed = route(a, customer, cfg.opt_out)
            if isinstance(routed, str):
                drop(a, routed)
            elif cfg.no_channel.mode == "drop" and routed.kind == ActionKind.TASK and routed.payload["tried"]:
                drop(a, "no_channel")  # no channel reaches the customer, and no manager task is wanted
            else:
                survivors.append(routed)
            continue
        need = CONTACT_NEEDS.get(a.channel)
        if need is None or getattr(customer, need):
            survivors.append(a)
        elif cfg.no_channel.mode == "task":
            survivors.append(replace(a, kind=ActionKind.TASK, channel=Channel.TASK,
                                     payload={**a.payload, "no_channel": str(a.channel)}))
        else:
            drop(a, "no_channel")
    kept = survivors
    survivors = []
    for a in kept:
        when = max(a.due, today)
        channel = str(a.payload.get("via") or a.channel.value)  # a touch: the channel it goes out by
        if channel not in cfg.quiet.channels or not is_quiet(when, cfg.quiet):
            survivors.append(a)
            continue
        dated = "send_by" in a.payload
        moved = next_allowed(when, cfg.quiet) if cfg.quiet.mode == "shift" and not dated else None
        if moved is None:
            drop(a, "quiet_day")
        else:
            survivors.append(replace(a, due=moved, payload={**a.payload, "shifted_from": a.due.isoformat()}))
    kept = survivors
    cap = cfg.cap
    if cap.enabled:
        since = today - timedelta(days=cap.period_days - 1)
        applied_keys = {k for k, _r, _d in applied}
        used = sum(1 for _k, rule, when in applied
                   if since <= when <= today and rule not in cap.exempt_rules)
        budget = max(cap.max_touches - used, 0)
        fresh = sorted((a for a in kept if a.key not in applied_keys and a.rule not in cap.exempt_rules),
                       key=lambda a: (a.priority, a.due, a.rule, a.key))
        over = {a.key for a in fresh[budget:]}
        survivors = []
        for a in kept:
            if a.key in over:
                drop(a, "frequency_cap")
            else:
                survivors.append(a)
        kept = survivors
    return kept, dropped
