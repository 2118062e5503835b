"""Predicted customer lifetime: BG/NBD (who is still a customer, how often they will buy) and
Gamma-Gamma (what they spend per purchase), fitted by maximum likelihood on the shop's history.

Fader, Hardie & Lee (2005) "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD
Model" and "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis". Pure: arrays or
purchase dates in, numbers out; `today` is an argument. Time runs in weeks (TIME_UNIT).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from playbooks import special
from playbooks.likelihood import bgnbd_ll, bgnbd_ll_grad, gg_ll, gg_ll_grad, gg_terms, wsum
from playbooks.special import expit

# Weeks, as in the paper: parameters come out in familiar magnitudes (alpha ~ weeks between
# purchases), the optimiser is well scaled for histories of months to years, and one unit is
# still fine enough for distinct purchase days (a day is 1/7).
TIME_UNIT = "weeks"
DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0}
PURCHASES_HORIZON_DAYS = 90  # expected_purchases_90d
LTV_HORIZON_DAYS = 365  # predicted_ltv: expected spend over the next year
MIN_CUSTOMERS = 30  # with history (first purchase before today)
MIN_REPEATERS = 10  # customers who bought on two or more days
MIN_SPEND_CUSTOMERS = 10  # repeaters with a known amount, for Gamma-Gamma
LOG_BOUND = 12.0  # log-parameters live in [-12, 12]: e^12 ~ 160,000
UNCOMPUTABLE_NOTE = "the lifetime model gives no finite figures for this customer's history"


class ModelUnavailable(ValueError):
    """The history cannot carry a fit; the message says why in the sales team's words."""


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), drop-out chance ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    time_unit: str = TIME_UNIT

    def to_json(self) -> dict:
        return {"r": round(self.r, 6), "alpha": round(self.alpha, 6), "a": round(self.a, 6),
                "b": round(self.b, 6), "time_unit": self.time_unit}


@dataclass(frozen=True)
class GammaGamma:
    """Spend per purchase ~ Gamma(p, nu) with nu ~ Gamma(q, v) across customers (v in money)."""

    p: float
    q: float
    v: float

    def to_json(self) -> dict:
        return {"p": round(self.p, 6), "q": round(self.q, 6), "v": round(self.v, 6)}

    @property
    def mean_spend(self) -> float:
        """The population's expected spend per purchase, p v / (q - 1) (needs q > 1)."""
        return self.p * self.v / (self.q - 1.0)


@dataclass(frozen=True)
class Fit:
    """A maximum-likelihood fit; `stderr` (same order as the parameters) from the numeric Hessian."""

    params: BgNbd | GammaGamma
    log_likelihood: float
    customers: int
    stderr: tuple[float, ...] | None = None


# --- BG/NBD -------------------------------------------------------------------------------


_bgnbd_ll = bgnbd_ll  # per-customer log-likelihood (paper eq. 6); playbooks.likelihood has its gradient


def _check_bgnbd_input(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (x.shape == t_x.shape == T.shape) or x.ndim != 1:
        raise ValueError("x, t_x and T must be 1-d arrays of one length")
    if np.any(~np.isfinite(x) | ~np.isfinite(t_x) | ~np.isfinite(T)) or np.any(x < 0) \
            or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or np.any((x == 0) & (t_x > 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T and t_x = 0 when x = 0")


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows and their counts: customers sharing (x, t_x, T) are one weighted term."""
    rows, _, counts = special.unique_rows(*(np.ascontiguousarray(c, dtype=float) for c in columns))
    return rows, counts.astype(float)


def _minimise(nll, start: np.ndarray, nll_grad=None) -> np.ndarray:
    """BFGS in numpy on log-parameters within LOG_BOUND with the exact gradient, stopped only where
    it vanishes (playbooks.special); where it stalls or meets a bound, scipy's L-BFGS-B (same
    stopping rule), else polished by Nelder-Mead."""
    if nll_grad is not None:
        with np.errstate(all="ignore"):
            got = special.minimise(nll_grad, start, bound=LOG_BOUND, fun=nll)
        if got is not None and np.all(np.isfinite(got[0])) and math.isfinite(got[1]) and got[1] < 1e100:
            return got[0]
    from scipy.optimize import minimize

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    if nll_grad is not None:
        res = minimize(nll_grad, start, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
        flat = np.all(np.abs(res.jac) < 1e-7) or np.any(np.abs(res.x) >= LOG_BOUND)  # converged, or at a bound
        if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) and res.fun < 1e100 and (res.success or flat):
            return res.x
    best = None
    for method in ("L-BFGS-B", "Nelder-Mead"):
        x0 = start if best is None else best.x
        res = minimize(nll, x0, method=method, bounds=bounds,
                       options={"maxiter": 2000} if method == "L-BFGS-B" else {"maxiter": 4000, "xatol": 1e-7,
                                                                                "fatol": 1e-9})
        if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) and (best is None or res.fun <= best.fun):
            best = res
        if best is not None and best.success:
            break
    if best is None or not np.isfinite(best.fun):
        raise ModelUnavailable("the model fit did not converge on this history")
    return best.x


def _finite_objective(value: float, grad: np.ndarray) -> tuple[float, np.ndarray]:
    """A point where the likelihood overflows is no optimum: a huge value, and no direction."""
    if math.isfinite(value) and np.all(np.isfinite(grad)):
        return value, grad
    return 1e100, np.zeros_like(grad)


def _stderr(nll, log_x: np.ndarray) -> tuple[float, ...] | None:
    """Standard errors of the parameters (delta method from the Hessian in log space), or None."""
    k = len(log_x)
    h = 1e-4
    hess = np.empty((k, k))
    f0 = nll(log_x)
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            if i == j:
                val = (nll(log_x + ei) - 2 * f0 + nll(log_x - ei)) / h**2
            else:
                val = (nll(log_x + ei + ej) - nll(log_x + ei - ej) - nll(log_x - ei + ej)
                       + nll(log_x - ei - ej)) / (4 * h**2)
            hess[i, j] = hess[j, i] = val
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return None
    var = np.diag(cov)
    if np.any(~np.isfinite(var)) or np.any(var <= 0):
        return None
    return tuple(float(v) for v in np.exp(log_x) * np.sqrt(var))


def fit_bgnbd(x, t_x, T, *, time_unit: str = TIME_UNIT, with_stderr: bool = False) -> Fit:
    """Fit BG/NBD to repeat purchases x, time of last purchase t_x and age T (in `time_unit`).

    Raises ModelUnavailable with a readable reason for too few customers or no repeat buyers.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _check_bgnbd_input(x, t_x, T)
    aged = int(np.sum(T > 0))
    repeaters = int(np.sum(x > 0))
    if aged < MIN_CUSTOMERS:
        raise ModelUnavailable(f"too few customers to predict lifetime: {aged} with a purchase before today "
                               f"(needs at least {MIN_CUSTOMERS})")
    if repeaters < MIN_REPEATERS:
        what = "nobody has bought on a second day yet" if repeaters == 0 else (
            f"only {repeaters} customers bought on two or more days")
        raise ModelUnavailable(f"too few repeat buyers to predict lifetime: {what} (needs {MIN_REPEATERS})")
    (ux, ut, uT), w = _compress(x, t_x, T)
    total = float(w.sum())

    def nll(log_params: np.ndarray) -> float:
        value = -wsum(w, _bgnbd_ll(log_params, ux, ut, uT)) / total
        return value if math.isfinite(value) else 1e100

    def nll_grad(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            value, grad = bgnbd_ll_grad(log_params, ux, ut, uT, w)
        return _finite_objective(-value / total, -grad / total)

    scale = float(np.mean(T[T > 0]))
    start = np.log(np.array([1.0, max(scale, 1e-3), 1.0, 1.0]))
    log_x = _minimise(nll, start, nll_grad)
    r, alpha, a, b = (float(v) for v in np.exp(log_x))
    stderr = _stderr(lambda p: nll(p) * total, log_x) if with_stderr else None
    return Fit(BgNbd(r, alpha, a, b, time_unit), -nll(log_x) * total, len(x), stderr)


def p_alive(m: BgNbd, x, t_x, T) -> np.ndarray:
    """P(the customer has not dropped out) given x, t_x, T (paper eq. 12); 1 for x = 0."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    out = np.ones_like(x)
    rep = x > 0
    xr = x[rep]
    log_odds = (math.log(m.a) - np.log(m.b + xr - 1.0)
                + (m.r + xr) * (np.log(m.alpha + T[rep]) - np.log(m.alpha + t_x[rep])))
    out[rep] = expit(-log_odds)
    return out


def expected_purchases(m: BgNbd, t: float, x, t_x, T) -> np.ndarray:
    """E[purchases in the next t units | x, t_x, T] (paper eq. 10); NaN where it cannot be computed.

    The paper's (1-z)^(r+x) 2F1(r+x, b+x; c; z), c = a+b+x-1, is taken in log space from the first
    of three equal forms that evaluates finitely (the Gauss series where it settles, else scipy's 2F1): Euler's transformation (1-z)^(a-1)
    2F1(a+b-1-r, a-1; c; z) (stable for heavy buyers), the form as written (a degenerate fit with
    huge a and b overflows Euler's), and Pfaff's 2F1(r+x, a-1; c; -t/(alpha+T)). A customer none
    of them fits gets NaN alone. a = 1 exactly is nudged (the formula has a removable 0/0).
    """
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    if abs(a - 1.0) < 1e-6:
        a = 1.0 + 1e-6
    forms = (
        lambda x, T, f: (a - 1.0) * _log_rest(alpha, T, t) + np.log(f(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0,
                                                                      t / (alpha + T + t))),
        lambda x, T, f: (r + x) * _log_rest(alpha, T, t) + np.log(f(r + x, b + x, a + b + x - 1.0,
                                                                    t / (alpha + T + t))),
        lambda x, T, f: np.log(f(r + x, a - 1.0, a + b + x - 1.0, -t / (alpha + T))),
    )
    log_term = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        for hyp2f1 in (special.hyp2f1_series, _scipy_hyp2f1):  # the series where it settles, then scipy's
            for form in forms:
                todo = np.isnan(log_term)
                if not todo.any():
                    break
                value = form(x[todo], T[todo], hyp2f1)
                # the term is a mean of numbers in (0, 1] when a > 1, and above 1 when a < 1
                usable = np.isfinite(value) & ((value <= 1e-12) if a > 1.0 else (value >= -1e-12))
                log_term[todo] = np.where(usable, value, np.nan)
        numerator = ((a + b + x - 1.0) / (a - 1.0)) * -np.expm1(log_term)
    return numerator * p_alive(m, x, t_x, T)


def _scipy_hyp2f1(a, b, c, z):
    from scipy.special import hyp2f1

    return hyp2f1(a, b, c, z)


def _log_rest(alpha: float, T: np.ndarray, t: float) -> np.ndarray:
    """log(1 - z) with z = t / (alpha + T + t)."""
    return np.log(alpha + T) - np.log(alpha + T + t)


# --- Gamma-Gamma ---------------------------------------------------------------------------


_gg_ll = gg_ll  # per-customer log density of the mean spend (2005b, eq. 3)


def fit_gamma_gamma(x, m, *, with_stderr: bool = False) -> Fit:
    """Fit Gamma-Gamma to x purchases with mean spend m per customer (x >= 1, m > 0 only).

    Spend is rescaled to mean 1 for the optimiser and v scaled back. Raises ModelUnavailable
    with too few customers, or when q <= 1 (the average spend would be undefined).
    """
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x >= 1) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < MIN_SPEND_CUSTOMERS:
        raise ModelUnavailable(f"too few repeat purchases with a known amount to predict spend: {len(x)} "
                               f"customers (needs {MIN_SPEND_CUSTOMERS})")
    scale = float(np.mean(m))
    (ux, um), w = _compress(x, m / scale)
    total = float(w.sum())
    terms = gg_terms(ux, um)

    def nll(log_params: np.ndarray) -> float:
        value = -wsum(w, _gg_ll(log_params, ux, um, terms)) / total
        return value if math.isfinite(value) else 1e100

    def nll_grad(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            value, grad = gg_ll_grad(log_params, ux, um, w, terms)
        return _finite_objective(-value / total, -grad / total)

    log_x = _minimise(nll, np.log(np.array([1.0, 2.0, 1.0])), nll_grad)
    p, q, v = (float(val) for val in np.exp(log_x))
    if q <= 1.0:
        raise ModelUnavailable("spend per purchase varies too much between customers to predict it (q <= 1)")
    stderr = None
    if with_stderr:
        se = _stderr(lambda lp: nll(lp) * total, log_x)
        stderr = None if se is None else (se[0], se[1], se[2] * scale)
    return Fit(GammaGamma(p, q, v * scale), -nll(log_x) * total, len(x), stderr)


def expected_spend(m: GammaGamma, x, mean_spend) -> np.ndarray:
    """E[spend per purchase | x purchases averaging mean_spend]; the population mean when x = 0."""
    x = np.asarray(x, dtype=float)
    mean_spend = np.nan_to_num(np.asarray(mean_spend, dtype=float), nan=0.0)
    return m.p * (m.v + x * mean_spend) / (m.p * x + m.q - 1.0)


# --- per customer ---------------------------------------------------------------------------


@dataclass
class Prediction:
    """`model` (the design.md object) and per-customer figures, or a `note` saying why not.

    A customer's figures are p_alive, expected_purchases_90d and predicted_ltv, or only
    `prediction_note` when the fitted model gives no finite value for that history.
    """

    model: dict | None = None
    customers: dict[str, dict[str, object]] = field(default_factory=dict)
    note: str | None = None


def summarise(days: Sequence[date], today: date, time_unit: str = TIME_UNIT) -> tuple[int, float, float]:
    """(x, t_x, T) from a customer's purchase dates: distinct days, so same-day orders are one visit."""
    distinct = sorted(set(days))
    unit = DAYS_PER_UNIT[time_unit]
    first, last = distinct[0], distinct[-1]
    return len(distinct) - 1, (last - first).days / unit, (today - first).days / unit


def ltv(bg: BgNbd, gg: GammaGamma, x, t_x, T, x_spend, mean_spend, *,
        horizon_days: int = LTV_HORIZON_DAYS, discount_rate: float = 0.0) -> np.ndarray:
    """Expected spend per purchase x expected purchases over the horizon.

    `discount_rate` is yearly; above 0, purchases are counted month by month and each month's
    spend is divided by (1 + rate)^(month end / 365 days). 0 (the default) does not discount.
    """
    unit = DAYS_PER_UNIT[bg.time_unit]
    spend = expected_spend(gg, x_spend, mean_spend)
    if discount_rate <= 0:
        return spend * expected_purchases(bg, horizon_days / unit, x, t_x, T)
    months = max(1, round(horizon_days / 30.4375))
    total = np.zeros(len(np.atleast_1d(x)))
    before = np.zeros_like(total)
    for k in range(1, months + 1):
        days = horizon_days * k / months
        upto = expected_purchases(bg, days / unit, x, t_x, T)
        total += (upto - before) / (1.0 + discount_rate) ** (days / 365.0)
        before = upto
    return spend * total


def predict(histories: Mapping[str, Sequence[tuple[date, float | None]]], today: date, *,
            time_unit: str = TIME_UNIT, discount_rate: float = 0.0) -> Prediction:
    """Fit both models on every customer's (purchase date, amount or None) and predict per customer.

    Purchases after `today` are ignored. Any reason not to predict (tiny shop, no repeat buyers,
    a fit that does not converge) comes back as `note`, never as NaN or an exception; a customer
    whose own figures cannot be computed gets a `prediction_note`, and the others keep theirs.
    """
    ids: list[str] = []
    xs: list[int] = []
    txs: list[float] = []
    Ts: list[float] = []
    spend_x: list[int] = []
    spend_m: list[float] = []
    for cid, rows in histories.items():
        rows = [(d, a) for d, a in rows if d <= today]
        if not rows:
            continue
        x, t_x, T = summarise([d for d, _a in rows], today, time_unit)
        per_day: dict[date, float] = {}
        for d, a in rows:
            if a is not None and a > 0:
                per_day[d] = per_day.get(d, 0.0) + a
        first = min(d for d, _a in rows)
        repeat_values = [v for d, v in per_day.items() if d != first]
        ids.append(cid)
        xs.append(x)
        txs.append(t_x)
        Ts.append(T)
        spend_x.append(len(repeat_values))
        spend_m.append(sum(repeat_values) / len(repeat_values) if repeat_values else 0.0)
    if not ids:
        return Prediction(note="no purchases to predict lifetime from")
    x, t_x, T = np.array(xs, float), np.array(txs, float), np.array(Ts, float)
    sx, sm = np.array(spend_x, float), np.array(spend_m, float)
    try:
        bg = fit_bgnbd(x, t_x, T, time_unit=time_unit).params
        gg = fit_gamma_gamma(sx, sm).params
    except ModelUnavailable as exc:
        return Prediction(note=str(exc))
    model = {"bgnbd": bg.to_json(), "gamma_gamma": gg.to_json(), "customers": len(ids),
             "horizon_days": LTV_HORIZON_DAYS, "discount_rate": discount_rate,
             "purchases_horizon_days": PURCHASES_HORIZON_DAYS}
    return Prediction(model=model, customers=customer_figures(bg, gg, ids, x, t_x, T, sx, sm,
                                                              discount_rate=discount_rate))


def customer_figures(bg: BgNbd, gg: GammaGamma, ids: Sequence[str], x, t_x, T, x_spend, mean_spend, *,
                     discount_rate: float = 0.0) -> dict[str, dict[str, object]]:
    """Each customer's p_alive, expected purchases and value; where one cannot be computed
    (a history the fitted model is degenerate for), that customer alone gets `prediction_note`."""
    unit = DAYS_PER_UNIT[bg.time_unit]
    alive = p_alive(bg, x, t_x, T)
    next_90 = expected_purchases(bg, PURCHASES_HORIZON_DAYS / unit, x, t_x, T)
    with np.errstate(all="ignore"):
        value = ltv(bg, gg, x, t_x, T, x_spend, mean_spend, discount_rate=discount_rate)
    out: dict[str, dict[str, object]] = {}
    for i, cid in enumerate(ids):
        figures = (float(alive[i]), float(next_90[i]), float(value[i]))
        if all(math.isfinite(v) for v in figures):
            out[cid] = {"p_alive": round(figures[0], 4), "expected_purchases_90d": round(figures[1], 4),
                        "predicted_ltv": round(figures[2], 2)}
        else:
            out[cid] = {"prediction_note": UNCOMPUTABLE_NOTE}
    return out
