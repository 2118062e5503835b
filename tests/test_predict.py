"""The lifetime model: BG/NBD and Gamma-Gamma recover known parameters from simulated shops,
predict a hold-out period, and say plainly when a history cannot carry a fit.

Tolerances (fixed seeds, so the tests are deterministic): BG/NBD with 5,000 customers over 66-78
weeks, every parameter within 25 % of the truth and within 3 standard errors of the fit (over 30
seeds the worst case seen was 21 %, b); Gamma-Gamma with 10,000 customers, p, q and v within 25 %
(worst seen 17 %) and the population's mean spend p v / (q - 1) within 5 % (worst seen 1.7 %).
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pytest
from scipy import stats

from connector.model import Customer, Purchase
from emulators.shop import generate_shop
from playbooks import evaluate, load_playbook
from playbooks.predict import (
    BgNbd,
    GammaGamma,
    ModelUnavailable,
    customer_figures,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
    predict,
)

# Fader, Hardie & Lee (2005), CDNOW estimates, per week
TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
WEEKS = 78.0
START = date(2024, 1, 1)


def simulate_summary(n: int, seed: int, *, r=0.243, alpha=4.414, a=0.793, b=2.426):
    """(x, t_x, T) drawn exactly from BG/NBD: first purchases over 12 weeks, observed to week 78.

    Repeat purchases arrive at rate lambda ~ Gamma(r, alpha); after each one the customer drops
    out with chance p ~ Beta(a, b). Given N arrivals in (0, T], the J-th lies at T * Beta(J, N-J+1).
    """
    rng = np.random.default_rng(seed)
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    T = WEEKS - rng.uniform(0, 12, n)
    arrivals, dropout_after = rng.poisson(lam * T), rng.geometric(p)
    x = np.minimum(arrivals, dropout_after)
    t_x = np.zeros(n)
    rep = x > 0
    t_x[rep] = T[rep] * rng.beta(x[rep], arrivals[rep] - x[rep] + 1)
    return x.astype(float), t_x, T


def simulate_events(n: int, seed: int, extra_weeks: float):
    """Purchase times per customer (weeks, first purchase included) up to WEEKS + extra_weeks, and
    whether each customer is still alive at week 78."""
    rng = np.random.default_rng(seed)
    p_ = TRUE_BGNBD
    lam, drop = rng.gamma(p_["r"], 1 / p_["alpha"], n), rng.beta(p_["a"], p_["b"], n)
    births = rng.uniform(0, 12, n)
    end = WEEKS + extra_weeks
    histories, alive = [], []
    for i in range(n):
        times, t, dead_at = [births[i]], births[i], math.inf
        while True:
            t += rng.exponential(1 / lam[i])
            if t > end:
                break
            times.append(t)
            if rng.random() < drop[i]:
                dead_at = t
                break
        histories.append(times)
        alive.append(dead_at > WEEKS)
    return histories, np.array(alive)


def as_dates(times) -> list[date]:
    return [START + timedelta(days=round(t * 7)) for t in times]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bgnbd_recovers_the_parameters_of_a_known_process(seed):
    x, t_x, T = simulate_summary(5000, seed)
    fit = fit_bgnbd(x, t_x, T, with_stderr=True)
    got = fit.params
    assert got.time_unit == "weeks"
    assert fit.stderr is not None
    for (name, truth), se in zip(TRUE_BGNBD.items(), fit.stderr, strict=True):
        value = getattr(got, name)
        assert abs(value / truth - 1) < 0.25, f"{name}: {value:.4f} vs {truth}"
        assert abs(value - truth) < 3 * se, f"{name}: {value:.4f} vs {truth} (se {se:.4f})"


def test_gamma_gamma_recovers_the_parameters_of_a_known_process():
    rng = np.random.default_rng(11)
    n = 10_000
    x = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], n)
    mean_spend = rng.gamma(TRUE_GG["p"] * x, 1 / nu) / x  # the mean of x Gamma(p, nu) purchases
    got = fit_gamma_gamma(x, mean_spend).params
    for name, truth in TRUE_GG.items():
        assert abs(getattr(got, name) / truth - 1) < 0.25, f"{name}: {getattr(got, name):.3f} vs {truth}"
    truth_mean = TRUE_GG["p"] * TRUE_GG["v"] / (TRUE_GG["q"] - 1)
    assert got.mean_spend == pytest.approx(truth_mean, rel=0.05)


def test_gamma_gamma_is_scale_free():
    rng = np.random.default_rng(5)
    x = 1 + rng.poisson(2.0, 3000)
    m = rng.gamma(TRUE_GG["p"] * x, 1 / rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], 3000)) / x
    small, big = fit_gamma_gamma(x, m).params, fit_gamma_gamma(x, m * 1000).params
    assert big.p == pytest.approx(small.p, rel=1e-3) and big.q == pytest.approx(small.q, rel=1e-3)
    assert big.v == pytest.approx(small.v * 1000, rel=1e-3)


def test_conditional_expectation_matches_the_published_example():
    # BTYD vignette (CDNOW parameters): x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases in 39 weeks
    m = BgNbd(0.2425, 4.4136, 0.7929, 2.4259)
    assert float(expected_purchases(m, 39, [2], [30.43], [38.86])[0]) == pytest.approx(1.226, abs=1e-3)
    heavy = expected_purchases(m, 13, [200], [77.0], [78.0])  # Euler's transformation keeps heavy buyers finite
    assert np.isfinite(heavy).all() and heavy[0] > 0


def test_p_alive_and_next_purchases_match_what_the_simulated_shop_then_did():
    horizon = 90 / 7
    histories, alive = simulate_events(5000, seed=21, extra_weeks=horizon)
    x, t_x, T, future = [], [], [], []
    for times in histories:
        seen = [t for t in times if t <= WEEKS]
        x.append(len(seen) - 1)
        t_x.append(seen[-1] - seen[0])
        T.append(WEEKS - seen[0])
        future.append(sum(1 for t in times if t > WEEKS))
    x, t_x, T = np.array(x, float), np.array(t_x), np.array(T)
    model = fit_bgnbd(x, t_x, T).params
    alive_p = p_alive(model, x, t_x, T)
    assert abs(alive_p.mean() - alive.mean()) < 0.03  # share still buying: predicted vs true
    expected = expected_purchases(model, horizon, x, t_x, T)
    assert expected.sum() == pytest.approx(sum(future), rel=0.10)  # next 90 days, all customers
    heavy = x >= 3
    assert expected[heavy].sum() == pytest.approx(np.array(future)[heavy].sum(), rel=0.15)


def test_predict_from_purchase_dates_fits_and_gives_every_customer_finite_figures():
    histories, _alive = simulate_events(4000, seed=8, extra_weeks=0)
    rng = np.random.default_rng(3)
    today = START + timedelta(days=round(WEEKS * 7))
    rows = {f"c{i}": [(d, float(rng.gamma(6.25, 100))) for d in as_dates(times)] for i, times in enumerate(histories)}
    result = predict(rows, today)
    assert result.note is None, result.note
    bg = result.model["bgnbd"]
    assert bg["time_unit"] == "weeks"
    assert abs(bg["r"] / TRUE_BGNBD["r"] - 1) < 0.3 and abs(bg["alpha"] / TRUE_BGNBD["alpha"] - 1) < 0.3
    assert set(result.model["gamma_gamma"]) == {"p", "q", "v"}
    assert len(result.customers) == 4000
    for figures in result.customers.values():
        assert set(figures) == {"p_alive", "expected_purchases_90d", "predicted_ltv"}
        assert all(math.isfinite(v) and v >= 0 for v in figures.values())
        assert figures["p_alive"] <= 1
    json.dumps(result.model, allow_nan=False)


def test_discounting_lowers_the_predicted_value():
    histories, _alive = simulate_events(2000, seed=9, extra_weeks=0)
    today = START + timedelta(days=round(WEEKS * 7))
    rows = {f"c{i}": [(d, 1000.0) for d in as_dates(t)] for i, t in enumerate(histories)}
    plain, discounted = predict(rows, today), predict(rows, today, discount_rate=0.2)
    total = sum(c["predicted_ltv"] for c in plain.customers.values())
    lower = sum(c["predicted_ltv"] for c in discounted.customers.values())
    assert 0.8 * total < lower < total


# --- one customer's numbers never remove everyone's prediction ----------------------------

# a degenerate fit (drop-out chance ~ a point mass: huge a and b) of the synthetic shop, seed 3, 80 customers
DEGENERATE = BgNbd(0.394243, 5.110598, 406.019568, 5709.757948)


def expected_by_integral(m: BgNbd, t: float, T: float, nodes: int = 20000) -> float:
    """E[purchases in t] for a customer with no repeat purchase, straight from the model's definition:
    the mean over p ~ Beta(a, b) of (1 - (1 + p t / (alpha + T))^-r) / p (p_alive is 1)."""
    p = stats.beta.ppf((np.arange(nodes) + 0.5) / nodes, m.a, m.b)
    return float(np.mean(-np.expm1(-m.r * np.log1p(p * t / (m.alpha + T))) / p))


def test_a_new_customer_under_a_degenerate_fit_gets_the_models_value():
    # no repeat purchase, 3 days old: the paper's 2F1 overflows here (hyp2f1(6114, 405, 6115, 0.904))
    x, t_x, T = np.array([0.0, 0.0, 4.0, 200.0]), np.array([0.0, 0.0, 30.0, 77.0]), np.array([3 / 7, 40.0, 52.0, 78.0])
    got = expected_purchases(DEGENERATE, 365 / 7, x, t_x, T)
    assert np.isfinite(got).all()
    assert got[0] == pytest.approx(expected_by_integral(DEGENERATE, 365 / 7, 3 / 7), rel=1e-3)
    assert got[1] == pytest.approx(expected_by_integral(DEGENERATE, 365 / 7, 40.0), rel=1e-3)


def _shop_rows(customers: int, seed: int, today: date) -> dict:
    shop = generate_shop(customers, seed, today)
    rows: dict[str, list] = {}
    for deal in shop.won_deals():
        rows.setdefault(str(deal.customer_id), []).append((deal.closed.date(), deal.amount))
    return rows


@pytest.mark.parametrize("customers", range(40, 201, 20))
def test_small_synthetic_shops_keep_the_model_and_every_customers_figures(customers):
    today = date(2026, 6, 15)
    result = predict(_shop_rows(customers, 3, today), today)
    assert result.note is None and result.model is not None, result.note
    for figures in result.customers.values():
        assert set(figures) == {"p_alive", "expected_purchases_90d", "predicted_ltv"}
        assert all(math.isfinite(v) and v >= 0 for v in figures.values())


def test_a_customer_without_finite_figures_gets_a_note_and_the_others_keep_theirs():
    # r = 1 exactly on top of a degenerate fit: every form of the 2F1 fails in scipy for x = 0, T = 3 days
    model = BgNbd(1.0, 5.11, 406.0, 5710.0)
    x, t_x, T = np.array([0.0, 0.0, 1.0, 3.0]), np.array([0.0, 0.0, 5.0, 20.0]), np.array([3 / 7, 40.0, 30.0, 40.0])
    out = customer_figures(model, GammaGamma(6.25, 3.74, 15.44), ["new", "b", "c", "d"], x, t_x, T,
                           x, np.full(4, 100.0))
    for cid in ("b", "c", "d"):
        assert set(out[cid]) == {"p_alive", "expected_purchases_90d", "predicted_ltv"}
        assert all(math.isfinite(v) for v in out[cid].values())
    if "prediction_note" in out["new"]:  # a scipy that can evaluate it gives the model's value instead
        assert set(out["new"]) == {"prediction_note"} and "no finite figures" in out["new"]["prediction_note"]
    else:
        assert out["new"]["expected_purchases_90d"] == pytest.approx(expected_by_integral(model, 90 / 7, 3 / 7),
                                                                     rel=1e-3)
    json.dumps(out, allow_nan=False)


# --- histories that cannot carry a fit: a clear message, never NaN ------------------------


def _days(n_customers: int, visits) -> dict:
    return {f"c{i}": [(d, 500.0) for d in visits(i)] for i in range(n_customers)}


def test_one_purchase_each_says_nobody_bought_again():
    result = predict(_days(200, lambda i: [START + timedelta(days=i)]), START + timedelta(days=400))
    assert result.model is None and result.customers == {}
    assert "repeat" in result.note and "nobody has bought on a second day" in result.note


def test_several_purchases_on_one_day_are_one_visit():
    result = predict(_days(200, lambda i: [START + timedelta(days=i)] * 3), START + timedelta(days=400))
    assert result.model is None and "repeat" in result.note


def test_five_customers_are_too_few():
    result = predict(_days(5, lambda i: [START, START + timedelta(days=30 + i)]), START + timedelta(days=100))
    assert result.model is None and "too few customers" in result.note and "5" in result.note


def test_first_purchases_today_are_not_history():
    today = START
    result = predict(_days(100, lambda i: [today]), today)
    assert result.model is None and "too few customers" in result.note


def test_fit_functions_raise_the_readable_reason():
    with pytest.raises(ModelUnavailable, match="too few repeat buyers"):
        fit_bgnbd(np.zeros(50), np.zeros(50), np.full(50, 10.0))
    with pytest.raises(ModelUnavailable, match="too few repeat purchases with a known amount"):
        fit_gamma_gamma([1, 2], [100.0, 50.0])
    with pytest.raises(ValueError, match="t_x"):
        fit_bgnbd([1.0], [5.0], [2.0])


# --- through the engine: analyze and sync --dry-run get the same keys ----------------------


def _customer(cid: str, dates: list[date], amount: float = 1000.0) -> Customer:
    return Customer(id=cid, purchases=tuple(Purchase(f"{cid}-{k}", cid, d, amount) for k, d in enumerate(dates)))


def test_evaluation_carries_the_model_and_per_customer_predictions():
    histories, _alive = simulate_events(600, seed=4, extra_weeks=0)
    today = START + timedelta(days=round(WEEKS * 7))
    customers = [_customer(f"c{i}", as_dates(t)) for i, t in enumerate(histories)]
    out = evaluate(customers, today, load_playbook(lang="en")).to_json()
    assert set(out["model"]) >= {"bgnbd", "gamma_gamma"}
    assert set(out["model"]["bgnbd"]) == {"r", "alpha", "a", "b", "time_unit"}
    assert set(out["model"]["gamma_gamma"]) == {"p", "q", "v"}
    assert "model_note" not in out["metrics"]
    for c in out["customers"]:
        assert {"p_alive", "expected_purchases_90d", "predicted_ltv"} <= set(c)
    json.dumps(out, allow_nan=False)


def test_short_history_leaves_the_keys_out_and_says_why():
    customers = [_customer(f"c{i}", [date(2026, 1, 1)]) for i in range(5)]
    ev = evaluate(customers, date(2026, 3, 1), load_playbook(lang="en"))
    out = ev.to_json()
    assert "model" not in out and ev.model is None
    assert "too few customers" in out["metrics"]["model_note"]
    assert not any("p_alive" in c for c in out["customers"])
    assert "model_note" not in evaluate(customers, date(2026, 3, 1), load_playbook(lang="en"),
                                        predict=False).metrics


def _polished(nll, fitted: np.ndarray) -> np.ndarray:
    """The maximum found again from the fitted point by a derivative-free search run to 1e-12."""
    from scipy.optimize import minimize

    res = minimize(nll, np.log(fitted), method="Nelder-Mead",
                   options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000, "maxfev": 20000})
    return np.exp(res.x)


@pytest.mark.parametrize("seed", [4, 5])
def test_both_fits_stop_at_the_likelihoods_maximum_to_1e_6(seed):
    """Another tool fitting the same data (lifetimes) must find the same parameters to 1e-4: both
    have to stop at the maximum itself, not where the likelihood merely looks flat."""
    from playbooks.likelihood import bgnbd_ll, gg_ll

    x, t_x, T = simulate_summary(20000, seed)
    bg = fit_bgnbd(x, t_x, T).params
    fitted = np.array([bg.r, bg.alpha, bg.a, bg.b])
    best = _polished(lambda lp: -float(np.sum(bgnbd_ll(lp, x, t_x, T))) / len(x), fitted)
    assert np.max(np.abs(fitted - best) / best) < 1e-6
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 12, 3000).astype(float)
    nu = rng.gamma(TRUE_GG["q"], 1 / TRUE_GG["v"], len(n))
    m = rng.gamma(TRUE_GG["p"] * n, 1 / (nu * n))
    gg = fit_gamma_gamma(n, m).params
    fitted = np.array([gg.p, gg.q, gg.v])
    best = _polished(lambda lp: -float(np.sum(gg_ll(lp, n, m))) / len(n), fitted)
    assert np.max(np.abs(fitted - best) / best) < 1e-6
