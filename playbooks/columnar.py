"""Segments, metrics and lifetime figures of every customer in bulk, from playbooks.columns.

The same answers as playbooks.engine (the reference, kept for the plan and for the tests that
compare the two): RFM quintiles, lifecycle with rhythm-relative thresholds, value, trend and
tiers scored as arrays; the named segment looked up in a table of the 125 RFM codes; the
metrics summed in Python's own order. Nothing here makes an object per purchase.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from connector.model import Customer
from playbooks.columnar_bonus import bonus_columns, bonus_of
from playbooks.columns import Figures, PurchaseColumns, figures, group_sum, python_sum
from playbooks.facts import convert_amount
from playbooks.guards import holdout_column
from playbooks.metrics import YEAR_DAYS, ltv_3f
from playbooks.money import Row, director_metrics, month_of, unscored_director_metrics
from playbooks.schema import Playbook
from playbooks.segments import LEVELS, quantile_edges, rfm_segment

LIFECYCLE = ("prospect", "new", "active", "sleeping", "lost")


@dataclass
class Segmented:
    """Every customer's segmentation (arrays over customers) and the shop's figures."""

    cols: PurchaseColumns
    today: date
    playbook: Playbook
    fig: Figures
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    segment: np.ndarray  # index into names
    names: list[str]
    lifecycle: np.ndarray  # index into LIFECYCLE
    sleeping_after: np.ndarray
    lost_after: np.ndarray
    value: np.ndarray  # index into LEVELS
    trend: np.ndarray  # index into TRENDS
    tier: np.ndarray  # tier index, -1 for none
    holdout: np.ndarray
    model: dict | None = None
    model_note: str | None = None
    prediction: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[int, dict] = field(default_factory=dict)  # condition segments, referral code
    bonus_credits: dict[str, list] = field(default_factory=dict)  # other rules' bonus credits (from the plan)


TRENDS = ("stable", "growing", "fading")
REPORT_CHUNK = 10_000  # customers' columns made Python values at a time for their reports


def _scores(values: np.ndarray, edges: list[float], lower_is_better: bool = False) -> np.ndarray:
    b = np.zeros(len(values), dtype=np.int64)
    for e in edges:
        b += values > e
    return 5 - b if lower_is_better else 1 + b


def _edges(values: np.ndarray) -> list[float]:
    """segments.quantile_edges on a column: the 20/40/60/80 % inclusive quantiles."""
    if len(values) < 2:
        return quantile_edges(values.tolist())
    data = np.sort(values)
    m = len(data) - 1
    out = []
    for i in range(1, 5):
        j, delta = divmod(i * m, 5)
        lo, hi = data[j].item(), data[min(j + 1, m)].item()
        out.append(float((lo * (5 - delta) + hi * delta) / 5))
    for i in range(1, 4):
        out[i] = max(out[i], out[i - 1])
    return out


def _top_edge(values: np.ndarray, share: float) -> float:
    if share <= 0 or not len(values):
        return math.inf
    k = max(1, math.ceil(share * len(values)))
    return float(-np.sort(-values)[min(k, len(values)) - 1])


def segment_table(playbook: Playbook) -> tuple[np.ndarray, list[str]]:
    """The named segment of each of the 125 RFM codes: table[r, f, m] indexes `names`."""
    cfg = playbook.segments.rfm
    names = ["no_purchases"]
    table = np.zeros((6, 6, 6), dtype=np.int64)
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                name = rfm_segment(r, f, m, cfg)
                if name not in names:
                    names.append(name)
                table[r, f, m] = names.index(name)
    return table, names


def segment(cols: PurchaseColumns, today: date, playbook: Playbook, holdout: np.ndarray | None = None) -> Segmented:
    """Every customer's segments from the columns; `holdout` the hold-out draws of cols.ids
    (guards.holdout_column) when made elsewhere already (None: drawn here)."""
    seg = playbook.segments
    lc = seg.lifecycle
    fig = figures(cols, today, with_rhythm=lc.relative_to_rhythm)
    n, has = fig.n, fig.n > 0
    n_cust = len(n)
    # lifecycle: thresholds stretched to the customer's rhythm
    sleeping = np.full(n_cust, lc.sleeping_days, dtype=np.int64)
    lost = np.full(n_cust, lc.lost_days, dtype=np.int64)
    if lc.relative_to_rhythm:
        mi = fig.median_interval
        rhythmic = ~np.isnan(mi) & (mi != 0) & (n >= lc.rhythm_min_purchases)
        s_r = np.maximum(sleeping, np.rint(mi * lc.rhythm_sleeping_factor, where=rhythmic, out=np.zeros(n_cust)))
        sleeping = np.where(rhythmic, s_r, sleeping).astype(np.int64)
        l_r = np.rint(mi * lc.rhythm_lost_factor, where=rhythmic, out=np.zeros(n_cust))
        lost = np.where(rhythmic, np.maximum(np.maximum(lost, l_r), sleeping + 1), lost).astype(np.int64)
    rec = fig.recency
    stage = np.where(rec > lost, 4, np.where(rec > sleeping, 3, np.where((n == 1) & (rec <= lc.new_days), 1, 2)))
    stage = np.where(has, stage, 0)
    # RFM
    rfm = seg.rfm
    if rfm.method == "fixed":
        r_e, f_e, m_e = list(rfm.recency_edges), list(rfm.frequency_edges), list(rfm.monetary_edges)
    else:
        r_e, f_e, m_e = _edges(rec[has]), _edges(n[has]), _edges(fig.monetary[has])
    r = np.where(has, _scores(rec, r_e, lower_is_better=True), 0)
    f = np.where(has, _scores(n, f_e), 0)
    m = np.where(has, _scores(fig.monetary, m_e), 0)
    table, names = segment_table(playbook)
    segment_idx = np.where(has, table[r, f, m], 0)
    # value: the best level any metric reaches
    vc = seg.value
    level = np.zeros(n_cust, dtype=np.int64)
    for metric in vc.metrics:
        v = fig.monetary if metric == "monetary" else fig.aov
        if vc.method == "fixed":
            vip, middle = (vc.vip_monetary, vc.middle_monetary) if metric == "monetary" else (vc.vip_aov, vc.middle_aov)
        else:
            vip, middle = _top_edge(v[has], vc.vip_share), _top_edge(v[has], vc.vip_share + vc.middle_share)
        level = np.maximum(level, np.where((v > 0) & (v >= vip), 2, np.where((v > 0) & (v >= middle), 1, 0)))
    level = np.where(has, level, 0)
    return Segmented(cols=cols, today=today, playbook=playbook, fig=fig, r=r, f=f, m=m, segment=segment_idx,
                     names=names, lifecycle=stage, sleeping_after=sleeping, lost_after=lost, value=level,
                     trend=_trends(cols, fig, today, playbook), tier=_tiers(fig, playbook),
                     holdout=(holdout_column(cols.ids, playbook.guards.holdout) if holdout is None else holdout) & has)


def _trends(cols: PurchaseColumns, fig: Figures, today: date, playbook: Playbook) -> np.ndarray:
    """segments.trend_of for everyone: the last window against the earlier average per window."""
    cfg = playbook.segments.trend
    n_cust = len(fig.n)
    cut = (today - timedelta(days=cfg.window_days)).toordinal()
    span = cut - fig.first
    judged = (fig.n > 0) & (span > 0) & (span >= cfg.min_history_days)
    recent_n, recent_s, earlier_s = np.zeros(n_cust, dtype=np.int64), np.zeros(n_cust), np.zeros(n_cust)
    for lo, hi, piece in cols.pieces():
        owner, recent = piece.owner, piece.day > cut
        amount = np.nan_to_num(piece.amount, nan=0.0)
        recent_n[lo:hi] = np.bincount(owner[recent], minlength=hi - lo)
        recent_s[lo:hi] = group_sum(amount[recent], owner[recent], hi - lo)
        earlier_s[lo:hi] = group_sum(amount[~recent], owner[~recent], hi - lo)
    earlier_n = fig.n - recent_n
    with np.errstate(all="ignore"):
        scale = cfg.window_days / span
        by_count = recent_n / (earlier_n * scale)
        by_spend = recent_s / (earlier_s * scale)
        combined = np.where(earlier_s > 0, (by_count + by_spend) / 2, by_count)
    out = np.where(combined >= 1 + cfg.threshold, 1, np.where(combined <= 1 - cfg.threshold, 2, 0))
    return np.where(judged, out, 0)


def _tiers(fig: Figures, playbook: Playbook) -> np.ndarray:
    cfg = playbook.segments.tiers
    attr = "min_purchases" if cfg.by == "purchases" else "min_spend"
    metric = fig.n if cfg.by == "purchases" else fig.monetary
    current = np.full(len(fig.n), -1, dtype=np.int64)
    for i, spec in enumerate(cfg.tiers):
        threshold = getattr(spec, attr)
        current = np.where((threshold <= metric) & ((threshold > 0) | (fig.n > 0)), i, current)
    return current


def segment_counts(s: Segmented) -> dict[str, int]:
    """engine.segment_counts from the columns."""
    tiers = s.playbook.segments.tiers
    tier_names = [t.name for t in tiers.tiers] + [tiers.none]
    counts: dict[str, int] = {}
    for prefix, idx, names in (("", s.segment, s.names), ("lifecycle:", s.lifecycle, LIFECYCLE),
                               ("value:", s.value, LEVELS), ("trend:", s.trend, TRENDS),
                               ("tier:", s.tier % len(tier_names), tier_names)):
        for i, k in enumerate(np.bincount(idx, minlength=len(names)).tolist()):
            if k:
                key = f"{prefix}{names[i]}"
                counts[key] = counts.get(key, 0) + k
    if s.holdout.any():
        counts["holdout"] = int(s.holdout.sum())
    return dict(sorted(counts.items()))


def metrics(s: Segmented, customers: Iterable[Customer] = (), *, cac: float | None = None, prospects: int = 0,
            secret: str = "", scored: bool = True) -> dict[str, object]:
    """metrics.compute_metrics from the columns (the plan's counts are added by the caller); the
    director's figures (playbooks.money) read `customers` (any order) once more, unless no purchase
    carries an NPS answer (`scored` False: a CSV) and neither a margin nor a referral secret is set."""
    fig, cols, pb = s.fig, s.cols, s.playbook
    today = s.today
    has = fig.n > 0
    n_customers = int(has.sum())
    purchases = int(fig.n.sum())
    heads = np.zeros(len(cols.day), dtype=bool)
    heads[cols.start[:-1][has]] = True
    known = ~np.isnan(cols.amount)
    firsts, later = cols.amount[heads & known], cols.amount[~heads & known]
    revenue = python_sum(firsts) + python_sum(later)
    n_known = len(firsts) + len(later)
    aov = revenue / n_known if n_known else 0.0
    year_ago = (today - timedelta(days=YEAR_DAYS)).toordinal()
    recent = np.bincount(cols.owner[cols.day > year_ago], minlength=len(fig.n))
    year_purchases, year_customers = int(recent.sum()), int((recent > 0).sum())
    new_12m = int((has & (fig.first > year_ago)).sum())
    per_year = year_purchases / year_customers if year_customers else 0.0
    ltv = revenue / n_customers if n_customers else 0.0
    lost = int((s.lifecycle == 4).sum())
    mcfg = pb.metrics
    crr = _retention(cols, fig, today - timedelta(days=mcfg.retention_period_days), today, mcfg.retention_active_days)
    ltv3 = ltv_3f(aov, per_year, mcfg.lifespan_years)
    out: dict[str, object] = {
        "customers": n_customers,
        "prospects": len(fig.n) - n_customers + prospects,
        "purchases": purchases,
        "revenue": round(revenue, 2),
        "currency": pb.currency,
        "repeat_rate": round(int((fig.n >= 2).sum()) / n_customers, 4) if n_customers else 0.0,
        "purchase_frequency": round(purchases / n_customers, 4) if n_customers else 0.0,
        "aov": round(aov, 2),
        "aov_new": round(python_sum(firsts) / len(firsts), 2) if len(firsts) else 0.0,
        "aov_returning": round(python_sum(later) / len(later), 2) if len(later) else 0.0,
        "ltv": round(ltv, 2),
        "purchases_per_year": round(per_year, 4),
        "lifespan_years": mcfg.lifespan_years,
        "ltv_3f": round(ltv3, 2),
        "churn_rate": round(lost / n_customers, 4) if n_customers else 0.0,
        "crr_12m": round(crr, 4) if crr is not None else None,
        "new_customers_12m": new_12m,
        "excluded_other_currency": int((fig.n - fig.known).sum()),
        "returning_revenue_share": round(python_sum(later) / revenue, 4) if revenue else 0.0,
        "returning_orders_share": round((purchases - n_customers) / purchases, 4) if purchases else 0.0,
    }
    if not scored and pb.metrics.margin is None and not secret:
        days, counts = np.unique(fig.first[has], return_counts=True)
        new_by_month: Counter[str] = Counter()
        for d, k in zip(days.tolist(), counts.tolist(), strict=True):
            new_by_month[month_of(date.fromordinal(d))] += k
        out.update(unscored_director_metrics(new_by_month, today, pb, ltv3=ltv3, cac=cac))
    else:
        out.update(director_metrics(_rows(s, customers), today, pb, ltv3=ltv3, cac=cac, secret=secret))
    return out


def _rows(s: Segmented, customers: Iterable[Customer]) -> Iterator[Row]:
    """Each customer's counted purchases as facts counts them, with its segment from the columns."""
    pb, today = s.playbook, s.today
    index = {cid: i for i, cid in enumerate(s.cols.ids)}
    for c in sorted(customers, key=lambda c: c.id):
        counted = tuple(sorted((p for p in c.purchases if p.date <= today and p.amount > 0),
                               key=lambda p: (p.date, p.id)))
        amounts = tuple(convert_amount(p, pb.currency, pb.rates) for p in counted)
        yield Row(c, counted, amounts, s.names[s.segment[index[c.id]]] if counted else "no_purchases")


def _retention(cols: PurchaseColumns, fig: Figures, start: date, end: date, active_days: int) -> float | None:
    """metrics.retention_rate, CRR = (E - N) / S, over customers with a counted purchase."""
    n_cust, owner, day = len(fig.n), cols.owner, cols.day
    s0, e0 = start.toordinal(), end.toordinal()

    def active(at: int) -> np.ndarray:
        inside = (day > at - active_days) & (day <= at)
        return np.bincount(owner[inside], minlength=n_cust) > 0

    has = fig.n > 0
    s = int(active(s0).sum())
    e = int(active(e0).sum())
    n = int((has & (fig.first > s0) & (fig.first <= e0)).sum())
    return (e - n) / s if s else None


def _day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


REPORT_HEAD = ("customer_id", "purchases", "first_purchase", "last_purchase", "recency_days", "frequency",
               "monetary", "rfm", "lifecycle", "value", "trend", "tier", "segment", "holdout")


def reports(s: Segmented) -> Iterator[dict]:
    """Each customer's `analyze` object (CustomerReport.to_json), one at a time, in id order."""
    for head, extra in report_parts(s):
        out = dict(zip(REPORT_HEAD, head, strict=True))
        if head[1]:
            out["first_purchase"], out["last_purchase"] = _day(head[2]), _day(head[3])
        out.update(extra)
        yield out


def report_parts(s: Segmented) -> Iterator[tuple[tuple, dict]]:
    """Each customer's report as (the REPORT_HEAD values, first and last purchase as date ordinals or
    None; the keys after them), in id order: CustomerReport and the analyze object are both made from it."""
    fig, pb = s.fig, s.playbook
    tiers = pb.segments.tiers
    attr = "min_purchases" if tiers.by == "purchases" else "min_spend"
    specs = tiers.tiers
    tier_names = [t.name for t in specs] + [tiers.none]  # tier -1: none
    next_names = [t.name for t in specs[1:]] + [None, specs[0].name if specs else None]
    pred = s.prediction
    predicted = bool(pred)
    arrays = (fig.n, fig.known, fig.monetary, fig.aov, fig.first, fig.last, fig.recency, s.r, s.f, s.m, s.segment,
              s.lifecycle, s.value, s.trend, s.tier, s.holdout,
              *((pred["ok"], pred["p_alive"], pred["expected_purchases_90d"], pred["predicted_ltv"]) if predicted
                else (np.zeros(len(fig.n), dtype=bool),) * 4))
    bonuses = bonus_columns(s) if s.cols.paid is not None else None
    by_purchases, currency, names, extras = tiers.by == "purchases", pb.currency, s.names, s.extras
    for i, (cid, n, known, money, aov, first, last, rec, r, f, m, seg, stage, value, trend, tier, hold,
            ok, alive, next_90, ltv) in enumerate(_by_customer(s.cols.ids, arrays)):
        monetary = money if known else 0  # sum() of no amounts is the integer 0
        nxt = tier + 1
        head = (cid, n, first if n else None, last if n else None, rec if n else None, n, round(monetary, 2),
                f"{r}{f}{m}" if n else "000", LIFECYCLE[stage], LEVELS[value], TRENDS[trend], tier_names[tier],
                names[seg], hold)
        more = {"currency": currency, "aov": round(aov, 2), "next_tier": next_names[tier],
                "to_next_tier": round(getattr(specs[nxt], attr) - (n if by_purchases else monetary), 2)
                if nxt < len(specs) else None}
        if n and predicted:
            if ok:
                more["p_alive"] = round(alive, 4)
                more["expected_purchases_90d"] = round(next_90, 4)
                more["predicted_ltv"] = round(ltv, 2)
            else:
                from playbooks.predict import UNCOMPUTABLE_NOTE

                more["prediction_note"] = UNCOMPUTABLE_NOTE
        if bonuses is not None:
            more.update(bonus_of(s, bonuses, i, cid))
        if n - known:
            more["excluded_other_currency"] = n - known
        if i in extras:
            more.update(extras[i])
        yield head, more


def _by_customer(ids: list[str], arrays: tuple[np.ndarray, ...]) -> Iterator[tuple]:
    """(id, each array's value) per customer, the arrays made lists a chunk at a time: the whole
    columns as lists at once were ~40 MB at 200,000 customers, on top of the plan."""
    for lo in range(0, len(ids), REPORT_CHUNK):
        yield from zip(ids[lo:lo + REPORT_CHUNK], *(a[lo:lo + REPORT_CHUNK].tolist() for a in arrays), strict=True)


def _purchase_days(cols: PurchaseColumns, first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: distinct purchase days, repeat days with a paid amount, and the sum of those days'
    spend (each day's amounts added one purchase after the other, the days then in order)."""
    n_cust, owner, day = len(first), cols.owner, cols.day
    new_day = np.ones(len(day), dtype=bool)
    new_day[1:] = (owner[1:] != owner[:-1]) | (day[1:] != day[:-1])
    gid = np.cumsum(new_day) - 1
    paid = cols.amount > 0  # NaN compares false
    day_total = np.bincount(gid[paid], weights=cols.amount[paid], minlength=int(new_day.sum()))
    day_paid = np.bincount(gid[paid], minlength=int(new_day.sum())) > 0
    del gid, paid
    g_owner, g_day = owner[new_day], day[new_day]
    repeat = day_paid & (g_day != first[g_owner])
    return (np.bincount(g_owner, minlength=n_cust), np.bincount(g_owner[repeat], minlength=n_cust),
            group_sum(day_total[repeat], g_owner[repeat], n_cust))


Predicted = tuple[str | None, dict | None, dict[str, np.ndarray]]  # (model_note, model, prediction) of a Segmented


def predict_into(s: Segmented, made: Predicted | None = None) -> None:
    """s.model_note, s.model and s.prediction from `made` (prediction_of(s), e.g. from another process),
    or computed here when None."""
    s.model_note, s.model, s.prediction = prediction_of(s) if made is None else made


def prediction_of(s: Segmented) -> Predicted:
    """predict.predict on the columns: BG/NBD + Gamma-Gamma fitted on the same (x, t_x, T) and
    repeat spend, each customer's figures kept as arrays; a reason not to predict in model_note.
    Reads `s` and changes nothing in it, so a forked child can compute it while the parent goes on."""
    from playbooks import predict as pr

    cols, fig = s.cols, s.fig
    has = fig.n > 0
    if not has.any():
        return "no purchases to predict lifetime from", None, {}
    n_cust, unit = len(fig.n), pr.DAYS_PER_UNIT[pr.TIME_UNIT]
    days, spend_x, spend_sum = np.zeros(n_cust, dtype=np.int64), np.zeros(n_cust, dtype=np.int64), np.zeros(n_cust)
    for lo, hi, piece in cols.pieces():
        days[lo:hi], spend_x[lo:hi], spend_sum[lo:hi] = _purchase_days(piece, fig.first[lo:hi])
    x = (days - 1)[has].astype(float)
    del days  # each per-customer array is ~54 MB at 6.8M customers: the ones used up go at once
    t_x = ((fig.last - fig.first) / unit)[has]
    T = ((s.today.toordinal() - fig.first) / unit)[has]
    spend_m = np.divide(spend_sum, spend_x, out=np.zeros(n_cust), where=spend_x > 0)
    del spend_sum
    sx, sm = spend_x[has].astype(float), spend_m[has]
    del spend_x, spend_m
    try:
        bg = pr.fit_bgnbd(x, t_x, T, time_unit=pr.TIME_UNIT).params
        gg = pr.fit_gamma_gamma(sx, sm).params
    except pr.ModelUnavailable as exc:
        return str(exc), None, {}
    model = {"bgnbd": bg.to_json(), "gamma_gamma": gg.to_json(), "customers": int(has.sum()),
             "horizon_days": pr.LTV_HORIZON_DAYS, "discount_rate": 0.0,
             "purchases_horizon_days": pr.PURCHASES_HORIZON_DAYS}
    alive = pr.p_alive(bg, x, t_x, T)
    next_90 = pr.expected_purchases(bg, pr.PURCHASES_HORIZON_DAYS / unit, x, t_x, T)
    with np.errstate(all="ignore"):
        value = pr.ltv(bg, gg, x, t_x, T, sx, sm, discount_rate=0.0)
    del x, t_x, T, sx, sm
    ok = np.isfinite(alive) & np.isfinite(next_90) & np.isfinite(value)
    made = {"p_alive": alive, "expected_purchases_90d": next_90, "predicted_ltv": value, "ok": ok}
    del alive, next_90, value, ok
    prediction = {}
    for name in list(made):  # each spread over all customers, its compact array let go
        arr = made.pop(name)
        full = np.zeros(n_cust, dtype=arr.dtype)
        full[has] = arr
        prediction[name] = full
        del arr
    return None, model, prediction
