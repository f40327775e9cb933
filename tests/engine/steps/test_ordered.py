"""The ordered variables' step: thresholds and latent responses (probit)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize, stats

from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.spec import dgm, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec.info import PRIOR_DEFAULTS
from simstudy.spec.ir import from_syntax

FAMILIES = {"residual": "half_normal", "covariance": "half_normal"}


def _fit(spec, data, draws, seed, priors=PRIOR_DEFAULTS):
    est = kinds.build(spec, sweep.layout(spec), FAMILIES, {"bayes": {"kind": "gibbs"}})["bayes"]
    settings = SamplerSettings(name="gibbs", chains=2, warmup=300, draws=draws)
    return gibbs.prepare(est, data, settings, priors)(jax.random.key(seed), data).draws


def _data(**columns):
    n = len(next(iter(columns.values()))[0])
    out = {dgm.ROW_REAL: jnp.ones(n, bool)}
    for k, (v, seen) in columns.items():
        out[k], out[dgm.observed_key(k)] = jnp.asarray(v, dtype=float), jnp.asarray(seen)
    return out


def test_with_nothing_observed_the_thresholds_sample_their_ordered_normal_prior():
    """No u observed: (t1, t2) are two N(0, sd^2) draws sorted, the slope N(0, sd^2).

    Checks the threshold step's prior and the Jacobian of its (t1, log gap) coordinates: a
    missing Jacobian or an unsorted prior moves the gap's distribution away.
    """
    spec = from_syntax("u ~ x\n", ordered={"u": 3})
    n = 6
    data = _data(u=(np.zeros(n), np.zeros(n, bool)), x=(np.linspace(-1, 1, n), np.ones(n, bool)))
    priors = {**PRIOR_DEFAULTS, "coef_sd": 1.0}
    draws = _fit(spec, data, 4000, 1, priors)
    t1, t2 = (np.asarray(draws[k]).ravel() for k in ("u|t1", "u|t2"))
    assert (t2 > t1).all()
    ref = np.sort(np.random.default_rng(0).normal(size=(100_000, 2)), axis=1)
    thin = slice(None, None, 8)  # the chain's draws are correlated; KS wants near-independent
    assert stats.ks_2samp(t1[thin], ref[:, 0]).pvalue > 1e-3
    assert stats.ks_2samp((t2 - t1)[thin], ref[:, 1] - ref[:, 0]).pvalue > 1e-3
    slope = np.asarray(draws["u~x"]).ravel()[thin]
    assert stats.kstest(slope, "norm").pvalue > 1e-3


def _probit_mle(u, x, k):
    """The ordinal probit's maximum likelihood (slope, thresholds), by scipy."""

    def nll(theta):
        b, cuts = theta[0], np.cumsum(np.r_[theta[1], np.exp(theta[2:])])
        edges = np.r_[-np.inf, cuts, np.inf]
        p = stats.norm.cdf(edges[u + 1] - b * x) - stats.norm.cdf(edges[u] - b * x)
        return -np.log(np.maximum(p, 1e-300)).sum()

    fit = optimize.minimize(nll, np.r_[0.0, -0.5, np.zeros(k - 2)], method="BFGS")
    return fit.x[0], np.cumsum(np.r_[fit.x[1], np.exp(fit.x[2:])])


def test_a_fit_agrees_with_the_probit_maximum_likelihood_on_the_same_data():
    spec = from_syntax("u ~ x\n", ordered={"u": 3})
    setting = {"N": 600, "u~x": 0.6, "u|t1": -0.4, "u|t2": 0.8}
    data = dgm.simulate(spec, jax.random.key(5), setting)
    u, x = np.asarray(data["u"]).astype(int), np.asarray(data["x"])
    assert set(np.unique(u)) == {0, 1, 2}
    slope, cuts = _probit_mle(u, x, 3)
    draws = _fit(spec, data, 1000, 2)
    for name, mle in (("u~x", slope), ("u|t1", cuts[0]), ("u|t2", cuts[1])):
        v = np.asarray(draws[name])
        # N = 600: posterior mean and MLE differ by ~1/sqrt(N) of an SD, plus Monte Carlo error
        assert abs(v.mean() - mle) < 0.3 * v.std(), (name, v.mean(), mle, v.std())


def test_the_simulator_cuts_the_latent_response_at_the_thresholds():
    spec = from_syntax("u ~ x\n", ordered={"u": 3})
    setting = {"N": 20_000, "u~x": 0.0, "u|t1": -0.5, "u|t2": 1.0}
    u = np.asarray(dgm.simulate(spec, jax.random.key(0), setting)["u"])
    expected = np.diff(stats.norm.cdf([-np.inf, -0.5, 1.0, np.inf]))
    share = np.bincount(u.astype(int), minlength=3) / u.size
    np.testing.assert_allclose(share, expected, atol=0.012)  # ~3.5 binomial SEs


def test_with_an_intercept_the_first_threshold_is_0_and_the_rest_sample_their_prior():
    """``u ~ 1 + x``: the intercept free, u|t1 = 0; nothing observed: u|t2 half-normal."""
    spec = from_syntax("u ~ 1 + x\n", ordered={"u": 3})
    assert spec.estimands() == ("u~1", "u~x", "u|t2")
    n = 6
    data = _data(u=(np.zeros(n), np.zeros(n, bool)), x=(np.linspace(-1, 1, n), np.ones(n, bool)))
    draws = _fit(spec, data, 4000, 3, {**PRIOR_DEFAULTS, "coef_sd": 1.0})
    thin = slice(None, None, 8)
    t2 = np.asarray(draws["u|t2"]).ravel()[thin]
    assert stats.kstest(t2, "halfnorm").pvalue > 1e-3
    assert stats.kstest(np.asarray(draws["u~1"]).ravel()[thin], "norm").pvalue > 1e-3


def test_a_binary_fit_with_an_intercept_agrees_with_the_probit_maximum_likelihood():
    spec = from_syntax("u ~ 1 + x\n", ordered={"u": 2})
    data = dgm.simulate(spec, jax.random.key(7), {"N": 600, "u~1": -0.3, "u~x": 0.7})
    u, x = np.asarray(data["u"]).astype(int), np.asarray(data["x"])

    def nll(b):
        return -stats.norm.logcdf((2 * u - 1) * (b[0] + b[1] * x)).sum()

    mle = optimize.minimize(nll, np.zeros(2), method="BFGS").x
    draws = _fit(spec, data, 1000, 4)
    for name, value in zip(("u~1", "u~x"), mle, strict=True):
        v = np.asarray(draws[name])
        assert abs(v.mean() - value) < 0.3 * v.std(), (name, v.mean(), value, v.std())


def test_a_logit_fit_agrees_with_the_ordinal_logit_maximum_likelihood():
    """Pólya–Gamma precisions and logistic latent responses give the cumulative logit."""
    spec = from_syntax("u ~ x\n", ordered={"u": 3}, link="logit")
    setting = {"N": 600, "u~x": 1.0, "u|t1": -0.6, "u|t2": 1.2}
    data = dgm.simulate(spec, jax.random.key(8), setting)
    u, x = np.asarray(data["u"]).astype(int), np.asarray(data["x"])

    def nll(theta):
        cuts = np.r_[-np.inf, theta[1], theta[1] + np.exp(theta[2]), np.inf]
        p = stats.logistic.cdf(cuts[u + 1] - theta[0] * x) - stats.logistic.cdf(
            cuts[u] - theta[0] * x
        )
        return -np.log(np.maximum(p, 1e-300)).sum()

    fit = optimize.minimize(nll, np.array([0.0, -0.5, 0.0]), method="BFGS").x
    mle = {"u~x": fit[0], "u|t1": fit[1], "u|t2": fit[1] + np.exp(fit[2])}
    draws = _fit(spec, data, 1000, 5)
    for name, value in mle.items():
        v = np.asarray(draws[name])
        assert abs(v.mean() - value) < 0.3 * v.std(), (name, v.mean(), value, v.std())


def test_a_binary_glmm_with_nothing_observed_samples_its_prior():
    """The scale move with random effects: coefficients N(0, 1), the SD half-normal(1).

    A wrong covariance correction or Jacobian in the move shifts the SD's law.
    """
    spec = from_syntax("u ~ 1 + x + (1 | g)\n", ordered={"u": 2})
    n, j = 24, 6
    data = _data(u=(np.zeros(n), np.zeros(n, bool)), x=(np.linspace(-1, 1, n), np.ones(n, bool)))
    data["g"] = jnp.repeat(jnp.arange(j), n // j)
    data[dgm.cluster_key("g")] = jnp.ones(j, bool)
    priors = {**PRIOR_DEFAULTS, "coef_sd": 1.0, "cov_scale": 1.0}
    draws = _fit(spec, data, 6000, 6, priors)
    thin = slice(None, None, 10)
    sd = np.sqrt(np.asarray(draws["1|g~~1|g"]).ravel()[thin])
    assert stats.kstest(sd, "halfnorm").pvalue > 1e-3
    for name in ("u~1", "u~x"):
        assert stats.kstest(np.asarray(draws[name]).ravel()[thin], "norm").pvalue > 1e-3
