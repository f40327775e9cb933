"""Pólya–Gamma draws: their moments, and the logistic as their normal scale mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.polya_gamma import TERMS, pg_draw


@pytest.mark.parametrize("c", [0.0, 1.0, 4.0])
def test_the_draws_have_the_mean_and_variance_of_pg_2_c(c):
    n = 40_000
    w = np.asarray(pg_draw(jax.random.uniform(jax.random.key(1), (2, TERMS, n)), jnp.full(n, c)))
    mean = np.tanh(c / 2) / c if c else 0.5
    var = (np.sinh(c) - c) / (2 * c**3 * np.cosh(c / 2) ** 2) if c else 1 / 12
    assert abs(w.mean() - mean) < 4 * np.sqrt(var / n)
    assert w.var() == pytest.approx(var, rel=0.05)  # ~4 SEs of a variance at this n


def test_alternating_pg_2_r_precisions_and_normal_residuals_gives_the_logistic():
    """``f(r) = 2^-2 int exp(-w r^2 / 2) PG(w | 2, 0) dw``: the identity the logit link uses.

    So ``w | r ~ PG(2, r)`` and ``r | w ~ N(0, 1 / w)``: a Gibbs chain on (r, w) whose r is
    standard logistic. Many chains side by side, from r = 0.
    """
    n, sweeps = 20_000, 15
    r = jnp.zeros(n)
    for key in jax.random.split(jax.random.key(2), sweeps):
        k_u, k_z = jax.random.split(key)
        w = pg_draw(jax.random.uniform(k_u, (2, TERMS, n)), r)
        r = jax.random.normal(k_z, (n,)) / jnp.sqrt(w)
    assert stats.kstest(np.asarray(r), "logistic").pvalue > 1e-3
