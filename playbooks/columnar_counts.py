"""The plan's counts of the calendar and the reactivation from the columns, without facts or actions.

A CSV's customer (no card fields, tags or contacts) for whom only these two rules may be due and
who has no history gets actions no guard can tell apart: the hold-out drops all of them, the cap
keeps the first `max_touches` of those it counts, and nothing else drops one (every step falls back
to a manager task, a quiet day only moves it). So counting each rule's actions by date arithmetic
is enough - when the playbook leaves none of that in doubt (else None: the full path counts).
"""

from __future__ import annotations

import numpy as np

COUNTED = ("calendar", "reactivation")


def guards_cannot_drop(pb) -> bool:
    """No guard but the hold-out and the cap can drop a bare customer's step that may fall back to a task."""
    g = pb.guards
    return g.no_channel.mode == "task" and g.quiet.mode == "shift" and len(set(g.quiet.weekdays)) < 7 \
        and len(g.quiet.dates) < 50


def _falls_back_to_task(step) -> bool:
    return not step.channels or "task" in step.channels


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
        late = age - step.day
        hit = (late >= 0) & (late <= within)
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


def counted_from_columns(due, rules: list, pb, holdout: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """(who, planned, suppressed): the bare customers without history whose every due rule is counted here,
    and their counts as guard_customer would give them; None when the playbook leaves it in doubt."""
    if not guards_cannot_drop(pb):
        return None
    masks = {rule.kind: mask for rule, _cfg, mask in rules}
    counts: dict[str, np.ndarray] = {}
    for kind in COUNTED:
        cfg, mask = pb.rule(kind), masks.get(kind)
        if cfg is None or mask is None:
            continue
        got = calendar_counts(due, cfg) if kind == "calendar" else reactivation_counts(due, mask, cfg)
        if got is not None:
            counts[kind] = np.where(mask, got, 0)
    if not counts:
        return None
    others = due.nobody()
    for kind, mask in masks.items():
        if kind not in counts:
            others |= True if mask is None else mask
    who = ~others & ~due.history
    cap = pb.guards.cap
    free = sum((c for kind, c in counts.items() if cap.enabled and kind in cap.exempt_rules), due.nobody().astype(np.int64))
    capped = sum((c for kind, c in counts.items() if not (cap.enabled and kind in cap.exempt_rules)),
                 due.nobody().astype(np.int64))
    kept = free + (np.minimum(capped, max(cap.max_touches, 0)) if cap.enabled else capped)
    total = (free + capped)[who]
    kept = np.where(holdout[who], 0, kept[who])
    return who, int(kept.sum()), int(total.sum() - kept.sum())
