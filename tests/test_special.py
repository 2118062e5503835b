"""playbooks.special (the lifetime fits without importing scipy) against scipy, which it falls back to."""

from __future__ import annotations

from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy import special as sp

from playbooks import special


def test_log_gamma_digamma_and_log_beta_agree_with_scipy_to_1e_13():
    x = np.concatenate((np.exp(np.linspace(-12, 12, 400)), np.arange(1.0, 500.0) + 0.2683))
    assert np.allclose(special.gammaln(x), sp.gammaln(x), rtol=1e-13, atol=1e-13)
    assert np.allclose(special.digamma(x), sp.digamma(x), rtol=1e-13, atol=1e-13)
    assert np.allclose(special.betaln(x, x[::-1]), sp.betaln(x, x[::-1]), rtol=1e-12, atol=1e-12)


def _exact_2f1(a: float, b: float, c: float, z: float) -> float:
    """The Gauss series in 60-digit decimals (slow, sure)."""
    getcontext().prec = 60
    a_, b_, c_, z_ = (Decimal(float(v)) for v in (a, b, c, z))
    term = total = Decimal(1)
    for n in range(20000):
        term = term * (a_ + n) * (b_ + n) / ((c_ + n) * (n + 1)) * z_
        total += term
        if abs(term) < Decimal("1e-40") * abs(total):
            break
    return float(total)


def test_the_gauss_series_is_exact_where_it_settles_and_says_so_where_not():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-0.9, 30, 300), rng.uniform(-0.9, 30, 300)
    c, z = a + b + rng.integers(0, 60, 300), rng.uniform(0, 0.97, 300)
    got = special.hyp2f1_series(a, b, c, z)
    settled = np.isfinite(got)
    assert settled.mean() > 0.9  # what BG/NBD asks (z = t / (alpha + T + t)) mostly settles
    exact = np.array([_exact_2f1(*v) for v in zip(a[settled], b[settled], c[settled], z[settled], strict=True)])
    assert np.allclose(got[settled], exact, rtol=1e-12)
    # where scipy is sure too (z <= 0.9, c - a - b >= 1), the two agree
    easy = settled & (z <= 0.9) & (c - a - b >= 1)
    assert np.allclose(got[easy], sp.hyp2f1(a, b, c, z)[easy], rtol=1e-10)
    assert np.isnan(special.hyp2f1_series(1.0, 1.0, 2.0, -2.0))  # outside the circle: scipy's business


@pytest.mark.parametrize("start", [(0.0, 0.0), (3.0, -4.0)])
def test_the_optimiser_stops_where_the_gradient_vanishes_and_gives_up_at_a_bound(start):
    def rosen(v):
        x, y = v
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2, np.array([-2 * (1 - x) - 400 * x * (y - x * x),
                                                               200 * (y - x * x)])

    x, f, g = special.minimise(rosen, np.array(start), bound=12.0)
    assert np.allclose(x, [1.0, 1.0], atol=1e-8) and np.max(np.abs(g)) < 1e-10
    assert special.minimise(lambda v: (float(-v[0]), np.array([-1.0])), np.array([0.0]), bound=12.0) is None


def test_the_optimiser_accepts_a_flat_gradient_where_the_objective_no_longer_changes():
    """A likelihood summed over a million customers stops changing (rounding) before its gradient is
    below 1e-10: a gradient below 1e-7 there is the maximum (scipy's fallback asked the same)."""
    calls = []

    def plateau(v):
        calls.append(1)
        gap = v[0] - 1.0  # the gradient never drops below 5e-8: only the flat rule can stop
        return 1.0 + float(np.round(gap ** 2, 15)), np.array([2 * gap + (5e-8 if gap >= 0 else -5e-8)])

    got = special.minimise(plateau, np.array([4.0]), bound=12.0)
    assert got is not None and abs(got[0][0] - 1.0) < 1e-7 and len(calls) < 2000


def test_the_optimiser_tries_steps_by_value_alone_and_ends_where_it_ended_with_gradients():
    """At the rounding floor the line search halves a step ~30 times: given the value alone (`fun`),
    those trials skip the gradient, and the fit ends on the same point to the last bit."""
    rng = np.random.default_rng(5)
    noise = rng.normal(size=4001) * 1e-16

    def value(v):
        gap = v[0] - 1.0
        return 1.0 + float(np.round(gap ** 2, 15)) + noise[int(abs(gap) * 1e9) % 4001]

    grads = []

    def with_gradient(v):
        grads.append(1)
        gap = v[0] - 1.0
        return value(v), np.array([2 * gap + (5e-8 if gap >= 0 else -5e-8)])

    plain = special.minimise(with_gradient, np.array([4.0]), bound=12.0)
    plain_grads, grads[:] = len(grads), []
    quick = special.minimise(with_gradient, np.array([4.0]), bound=12.0, fun=value)
    assert plain is not None and quick is not None
    assert quick[0].tobytes() == plain[0].tobytes() and quick[1] == plain[1]
    assert len(grads) < plain_grads / 2


def test_rows_are_grouped_as_numpy_groups_them_so_the_fit_adds_in_the_same_order():
    """The compressed customers (x, t_x, T) and the 2F1 arguments keep np.unique's order and
    counts: the likelihood's sums, and so the fitted parameters, stay the same to the last bit."""
    from playbooks.likelihood import distinct

    rng = np.random.default_rng(3)
    cols = [rng.integers(0, 4, 500).astype(float), rng.integers(0, 3, 500) / 7, np.full(500, 2.5)]
    rows, inverse, counts = special.unique_rows(*cols)
    want, w_inverse, w_counts = np.unique(np.column_stack(cols), axis=0, return_inverse=True, return_counts=True)
    assert np.column_stack(rows).tobytes() == want.tobytes()
    assert inverse.tolist() == w_inverse.ravel().tolist() and counts.tolist() == w_counts.tolist()
    for x in (rows[0], cols[0]):  # sorted (no sort needed) and not
        values, at = distinct(x)
        assert values.tolist() == np.unique(x).tolist() and values[at].tobytes() == x.tobytes()
