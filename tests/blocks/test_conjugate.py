"""The conjugate draws that Gibbs samplers share, against their exact laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from simstudy.blocks.conjugate import normal_from_precision, overrelaxed, unit_gamma


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5, 251.5])
@pytest.mark.parametrize("tries", [1, 4])
def test_unit_gamma_has_the_gamma_law(alpha, tries):
    # tries=1 at alpha near 1 sends about 5 % of the variates through the loop that draws
    # further candidates, so the KS test also checks that path.
    draws = np.asarray(unit_gamma(jax.random.key(7), jnp.full(20_000, alpha), tries))
    assert np.isfinite(draws).all() and (draws > 0).all()
    assert stats.kstest(draws, stats.gamma(alpha).cdf).pvalue > 0.001


def test_unit_gamma_from_given_noise_is_deterministic_and_elementwise():
    alpha = jnp.array([0.5, 3.0, 40.0])
    keys = jax.random.split(jax.random.key(3), 3)
    noise = (
        jax.random.normal(keys[0], (4, 3)),
        jax.random.uniform(keys[1], (4, 3)),
        jax.random.uniform(keys[2], (3,)),
    )
    a = unit_gamma(jax.random.key(0), alpha, 4, noise)
    b = unit_gamma(jax.random.key(1), alpha, 4, noise)  # the key only feeds the rare loop
    np.testing.assert_array_equal(a, b)
    # a variate depends on its own column of noise only
    c = unit_gamma(jax.random.key(0), alpha[1:], 4, tuple(x[..., 1:] for x in noise))
    np.testing.assert_allclose(a[1:], c, rtol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_normal_from_precision_is_mean_plus_inverse_cholesky_noise(k):
    """Small systems (written out) and larger ones (LAPACK) give P^-1 r + L^-T z."""
    rng = np.random.default_rng(k)
    a = rng.normal(size=(50, k, k))
    precision = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(k)
    rhs, z = rng.normal(size=(50, k)), rng.normal(size=(50, k))
    drawn = np.asarray(
        normal_from_precision(None, jnp.asarray(precision), jnp.asarray(rhs), jnp.asarray(z))
    )
    chol = np.linalg.cholesky(precision)
    mean = np.linalg.solve(precision, rhs[..., None])[..., 0]
    expected = mean + np.linalg.solve(np.swapaxes(chol, -1, -2), z[..., None])[..., 0]
    np.testing.assert_allclose(drawn, expected, rtol=2e-3, atol=2e-3)
    # not positive definite: NaN, not a number that looks like a draw
    bad = jnp.asarray(-precision)
    assert np.isnan(
        np.asarray(normal_from_precision(None, bad, jnp.asarray(rhs), jnp.asarray(z)))
    ).all()


@pytest.mark.parametrize("alpha", [-0.8, 0.0, 0.5])
def test_overrelaxed_update_keeps_the_normal_and_correlates_alpha(alpha):
    mean, sd, n = 1.5, 0.7, 200_000
    k_old, k_new = jax.random.split(jax.random.key(3))
    old = mean + sd * jax.random.normal(k_old, (n,))
    new = np.asarray(overrelaxed(old, mean, sd * jax.random.normal(k_new, (n,)), alpha))
    # N(mean, sd^2) in, N(mean, sd^2) out (Kolmogorov-Smirnov), lag-one correlation alpha
    assert stats.kstest(new, stats.norm(mean, sd).cdf).pvalue > 1e-3
    assert np.corrcoef(np.asarray(old), new)[0, 1] == pytest.approx(alpha, abs=0.01)


@pytest.mark.parametrize("alpha", [-1.0, 1.0, 1.5])
def test_overrelaxed_update_refuses_alpha_outside_the_open_interval(alpha):
    with pytest.raises(ValueError, match="alpha"):
        overrelaxed(jnp.zeros(2), 0.0, jnp.ones(2), alpha)


def test_unit_gamma_ends_on_a_nan_shape():
    """A NaN shape accepts no candidate: the loop is bounded and the draw is NaN, not a hang."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from simstudy.blocks.conjugate import unit_gamma

    draws = jax.jit(unit_gamma)(jax.random.key(0), jnp.asarray([2.0, jnp.nan, 0.5]))
    out = np.asarray(draws)
    assert np.isfinite(out[[0, 2]]).all() and np.isnan(out[1])
