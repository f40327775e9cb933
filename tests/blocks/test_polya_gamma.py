"""Pólya–Gamma draws: their moments, and the logistic as their normal scale mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.polya_gamma import TERMS, pg_draw


def test_the_draws_have_the_mean_and_variance_of_pg_2_c():
    n = 40_000
    cs = np.array([0.0, 1.0, 4.0])
    c = jnp.repeat(jnp.asarray(cs)[:, None], n, axis=1)
    w = np.asarray(pg_draw(jax.random.uniform(jax.random.key(1), (2, TERMS, 3, n)), c))
    for row, value in enumerate(cs):
        mean = np.tanh(value / 2) / value if value else 0.5
        var = (
            (np.sinh(value) - value) / (2 * value**3 * np.cosh(value / 2) ** 2) if value else 1 / 12
        )
        assert abs(w[row].mean() - mean) < 4 * np.sqrt(var / n), value
        assert w[row].var() == pytest.approx(var, rel=0.05), value  # ~4 SEs of a variance


@pytest.mark.parametrize("c", [0.0, 1.0, 4.0])
def test_the_truncated_series_loses_a_negligible_share_of_the_variance(c):
    """The terms past :data:`TERMS`, replaced by their mean, carry under 3e-4 of the variance.

    ``Var PG(2, c) = sum_k 2 / (4 pi^4 ((k - 1/2)^2 + c^2 / (4 pi^2))^2)``: the kept terms'
    share, against the closed form.
    """
    k = np.arange(1, TERMS + 1)
    kept = (2 / (4 * np.pi**4 * ((k - 0.5) ** 2 + c**2 / (4 * np.pi**2)) ** 2)).sum()
    total = (np.sinh(c) - c) / (2 * c**3 * np.cosh(c / 2) ** 2) if c else 1 / 12
    assert 0 < 1 - kept / total < 3e-4


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
