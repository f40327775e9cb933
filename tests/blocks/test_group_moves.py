"""Group moves leave the target invariant: a scale move's chain on one orbit has its law.

The compiled sweep's moves with nothing observed (the chain samples the prior) are tested in
tests/engine/steps/test_factor_scale.py and tests/spec/test_spec_cfa.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.group import group_scale


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
