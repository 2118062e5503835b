"""Each customer's `analyze` object as JSON text straight from the columns.

columnar.reports() builds a dict per customer for json.dumps to walk: on CDNOW that is a quarter
of what `analyze` does after the model. Here the figures are turned to text a column at a time (one
repr per number, one dumps per distinct name) and each customer's text is one format; keys the
columns do not hold (bonus accounts paid from, condition segments, notes) still go through
json.dumps. The text is the same as json.dumps(report, ensure_ascii=False) of columnar.reports
(tests/playbooks/test_columnar_equivalence.py compares them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from json.encoder import encode_basestring

import numpy as np

from playbooks.columnar import LIFECYCLE, TRENDS, Segmented
from playbooks.columnar_bonus import NEVER, bonus_columns, bonus_of
from playbooks.segments import LEVELS


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


_quoted = encode_basestring  # json.dumps(a str, ensure_ascii=False), without the encoder around it


def rounded(values, digits: int) -> list[str]:
    """[repr(round(v, digits)) for v in values], the rounding done on the whole column: round() gives the
    double nearest to the decimal k / 10^digits, k the exact value times 10^digits rounded half to even,
    which is rint(v * 10^digits) / 10^digits wherever v * 10^digits is not within rounding of a half
    (those few, and anything not finite or too large, go through round() itself)."""
    values = np.asarray(values, dtype=float)
    scale = 10.0 ** digits
    with np.errstate(all="ignore"):
        y = values * scale
        sure = np.abs(np.abs(y - np.floor(y)) - 0.5) > 8 * np.spacing(np.abs(y))
        sure &= np.isfinite(y) & (np.abs(y) < 2.0 ** 52)
        out = (np.rint(y) / scale).tolist()
    for i in np.flatnonzero(~sure).tolist():
        out[i] = round(float(values[i]), digits)
    return list(map(repr, out))


def report_texts(s: Segmented) -> Iterator[str]:
    """json.dumps(report, ensure_ascii=False) of each of columnar.reports(s), in id order."""
    fig, pb = s.fig, s.playbook
    tiers = pb.segments.tiers
    attr = "min_purchases" if tiers.by == "purchases" else "min_spend"
    specs = tiers.tiers
    n_list, known = fig.n.tolist(), fig.known.tolist()
    monetary = [m if k else "0" for m, k in zip(rounded(fig.monetary, 2), known, strict=True)]
    aov = rounded(fig.aov, 2)
    days: dict[int, str] = {}

    def day(ordinal: int) -> str:
        text = days.get(ordinal)
        if text is None:
            text = days[ordinal] = f'"{date.fromordinal(ordinal).isoformat()}"'
        return text

    firsts = [day(d) if n else "null" for d, n in zip(fig.first.tolist(), n_list, strict=True)]
    lasts = [day(d) if n else "null" for d, n in zip(fig.last.tolist(), n_list, strict=True)]
    rec = [str(r) if n else "null" for r, n in zip(fig.recency.tolist(), n_list, strict=True)]
    codes = [f'"{r}{f}{m}"' if n else '"000"'
             for r, f, m, n in zip(s.r.tolist(), s.f.tolist(), s.m.tolist(), n_list, strict=True)]
    names = [_text(x) for x in s.names]
    stages, levels, trends = [_text(x) for x in LIFECYCLE], [_text(x) for x in LEVELS], [_text(x) for x in TRENDS]
    tier_names = [_text(t.name) for t in specs] + [_text(tiers.none)]  # index -1: no tier
    next_names = [_text(t.name) for t in specs[1:]] + ["null", "null"]  # next of tier i is i + 1; -1 -> 0
    next_names = [_text(specs[0].name) if specs else "null"] + next_names
    steps = []
    for tier, n, m, k in zip(s.tier.tolist(), n_list, fig.monetary.tolist(), known, strict=True):
        nxt = tier + 1
        if nxt >= len(specs):
            steps.append("null")
        else:
            metric = n if tiers.by == "purchases" else (m if k else 0)
            steps.append(repr(round(getattr(specs[nxt], attr) - metric, 2)))  # an int or a float
    head = '"currency": ' + _text(pb.currency)
    pred = s.prediction
    ok = pred["ok"].tolist() if pred else None
    if ok is not None:
        alive, next_90, ltv = (rounded(pred[k], d) for k, d in (("p_alive", 4), ("expected_purchases_90d", 4),
                                                                ("predicted_ltv", 2)))
    bonuses = bonus_columns(s) if s.cols.paid is not None else None
    if bonuses is not None:  # bonus_of's keys of the customers it reads from the arrays
        plain = [f', "bonus_balance": {b}, "bonus_expires": {"null" if x == NEVER else day(x)}, "bonus_expiring": {e}'
                 for b, x, e in zip(rounded(bonuses.balance / 100, 2), bonuses.next_expiry.tolist(),
                                    rounded(bonuses.expiring / 100, 2), strict=True)]
        slow = bonuses.slow.tolist()
    holds = s.holdout.tolist()
    for i, (cid, n, seg, stage, value, trend, tier) in enumerate(zip(
            s.cols.ids, n_list, s.segment.tolist(), s.lifecycle.tolist(), s.value.tolist(), s.trend.tolist(),
            s.tier.tolist(), strict=True)):
        text = (f'{{"customer_id": {_quoted(cid)}, "purchases": {n}, "first_purchase": {firsts[i]}, '
                f'"last_purchase": {lasts[i]}, "recency_days": {rec[i]}, "frequency": {n}, '
                f'"monetary": {monetary[i]}, "rfm": {codes[i]}, "lifecycle": {stages[stage]}, '
                f'"value": {levels[value]}, "trend": {trends[trend]}, "tier": {tier_names[tier]}, '
                f'"segment": {names[seg]}, "holdout": {"true" if holds[i] else "false"}, {head}, '
                f'"aov": {aov[i]}, "next_tier": {next_names[tier + 1]}, "to_next_tier": {steps[i]}')
        more: dict = {}
        if n and ok is not None:
            if ok[i]:
                text += f', "p_alive": {alive[i]}, "expected_purchases_90d": {next_90[i]}, "predicted_ltv": {ltv[i]}'
            else:
                from playbooks.predict import UNCOMPUTABLE_NOTE

                more["prediction_note"] = UNCOMPUTABLE_NOTE
        if bonuses is not None:
            if more or slow[i]:
                more.update(bonus_of(s, bonuses, i, cid))
            else:
                text += plain[i]
        if n - known[i]:
            more["excluded_other_currency"] = n - known[i]
        if i in s.extras:
            more.update(s.extras[i])
        yield text + (", " + _text(more)[1:-1] + "}" if more else "}")
