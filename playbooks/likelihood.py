"""Log-likelihoods of BG/NBD and Gamma-Gamma with their exact gradients in log-parameters.

The fit needs the gradient: estimated by finite differences it is only good to ~1e-5, and the
optimiser then stops up to 1e-4 (relative) short of the maximum (CDNOW: `a` 8.6e-5 away from
the maximum lifetimes reaches with its exact gradient). Exact, the optimiser stops within ~1e-7
and needs a fifth of the likelihood evaluations. Vectorised over (compressed) customers.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from playbooks.special import betaln, digamma, gammaln


def wsum(w: np.ndarray, values: np.ndarray) -> float:
    """sum(w * values), without BLAS: np.dot hands a vector this short to BLAS threads, which on a
    busy machine wait for cores (25 ms a call measured, against 0.02 ms for the plain product)."""
    return float(np.sum(w * values))



def bgnbd_ll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (Fader, Hardie & Lee 2005, eq. 6, as a log-sum for stability)."""
    return _bgnbd(log_params, x, t_x, T, grad=False)[0]


def bgnbd_ll_grad(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                  w: np.ndarray) -> tuple[float, np.ndarray]:
    """sum(w * ll) and its gradient in (log r, log alpha, log a, log b)."""
    ll, parts = _bgnbd(log_params, x, t_x, T, grad=True)
    return wsum(w, ll), np.array([wsum(w, p) for p in parts])


def distinct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, index) with values[index] == x: the few distinct purchase counts of many customers
    (CDNOW: 59 among 11,102 compressed rows), found without a sort when x is sorted already (the
    compressed rows are)."""
    if len(x) and np.all(x[1:] >= x[:-1]):
        new = np.empty(len(x), dtype=bool)
        new[0] = True
        np.not_equal(x[1:], x[:-1], out=new[1:])
        return x[new], np.cumsum(new) - 1
    return np.unique(x, return_inverse=True)


def _bgnbd(log_params, x, t_x, T, *, grad: bool):
    """Each function of x alone is taken on its distinct values and spread back: the same numbers,
    element by element, as over every row."""
    r, alpha, a, b = np.exp(log_params)
    log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
    xs, at = distinct(x)
    a1 = (gammaln(r + xs) - gammaln(r))[at] + r * np.log(alpha)
    a2 = (betaln(a, b + xs) - betaln(a, b))[at]
    a3 = -(r + x) * log_at
    rep = x > 0
    a4 = np.full_like(a3, -np.inf)
    xr = x[rep]
    a4[rep] = np.log(a) - np.log(b + xr - 1.0) - (r + xr) * log_atx[rep]
    mix = np.logaddexp(a3, a4)
    ll = a1 + a2 + mix
    if not grad:
        return ll, None
    p3, p4 = np.exp(a3 - mix), np.exp(a4 - mix)  # the two terms' shares of the sum (p4 = 0 for x = 0)
    d_r = (digamma(r + xs) - digamma(r))[at] + np.log(alpha) - p3 * log_at - p4 * log_atx
    d_alpha = r / alpha - (r + x) * (p3 / (alpha + T) + p4 / (alpha + t_x))
    psi_abxs = digamma(a + b + xs)
    d_a = (digamma(a + b) - psi_abxs)[at] + p4 / a
    d_b = (digamma(b + xs) - psi_abxs - digamma(b) + digamma(a + b))[at]
    d_b[rep] -= p4[rep] / (b + xr - 1.0)
    return ll, (r * d_r, alpha * d_alpha, a * d_a, b * d_b)


def gg_terms(x: np.ndarray, m: np.ndarray) -> SimpleNamespace:
    """What the Gamma-Gamma likelihood takes of the data on every call, taken once per fit (the same
    numbers: log m, log x, m * x, the distinct purchase counts)."""
    xs, at = distinct(x)
    return SimpleNamespace(x=x, mx=m * x, log_m=np.log(m), log_x=np.log(x), xs=xs, at=at)


def gg_ll(log_params: np.ndarray, x: np.ndarray, m: np.ndarray, terms: SimpleNamespace | None = None) -> np.ndarray:
    """Per-customer log density of the mean spend m of x purchases (Fader, Hardie & Lee 2005b, eq. 3)."""
    t = terms or gg_terms(x, m)
    p, q, v = np.exp(log_params)
    return _gg_ll(p, q, v, t, p * t.x, p * t.xs, np.log(v + t.mx))


def _gg_ll(p, q, v, t: SimpleNamespace, px: np.ndarray, pxs: np.ndarray, log_vmx: np.ndarray) -> np.ndarray:
    return ((gammaln(pxs + q) - gammaln(pxs))[t.at] - gammaln(q) + q * np.log(v) + (px - 1.0) * t.log_m
            + px * t.log_x - (px + q) * log_vmx)


def gg_ll_grad(log_params: np.ndarray, x: np.ndarray, m: np.ndarray, w: np.ndarray,
               terms: SimpleNamespace | None = None) -> tuple[float, np.ndarray]:
    """sum(w * ll) and its gradient in (log p, log q, log v)."""
    t = terms or gg_terms(x, m)
    p, q, v = np.exp(log_params)
    px, pxs = p * t.x, p * t.xs
    vmx = v + t.mx
    log_vmx = np.log(vmx)
    psis = digamma(pxs + q)
    d_p = t.x * ((psis - digamma(pxs))[t.at] + t.log_m + t.log_x - log_vmx)
    d_q = (psis - digamma(q))[t.at] + np.log(v) - log_vmx
    d_v = q / v - (px + q) / vmx
    return (wsum(w, _gg_ll(p, q, v, t, px, pxs, log_vmx)),
            np.array([p * wsum(w, d_p), q * wsum(w, d_q), v * wsum(w, d_v)]))
