"""``blocks.group.group_scale``: the scale move's draw on one orbit has the target law."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.group import group_scale


@pytest.mark.parametrize(("b_coef", "d_coef", "big_e"), [(0.5, 1.2, 1.0), (1.0, -0.8, 0.5)])
def test_the_inverse_term_of_a_prior_mean_is_sampled_exactly(b_coef, d_coef, big_e):
    """``x -> g x`` with a ``D / x`` term (a normal prior with a non-zero mean on something
    scaled by ``1 / g``, such as a free loading): at ``x`` the move's ``d`` is ``D / x`` and the
    chain must sample ``p(x) ~ exp(-A x^2 / 2 + B x - C / x^2 + D / x) x^E``.
    """
    big_a, big_c = 2.0, 0.3

    def step(x, key):
        g = group_scale(
            key, big_a * x**2, b_coef * x, big_c / x**2, jnp.asarray(big_e), d=d_coef / x
        )
        return x * g, x * g

    _, xs = jax.lax.scan(step, jnp.asarray(1.0), jax.random.split(jax.random.key(7), 40_000))
    xs = np.asarray(xs)[1000::20]
    grid = np.linspace(1e-4, 6.0, 20_001)
    log_p = -big_a * grid**2 / 2 + b_coef * grid - big_c / grid**2 + d_coef / grid
    log_p += big_e * np.log(grid)
    cdf = np.cumsum(np.exp(log_p - log_p.max()))
    cdf /= cdf[-1]
    assert stats.kstest(xs, lambda v: np.interp(v, grid, cdf)).pvalue > 0.001
