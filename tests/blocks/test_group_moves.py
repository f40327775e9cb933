"""Group moves leave the posterior invariant: with no data observed, the chain samples the prior.

Every conditional update and group move then runs on its prior alone, so a move that is not
exactly invariant (e.g. a Metropolis proposal that is not equivariant under the group) shows
up as a wrong marginal. KS tests on thinned draws, against the priors' own distributions.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.group import group_scale
from simstudy.config import SamplerSettings
from simstudy.engine import gibbs
from simstudy.models import cfa

SETTINGS = SamplerSettings(name="gibbs", chains=2, warmup=500, draws=20_000)
THIN = 50
VAR = {"var_shape": 2.0, "var_scale": 0.5}


def _prior_draws(estimator, data, priors, fix_init):
    """Draws of ``estimator`` with nothing observed, from a start ``fix_init`` makes proper."""

    def init(key, data, priors):
        start = estimator.init(key, dict(data, observed=jnp.ones_like(data["observed"])), priors)
        return fix_init(start)

    hidden = dict(data, observed=jnp.zeros_like(data["observed"]))
    est = dataclasses.replace(estimator, init=init)
    draws = gibbs.prepare(est, hidden, SETTINGS, priors)(jax.random.key(1), hidden).draws
    return {k: np.asarray(v)[:, ::THIN].ravel() for k, v in draws.items()}


def _ks(draws, cdf):
    return stats.kstest(draws, cdf).pvalue


# slow tier: each block keeps its prior in tests/blocks/test_blocks_geweke.py by default
@pytest.mark.slow
@pytest.mark.parametrize("factor_cov", ["lkj", "inverse_wishart"])
def test_cfa_sampler_without_data_samples_its_prior(factor_cov):
    structure = cfa.check_structure(None)
    setting = {"N": 40, "loading": 0.7, "factor_corr": 0.3, "mar_strength": 0.7}
    setting |= {"missing_rate": 0.0, "mechanism": "MCAR", "structure": structure}
    data = cfa.simulate(jax.random.key(0), setting)
    priors = {"coef_sd": 1.0, **VAR, "factor_cov": factor_cov, "lkj_eta": 1.0}
    draws = _prior_draws(
        cfa.make_estimators(structure)["bayes"],
        data,
        priors,
        lambda s: s._replace(theta=jnp.full_like(s.theta, 0.5), phi=0.5 * jnp.eye(3)),
    )
    if factor_cov == "lkj":  # variances IG(2, 0.5); one correlation: (r + 1) / 2 ~ Beta(1.5, 1.5)
        variance, corr = stats.invgamma(2.0, scale=0.5), stats.beta(1.5, 1.5)
    else:  # InverseWishart(k + 2, 0.5 I): variances IG((k + 2 - k + 1) / 2, 0.5 / 2)
        variance, corr = stats.invgamma(1.5, scale=0.25), None
    p = [_ks(draws[f"{f}~~{f}"], variance.cdf) for f in ("visual", "textual", "speed")]
    p.append(_ks(draws["visual=~x2"], stats.norm(0, 1).cdf))
    p.append(_ks(draws["x5~~x5"], stats.invgamma(2.0, scale=0.5).cdf))
    if corr is not None:
        r = draws["visual~~textual"] / np.sqrt(draws["visual~~visual"] * draws["textual~~textual"])
        p.append(_ks((r + 1) / 2, corr.cdf))
    assert min(p) > 0.001, p


@pytest.mark.parametrize(("b_coef", "big_e"), [(1.5, 1.5), (-1.0, -3.0)])
def test_group_scale_chain_on_one_orbit_has_the_target_law(b_coef, big_e):
    """A scalar ``x`` moved by ``x -> g x``: the coefficients at ``x`` are ``(A x^2, B x,
    C / x^2, E)`` and the chain must sample ``p(x) ~ exp(-A x^2 / 2 + B x - C / x^2) x^E``,
    also when ``B < 0`` and ``E < 0`` (where a non-equivariant fallback proposal biased it).
    """
    big_a, big_c = 2.0, 0.3

    def step(x, key):
        g = group_scale(key, big_a * x**2, b_coef * x, big_c / x**2, jnp.asarray(big_e))
        return x * g, x * g

    _, xs = jax.lax.scan(step, jnp.asarray(1.0), jax.random.split(jax.random.key(4), 40_000))
    xs = np.asarray(xs)[1000::20]
    grid = np.linspace(1e-4, 6.0, 20_001)
    log_p = -big_a * grid**2 / 2 + b_coef * grid - big_c / grid**2 + big_e * np.log(grid)
    cdf = np.cumsum(np.exp(log_p - log_p.max()))
    cdf /= cdf[-1]
    assert stats.kstest(xs, lambda v: np.interp(v, grid, cdf)).pvalue > 0.001
