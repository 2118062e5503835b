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
from playbooks.columns import round_column
from playbooks.segments import LEVELS


def _text(value) -> str:
    return json.dumps(value, ensure_ascii=False)


_quoted = encode_basestring  # json.dumps(a str, ensure_ascii=False), without the encoder around it


def rounded(values, digits: int) -> list[str]:
    """[repr(round(v, digits)) for v in values], rounded a column at a time (columns.round_column), each
    distinct value written once (equal doubles have one repr; a zero's sign is kept apart)."""
    r = round_column(values, digits)
    distinct, back = np.unique(r, return_inverse=True)
    texts = np.array(list(map(repr, distinct.tolist())) + [None], dtype=object)[:-1][back.ravel()]
    minus_zero = np.flatnonzero((r == 0) & np.signbit(r))
    texts[minus_zero] = "-0.0"
    texts[np.flatnonzero((r == 0) & ~np.signbit(r))] = "0.0"
    return texts.tolist()


BLOCK = 1 << 15  # customers whose texts' pieces are made at once: the pieces of all of them would hold
# a dozen lists of strings as long as the customers (230 MB at a million rows)


def _lookup(key: np.ndarray, render) -> list[str]:
    """[render(k) for k in key], each distinct key rendered once: integers of a narrow range (days,
    recencies, tiers) through a table over the range, without np.unique's sort of the block."""
    if len(key) and key.dtype.kind in "iu":
        low = int(key.min())
        span = int(key.max()) - low + 1
        if span <= 2 * len(key):
            at = key - low
            present = np.zeros(span, dtype=bool)
            present[at] = True
            distinct = np.flatnonzero(present)
            table = np.empty(span, dtype=object)
            table[distinct] = [render(k + low) for k in distinct.tolist()]
            return table[at].tolist()
    distinct, back = np.unique(key, return_inverse=True)
    return np.array([render(k) for k in distinct.tolist()] + [None], dtype=object)[:-1][back.ravel()].tolist()


def report_texts(s: Segmented) -> Iterator[str]:
    """json.dumps(report, ensure_ascii=False) of each of columnar.reports(s), in id order."""
    fig, pb = s.fig, s.playbook
    tiers = pb.segments.tiers
    attr = "min_purchases" if tiers.by == "purchases" else "min_spend"
    specs = tiers.tiers
    days: dict[int, str] = {}

    def day(ordinal: int) -> str:
        text = days.get(ordinal)
        if text is None:
            text = days[ordinal] = f'"{date.fromordinal(ordinal).isoformat()}"'
        return text

    names = [_text(x) for x in s.names]
    stages, levels, trends = [_text(x) for x in LIFECYCLE], [_text(x) for x in LEVELS], [_text(x) for x in TRENDS]
    tier_names = [_text(t.name) for t in specs] + [_text(tiers.none)]  # index -1: no tier
    next_names = [_text(t.name) for t in specs[1:]] + ["null", "null"]  # next of tier i is i + 1; -1 -> 0
    next_names = [_text(specs[0].name) if specs else "null"] + next_names
    codes = {r * 36 + f * 6 + m: f'"{r}{f}{m}"' for r in range(6) for f in range(6) for m in range(6)}
    head = '"currency": ' + _text(pb.currency)
    pred = s.prediction
    bonuses = bonus_columns(s) if s.cols.paid is not None else None
    by_count = tiers.by == "purchases" and all(isinstance(t.min_purchases, int) for t in specs)
    T, S = len(specs) + 1, len(names)

    def middle(k: int) -> str:  # the categorical fields of a combined key (see below)
        k, hold = divmod(k, 2)
        k, seg = divmod(k, S)
        k, tier = divmod(k, T)
        k, trend = divmod(k, 3)
        k, value = divmod(k, 3)
        k, stage = divmod(k, 5)
        return (f'"rfm": {codes[k]}, "lifecycle": {stages[stage]}, "value": {levels[value]}, '
                f'"trend": {trends[trend]}, "tier": {tier_names[tier - 1]}, "segment": {names[seg]}, '
                f'"holdout": {"true" if hold else "false"}, {head}, ')

    for lo in range(0, len(s.cols.ids), BLOCK):
        part = slice(lo, lo + BLOCK)
        n_arr = fig.n[part]
        has = n_arr > 0
        n_list, known = n_arr.tolist(), fig.known[part].tolist()
        monetary = [m if k else "0" for m, k in zip(rounded(fig.monetary[part], 2), known, strict=True)]
        aov = rounded(fig.aov[part], 2)
        firsts = _lookup(np.where(has, fig.first[part], -1), lambda d: day(d) if d >= 0 else "null")
        lasts = _lookup(np.where(has, fig.last[part], -1), lambda d: day(d) if d >= 0 else "null")
        rec = _lookup(np.where(has, fig.recency[part], -1), lambda r: str(r) if r >= 0 else "null")
        key = s.r[part] * 36 + s.f[part] * 6 + s.m[part]
        for column, size in ((s.lifecycle, 5), (s.value, 3), (s.trend, 3), (s.tier + 1, T), (s.segment, S),
                             (s.holdout, 2)):
            key = key * size + column[part]
        mid = _lookup(key, middle)
        tier_part = s.tier[part]
        if by_count:  # next tier and the purchases to it: a few distinct (tier, purchases)
            most = int(n_arr.max()) + 1 if len(n_arr) else 1

            def tail(k: int, most: int = most) -> str:
                nxt, n = divmod(k, most)
                step = str(specs[nxt].min_purchases - n) if nxt < len(specs) else "null"
                return f'"next_tier": {next_names[nxt]}, "to_next_tier": {step}'

            tails = _lookup((tier_part + 1) * most + n_arr, tail)
        else:
            tails = []
            for tier, n, m, k in zip(tier_part.tolist(), n_list, fig.monetary[part].tolist(), known, strict=True):
                nxt = tier + 1
                if nxt >= len(specs):
                    step = "null"
                else:
                    metric = n if tiers.by == "purchases" else (m if k else 0)
                    step = repr(round(getattr(specs[nxt], attr) - metric, 2))  # an int or a float
                tails.append(f'"next_tier": {next_names[nxt]}, "to_next_tier": {step}')
        ok = pred["ok"][part].tolist() if pred else None
        size = len(n_list)
        special = fig.n[part] != fig.known[part]  # these customers' texts carry keys of their own (`more`)
        pred_text: list[str] | np.ndarray = [""] * size
        if ok is not None:
            alive, next_90, ltv = (rounded(pred[k][part], d) for k, d in (
                ("p_alive", 4), ("expected_purchases_90d", 4), ("predicted_ltv", 2)))
            fine = has & pred["ok"][part]
            special |= has & ~fine
            pred_text = np.array([f', "p_alive": {a}, "expected_purchases_90d": {b}, "predicted_ltv": {c}'
                                  for a, b, c in zip(alive, next_90, ltv, strict=True)] + [None], dtype=object)[:-1]
            pred_text[~fine] = ""
        bonus_text: list[str] = [""] * size
        if bonuses is not None:  # bonus_of's keys of the customers it reads from the arrays
            expires = _lookup(bonuses.next_expiry[part], lambda x: "null" if x == NEVER else day(x))
            bonus_text = [f', "bonus_balance": {b}, "bonus_expires": {x}, "bonus_expiring": {e}'
                          for b, x, e in zip(rounded(bonuses.balance[part] / 100, 2), expires,
                                             rounded(bonuses.expiring[part] / 100, 2), strict=True)]
            slow = bonuses.slow[part].tolist()
            special |= bonuses.slow[part]
        if s.extras:
            special[[i - lo for i in s.extras if lo <= i < lo + size]] = True
        ids = s.cols.ids[part]
        texts = [f'{{"customer_id": {q}, "purchases": {n}, "first_purchase": {fp}, "last_purchase": {lp}, '
                 f'"recency_days": {r}, "frequency": {n}, "monetary": {m}, {md}"aov": {a}, {t}{p}{b}}}'
                 for q, n, fp, lp, r, m, md, a, t, p, b in zip(
                     map(_quoted, ids), n_list, firsts, lasts, rec, monetary, mid, aov, tails, pred_text, bonus_text,
                     strict=True)]
        for j in np.flatnonzero(special).tolist():  # the few with keys of their own, as columnar.reports has them
            cid, n = ids[j], n_list[j]
            text = texts[j][:-1 - len(pred_text[j]) - len(bonus_text[j])]
            more: dict = {}
            i = lo + j
            if n and ok is not None:
                if ok[j]:
                    text += pred_text[j]
                else:
                    from playbooks.predict import UNCOMPUTABLE_NOTE

                    more["prediction_note"] = UNCOMPUTABLE_NOTE
            if bonuses is not None:
                if more or slow[j]:
                    more.update(bonus_of(s, bonuses, i, cid))
                else:
                    text += bonus_text[j]
            if n - known[j]:
                more["excluded_other_currency"] = n - known[j]
            if i in s.extras:
                more.update(s.extras[i])
            texts[j] = text + (", " + _text(more)[1:-1] + "}" if more else "}")
        yield from texts
