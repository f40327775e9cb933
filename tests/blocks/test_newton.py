"""Newton–Metropolis cluster effects: the chain samples the exact cluster posterior."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from simstudy.blocks import ordinal
from simstudy.blocks.newton import (
    newton_cluster_step,
    newton_scalar_step,
    row_derivatives,
    scalar_derivatives,
)


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_row_derivatives_match_finite_differences(link):
    lo = jnp.array([-jnp.inf, 0.3, -0.5])
    hi = jnp.array([0.2, jnp.inf, 1.0])

    def loglik(eta):
        return ordinal.log_interval(link, lo - eta, hi - eta)

    eta = jnp.array([0.4, -1.0, 0.1])
    ll, d1, w = row_derivatives(loglik, eta)
    h = 1e-2
    up, down = loglik(eta + h), loglik(eta - h)
    np.testing.assert_allclose(d1, (up - down) / (2 * h), rtol=2e-2, atol=1e-3)
    np.testing.assert_allclose(w, -(up - 2 * ll + down) / h**2, rtol=5e-2, atol=2e-3)
    assert (w > 0).all()  # the interval probability is log-concave in eta


def test_chain_samples_cluster_posterior():
    """Two clusters, a random intercept and slope each; probit rows; the exact posterior.

    The chain of Newton–Metropolis steps alone must reproduce the posterior moments of each
    cluster's effects, computed on a grid (a wrong acceptance ratio or proposal density
    shifts them by several MCSE).
    """
    rng = np.random.default_rng(0)
    n = 12
    group = jnp.asarray(np.repeat([0, 1], n // 2))
    x = jnp.asarray(rng.normal(size=n).astype(np.float32))
    y = jnp.asarray((rng.random(n) < 0.6).astype(np.float32))
    offset = jnp.full(n, 0.2)
    cols = [jnp.ones(n), x]
    cov = jnp.array([[0.8, 0.2], [0.2, 0.5]])
    prec = jnp.linalg.inv(cov)

    def row_terms(eta):  # the written-out terms the sampler uses
        return ordinal.category_terms("probit", jnp.zeros(1), y, eta)

    def body(b, key):
        b = newton_cluster_step(key, b, prec, offset, cols, group, jnp.ones(2, bool), row_terms)
        return b, b

    _, draws = jax.jit(lambda k: jax.lax.scan(body, jnp.zeros((2, 2)), jax.random.split(k, 20000)))(
        jax.random.key(1)
    )
    draws = np.asarray(draws)[1000:]
    grid = np.linspace(-4, 4, 161)
    b0, b1 = np.meshgrid(grid, grid, indexing="ij")
    prior = stats.multivariate_normal(np.zeros(2), np.asarray(cov)).logpdf(np.stack([b0, b1], -1))
    xs, ys, gs = np.asarray(x), np.asarray(y), np.asarray(group)
    for c in range(2):
        logp = prior.copy()
        for xi, yi in zip(xs[gs == c], ys[gs == c], strict=True):
            eta = 0.2 + b0 + b1 * xi
            logp += stats.norm.logcdf(eta if yi else -eta)
        p = np.exp(logp - logp.max())
        p /= p.sum()
        for k, b in enumerate((b0, b1)):
            mean = (p * b).sum()
            sd = np.sqrt((p * (b - mean) ** 2).sum())
            chain = draws[:, c, k]
            mcse = chain.std() / np.sqrt(len(chain) / 10)  # thinned-ESS bound: accepts ~80%
            assert abs(chain.mean() - mean) < 4 * mcse + 0.01, (c, k, chain.mean(), mean)
            assert abs(chain.std() - sd) < 0.05 * sd, (c, k, chain.std(), sd)


def test_scalar_steps_sample_their_target():
    """``log c`` of a Gamma(3, 2) variable, moved from where it stands by each step.

    Without the damping the chain sticks in the tails (variance 8% short).
    """
    a, b = 3.0, 2.0

    def body(x, key):
        log_target = scalar_derivatives(lambda t: a * (x + t) - b * jnp.exp(x + t))
        x = x + newton_scalar_step(key, log_target)
        return x, x

    _, draws = jax.jit(
        lambda k: jax.lax.scan(body, jnp.asarray(2.0), jax.random.split(k, 100_000))
    )(jax.random.key(3))
    draws = np.asarray(draws)[500:]
    mean, var = special.digamma(a) - np.log(b), special.polygamma(1, a)
    assert abs(draws.mean() - mean) < 0.02
    assert abs(draws.var() / var - 1) < 0.04
