"""The ordinal-indicator building blocks against SciPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks import ordinal as ordm
from simstudy.blocks.newton import row_derivatives


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_log_interval_matches_scipy_in_both_tails(link):
    dist = stats.norm if link == "probit" else stats.logistic
    lo = np.array([-np.inf, -1.0, 3.0, 9.0, -12.0])
    hi = np.array([-8.0, 0.5, 4.0, np.inf, -11.0])
    got = np.asarray(ordm.log_interval(link, jnp.asarray(lo), jnp.asarray(hi)))
    want = [
        dist.logsf(a) + np.log1p(-np.exp(dist.logsf(b) - dist.logsf(a)))
        if a > 0
        else dist.logcdf(b) + np.log1p(-np.exp(dist.logcdf(a) - dist.logcdf(b)))
        for a, b in zip(lo, hi, strict=True)
    ]
    assert np.allclose(got, want, rtol=1e-4)


def test_thresholds_round_trip_and_unused_slots():
    tau = jnp.array([[-1.0, 0.2, 1.5], [0.3, 0.0, 0.0]])
    mask = jnp.array([[True, True, True], [True, False, False]])
    back = ordm.thresholds(ordm.unconstrain(tau), mask)
    assert np.allclose(np.asarray(back)[0], [-1.0, 0.2, 1.5], atol=1e-6)
    assert np.asarray(back)[1, 0] == pytest.approx(0.3) and np.isinf(np.asarray(back)[1, 1:]).all()


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize(("lo", "hi"), [(-np.inf, -7.0), (0.5, 1.0), (6.0, np.inf)])
def test_latent_responses_follow_the_truncated_law(link, lo, hi):
    n = 20000
    dist = stats.norm if link == "probit" else stats.logistic
    tau = jnp.array([[lo if np.isfinite(lo) else hi]])  # one threshold: categories 0 | 1
    y = jnp.full((n, 1), 0.0 if np.isinf(lo) else 1.0)
    if np.isfinite(lo) and np.isfinite(hi):  # interval (lo, hi]: category 1 of two cuts
        tau = jnp.array([[lo, hi]])
    draws = np.asarray(ordm.latent_responses(jax.random.key(0), link, y, tau, jnp.zeros((n, 1))))
    assert np.isfinite(draws).all() and (draws >= lo).all() and (draws <= hi).all()
    a, b = dist.cdf(lo), dist.cdf(hi)
    if np.isfinite(lo) and lo > 0:  # upper tail: compare through the survival function
        cdf = (dist.sf(lo) - dist.sf(np.sort(draws[:, 0]))) / (dist.sf(lo) - dist.sf(hi))
    else:
        cdf = (dist.cdf(np.sort(draws[:, 0])) - a) / (b - a)
    ks = np.abs(cdf - (np.arange(n) + 0.5) / n).max()
    assert ks < 1.63 / np.sqrt(n) + 1e-3  # KS 1% critical value


def test_logit_correction_is_a_density_ratio():
    r = np.linspace(-30, 30, 300001)
    log_normal = stats.norm.logpdf(r, scale=np.sqrt(np.pi**2 / 3))
    corrected = np.exp(log_normal + np.asarray(ordm.logit_correction(jnp.asarray(r)), float))
    assert np.trapezoid(corrected, r) == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(corrected, stats.logistic.pdf(r), atol=1e-6)


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_log_interval_has_finite_slopes_at_the_open_categories(link):
    """The first and last categories' infinite bounds: a finite value and derivative (HMC)."""
    import jax
    import jax.numpy as jnp

    from simstudy.blocks.ordinal import log_interval

    def total(mean):
        lo = jnp.array([-jnp.inf, -0.5, 0.7])
        hi = jnp.array([-0.5, 0.7, jnp.inf])
        return log_interval(link, lo - mean, hi - mean).sum()

    value, slope = jax.value_and_grad(total)(0.3)
    assert np.isfinite(float(value)) and np.isfinite(float(slope))


def test_the_threshold_step_keeps_its_ordered_normal_prior_when_nothing_is_observed():
    """Geweke: thresholds from their prior (3 sorted N(0, 1) draws), one Metropolis step with
    no observed response, still from the prior. Fails without the log gaps' Jacobian."""
    import jax
    import jax.numpy as jnp

    n, d = 20_000, 3
    keys = jax.random.split(jax.random.key(4), n + 1)
    tau = jnp.sort(jax.random.normal(keys[0], (n, 1, d)), axis=-1)
    mask = jnp.ones((1, d), bool)
    y, weight, mean = jnp.zeros((5, 1)), jnp.zeros((5, 1)), jnp.zeros((5, 1))

    def step(key, t):
        start = ordm.threshold_start(ordm.unconstrain(t))
        start = start._replace(cov=start.cov * 50)  # proposals of about the prior's width
        out = ordm.threshold_step(key, start, "probit", y, weight, mean, mask, 1.0, False)
        return ordm.thresholds(out.u, mask)

    moved = np.asarray(jax.jit(jax.vmap(step))(keys[1:], tau))[:, 0]
    before = np.asarray(tau)[:, 0]
    assert (np.abs(moved - before).max(axis=1) > 0).mean() > 0.2  # the step moves
    for k in range(d):
        assert stats.ks_2samp(moved[:, k], before[:, k]).pvalue > 1e-3, k
    gaps = np.diff(moved, axis=1), np.diff(before, axis=1)
    assert stats.ks_2samp(gaps[0][:, 0], gaps[1][:, 0]).pvalue > 1e-3


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("k", [2, 4])
def test_category_log_prob_is_the_interval_probability(link, k):
    rng = np.random.default_rng(k)
    tau = jnp.sort(jnp.asarray(rng.normal(size=k - 1).astype(np.float32)))
    y = jnp.asarray(rng.integers(0, k, size=50))
    eta = jnp.asarray(rng.normal(scale=3.0, size=50).astype(np.float32))
    cdf = stats.norm.cdf if link == "probit" else stats.logistic.cdf
    cuts = np.concatenate([[-np.inf], np.asarray(tau), [np.inf]])
    yy, ee = np.asarray(y), np.asarray(eta)
    want = np.log(cdf(cuts[yy + 1] - ee) - cdf(cuts[yy] - ee))
    got = ordm.category_log_prob(link, tau, y, eta)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("k", [2, 4])
def test_category_terms_are_the_log_probability_and_its_derivatives(link, k):
    """Written out, as forward-mode differentiation of :func:`category_log_prob` gives them.

    Linear predictors far into both tails included (SD 4 around thresholds near 0).
    """
    rng = np.random.default_rng(10 + k)
    tau = jnp.sort(jnp.asarray(rng.normal(size=k - 1).astype(np.float32)))
    y = jnp.asarray(rng.integers(0, k, size=400))
    eta = jnp.asarray(rng.normal(scale=4.0, size=400).astype(np.float32))
    got = ordm.category_terms(link, tau, y, eta)
    want = row_derivatives(lambda e: ordm.category_log_prob(link, tau, y, e), eta)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)
    assert (got[2] >= 0).all()


def test_items_first_layout_gives_the_same_cuts_and_threshold_step():
    """Items by rows (``items_first``): the cuts are the transposed ones (a code -1: the whole
    line), and the thresholds' step, with the same key, makes the same move."""
    rng = np.random.default_rng(3)
    n, p = 40, 3
    y = jnp.asarray(rng.integers(0, 4, (n, p)), dtype=float)
    mask = jnp.asarray(np.array([[True] * 3, [True] * 3, [True, True, False]]))
    tau = ordm.thresholds(jnp.asarray(rng.normal(size=(p, 3)) * 0.3), mask)
    y = jnp.where(mask[jnp.arange(p), 2][None, :] | (y < 3), y, 2.0)  # item 3: codes 0..2
    lo, hi = ordm.bounds(tau, y)
    lo_t, hi_t = ordm.bounds(tau, y.T, items_first=True)
    np.testing.assert_array_equal(np.asarray(lo_t), np.asarray(lo).T)
    np.testing.assert_array_equal(np.asarray(hi_t), np.asarray(hi).T)
    whole = ordm.bounds(tau, jnp.full((p, 2), -1.0), items_first=True)
    assert np.isneginf(np.asarray(whole[0])).all() and np.isposinf(np.asarray(whole[1])).all()
    weight = jnp.asarray(rng.random((n, p)) < 0.8, dtype=float)
    mean = jnp.asarray(rng.normal(size=(n, p)))
    start = ordm.threshold_start(ordm.unconstrain(jnp.where(mask, tau, 0.0)))
    args = (start, "probit")
    rows = ordm.threshold_step(jax.random.key(1), *args, y, weight, mean, mask, 2.0, True)
    items = ordm.threshold_step(
        jax.random.key(1), *args, y.T, weight.T, mean.T, mask, 2.0, True, items_first=True
    )
    for a, b in zip(rows, items, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
