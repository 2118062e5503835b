"""The plan's counts of a bare customer's rules from the columns, without facts or actions.

A CSV's customer (no card fields, tags or contacts) with no history gets actions no guard can tell
apart: the hold-out drops all of them, the cap keeps the first `max_touches` of those it counts, and
nothing else drops one (every step falls back to a manager task, a quiet day only moves it). So
counting each rule's actions by date arithmetic is enough for the rules counted here - calendar,
reactivation, loyalty (tiers by purchases), cross-sell (nothing for a customer without line items)
and the bonus reminder (a balance of plain cashback) - when the playbook leaves none of that in doubt
(else None: the full path counts). A customer with some other rule due goes the full path.
"""

from __future__ import annotations

import math

import numpy as np


def guards_cannot_drop(pb) -> bool:
    """No guard but the hold-out and the cap can drop a bare customer's step that may fall back to a task."""
    g = pb.guards
    return g.no_channel.mode == "task" and g.quiet.mode == "shift" and len(set(g.quiet.weekdays)) < 7 \
        and len(g.quiet.dates) < 50


def _falls_back_to_task(step) -> bool:
    return step is None or not step.channels or "task" in step.channels


def _window(age: np.ndarray, within: int) -> np.ndarray:
    """in_window for days since each due day."""
    return (age >= 0) & (age <= within)


def calendar_counts(due, cfg) -> np.ndarray | None:
    """Per customer, the calendar's actions today: for each distinct purchase day within reach, the steps
    whose window holds today (a `stop_if_new_purchase` step only on the last day) - CalendarRule.plan."""
    if not cfg.steps or not all(_falls_back_to_task(s) for s in cfg.steps) or due.start is None:
        return None
    start, day, today = due.start, due.day, due.today.toordinal()
    people = len(start) - 1
    owner = np.repeat(np.arange(people), np.diff(start))
    first = np.ones(len(day), dtype=bool)  # one calendar per purchase day (anchored on its last purchase)
    first[1:] = (owner[1:] != owner[:-1]) | (day[1:] != day[:-1])
    d_day, d_owner = day[first], owner[first]
    has = np.diff(start) > 0
    last = np.zeros(people, dtype=np.int64)
    last[has] = day[start[1:][has] - 1]
    age = today - d_day
    out = np.zeros(people, dtype=np.int64)
    for step in cfg.steps:
        within = step.fire_within_days if step.fire_within_days is not None else cfg.fire_within_days
        hit = _window(age - step.day, within)
        if step.stop_if_new_purchase:
            hit &= d_day == last[d_owner]
        out += np.bincount(d_owner[hit], minlength=people)
    return out


def reactivation_counts(due, mask: np.ndarray, cfg) -> np.ndarray | None:
    """1 for each customer its may_fire holds (and no history): plan() gives exactly the first step when
    the silence is not stretched by rhythm and the step has no window of its own."""
    if cfg.rhythm_factor is not None or cfg.first_step_within_days is not None or not cfg.steps \
            or not _falls_back_to_task(cfg.steps[0]):
        return None
    return mask.astype(np.int64)


def loyalty_counts(due, cfg, tiers) -> np.ndarray | None:
    """LoyaltyRule.plan with tiers by purchases: `welcome` when the purchase that reached the current tier
    is within the window, `near` when the next tier is close and the last purchase + near_after_days is."""
    if tiers.by != "purchases" or due.start is None or not (_falls_back_to_task(cfg.welcome)
                                                            and _falls_back_to_task(cfg.near)):
        return None
    n, start, day, today = due.n, due.start, due.day, due.today.toordinal()
    has = n > 0
    out = np.zeros(len(n), dtype=np.int64)
    specs = tiers.tiers
    if not specs or not len(day):
        return out
    tier = np.full(len(n), -1, dtype=np.int64)  # as segments.assign_tier (and columnar._tiers)
    for i, spec in enumerate(specs):
        tier = np.where((spec.min_purchases <= n) & ((spec.min_purchases > 0) | has), i, tier)
    if cfg.welcome is not None:
        # the k-th purchase (k = the tier's threshold, at least 1) reached it: its date is day[start + k - 1]
        reach = np.array([max(math.ceil(s.min_purchases), 1) - 1 for s in specs], dtype=np.int64)
        ok = has & (tier >= 0) & (tier >= (0 if cfg.welcome_first_tier else 1))
        at = np.where(ok, start[:-1] + reach[np.maximum(tier, 0)], 0)
        out += ok & _window(today - day[at], cfg.fire_within_days)
    if cfg.near is not None:
        nxt = tier + 1
        named = np.array([bool(s.name) for s in specs] + [False])  # facts.next_tier: None past the top
        threshold = np.array([s.min_purchases for s in specs] + [0], dtype=np.float64)
        close = has & named[nxt] & (np.round(threshold[nxt] - n, 2) <= cfg.near_purchases)
        last = day[np.maximum(start[1:] - 1, 0)]
        out += close & _window(today - (last + cfg.near_after_days), cfg.fire_within_days)
    return out


def bonus_expiry_counts(due, cfg, balances) -> tuple[np.ndarray, np.ndarray] | None:
    """BonusExpiryRule.plan on the balances of columnar_bonus (its `slow` customers are not counted here)."""
    if balances is None or not _falls_back_to_task(cfg.message):
        return None
    if cfg.message is None:
        return np.zeros(len(due.n), dtype=np.int64), np.ones(len(due.n), dtype=bool)
    from playbooks.columnar_bonus import NEVER

    today = due.today.toordinal()
    burns = (balances.next_expiry != NEVER) & (balances.expiring > 0)  # round(kopecks / 100, 2) > 0
    nxt = np.where(burns, balances.next_expiry, 0)
    hit = burns & _window(today - (nxt - cfg.days_before), cfg.fire_within_days) & (today < nxt)
    return hit.astype(np.int64), ~balances.slow


def counted_from_columns(due, rules: list, pb, holdout: np.ndarray, *, with_items: np.ndarray | None = None,
                         balances=None) -> tuple[np.ndarray, int, int] | None:
    """(who, planned, suppressed): the bare customers without history whose every due rule is counted here,
    and their counts as guard_customer would give them; None when the playbook leaves it in doubt.
    `with_items`: who has line items (None: unknown); `balances`: columnar_bonus's arrays (None: none)."""
    if not guards_cannot_drop(pb):
        return None
    people = len(due.n)
    counts: dict[str, np.ndarray] = {}
    others = due.nobody()
    for _rule, cfg, mask in rules:
        kind = _rule.kind
        got, countable = None, None
        if mask is None:
            pass
        elif kind == "calendar":
            got = calendar_counts(due, cfg)
        elif kind == "reactivation":
            got = reactivation_counts(due, mask, cfg)
        elif kind == "loyalty":
            got = loyalty_counts(due, cfg, pb.segments.tiers)
        elif kind == "cross_sell" and with_items is not None:
            got, countable = np.zeros(people, dtype=np.int64), ~with_items  # offers and suggestions need items
        elif kind == "bonus_expiry":
            pair = bonus_expiry_counts(due, cfg, balances)
            if pair is not None:
                got, countable = pair
        if got is None:
            others |= True if mask is None else mask
            continue
        counts[kind] = np.where(mask, got, 0)
        if countable is not None:
            others |= mask & ~countable
    if not counts:
        return None
    who = ~others & ~due.history
    cap = pb.guards.cap
    exempt = [c for kind, c in counts.items() if cap.enabled and kind in cap.exempt_rules]
    capped = [c for kind, c in counts.items() if not (cap.enabled and kind in cap.exempt_rules)]
    free = sum(exempt, np.zeros(people, dtype=np.int64))
    capped = sum(capped, np.zeros(people, dtype=np.int64))
    kept = free + (np.minimum(capped, max(cap.max_touches, 0)) if cap.enabled else capped)
    total = (free + capped)[who]
    kept = np.where(holdout[who], 0, kept[who])
    return who, int(kept.sum()), int(total.sum() - kept.sum())
