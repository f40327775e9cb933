"""The conjugate draws that Gibbs samplers share, against their exact laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import primitives
from scipy import stats

from simstudy.blocks.conjugate import (
    dirichlet,
    inv_gamma,
    inverse_wishart,
    normal_from_precision,
    unit_gamma,
)


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


def test_unit_gamma_ends_on_a_nan_shape():
    """A NaN shape accepts no candidate: the loop is bounded and the draw is NaN, not a hang."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from simstudy.blocks.conjugate import unit_gamma

    draws = jax.jit(unit_gamma)(jax.random.key(0), jnp.asarray([2.0, jnp.nan, 0.5]))
    out = np.asarray(draws)
    assert np.isfinite(out[[0, 2]]).all() and np.isnan(out[1])


def test_gamma_based_draws_do_not_use_jax_random_gamma():
    """``jax.random.gamma``'s unbounded, vmapped rejection loop never ended for one key at
    shapes (152, 151.5, 151) (the accept test, computed in the loop's condition and again in
    its body, disagreed in float32), hanging the ordinal CFA's SBC; the shared draws use the
    bounded :func:`unit_gamma` instead."""
    key, alpha = jax.random.key(0), jnp.array([152.0, 151.5, 151.0])
    assert "random_gamma" in primitives(jax.make_jaxpr(jax.random.gamma)(key, alpha))
    draws = {
        "inv_gamma": lambda k: inv_gamma(k, alpha, 2.0),
        "inverse_wishart": lambda k: inverse_wishart(k, 304.0, jnp.eye(3)),
        "dirichlet": lambda k: dirichlet(k, alpha),
    }
    for name, draw in draws.items():
        assert "random_gamma" not in primitives(jax.make_jaxpr(draw)(key)), name
    # the key and shapes that hung jax.random.gamma (threefry, not partitionable)
    hung = jax.random.wrap_key_data(jnp.array([1257814131, 1669791826], jnp.uint32))
    with jax.threefry_partitionable(False):
        out = np.asarray(jax.jit(unit_gamma)(hung, alpha))
    assert np.isfinite(out).all() and (out > 100).all()


def test_bounded_gamma_returns_nan_for_pathological_shapes():
    """NaN, infinite, zero, negative shapes: NaN draws (a failed fit), promptly, never a hang;
    extreme valid shapes give finite draws. Jitted and vmapped, as in a sampler's sweep."""
    bad = jnp.array([jnp.nan, jnp.inf, -jnp.inf, 0.0, -1.0, -1e-30])
    good = jnp.array([1e-30, 1e-3, 1.0, 1e6, 1e30])
    keys = jax.random.split(jax.random.key(5), 3)
    draw = jax.jit(jax.vmap(lambda k, a: inv_gamma(k, a, 1.0), in_axes=(0, None)))
    out_bad, out_good = np.asarray(draw(keys, bad)), np.asarray(draw(keys, good))
    assert np.isnan(out_bad).all()
    assert (~np.isnan(out_good)).all() and (out_good > 0).all()
    wishart = jax.jit(inverse_wishart)(keys[0], jnp.nan, jnp.eye(2))
    assert np.isnan(np.asarray(wishart)).all()


@pytest.mark.parametrize(("shape", "scale"), [(0.7, 1.0), (3.0, 0.5), (152.0, 80.0)])
def test_inv_gamma_has_the_inverse_gamma_law(shape, scale):
    draws = np.asarray(inv_gamma(jax.random.key(11), jnp.full(20_000, shape), scale))
    assert stats.kstest(draws, stats.invgamma(shape, scale=scale).cdf).pvalue > 0.001


def test_inverse_wishart_and_dirichlet_have_their_laws():
    keys = jax.random.split(jax.random.key(12), 10_000)
    # 1 x 1: InverseWishart(df, s) is InverseGamma(df / 2, s / 2)
    one = np.asarray(jax.vmap(lambda k: inverse_wishart(k, 7.0, jnp.full((1, 1), 3.0)))(keys))
    assert stats.kstest(one[:, 0, 0], stats.invgamma(3.5, scale=1.5).cdf).pvalue > 0.001
    # k x k: E[W] = scale / (df - k - 1)
    scale = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
    three = np.asarray(jax.vmap(lambda k: inverse_wishart(k, 12.0, scale))(keys))
    np.testing.assert_allclose(three.mean(0), np.asarray(scale) / 8.0, atol=0.01)
    # Dirichlet(alpha): marginals Beta(alpha_i, sum - alpha_i)
    alpha = np.array([1.0, 4.0, 12.5])
    prob = np.asarray(jax.vmap(lambda k: dirichlet(k, jnp.asarray(alpha)))(keys))
    np.testing.assert_allclose(prob.sum(-1), 1.0, rtol=1e-5)
    for i, a in enumerate(alpha):
        beta = stats.beta(a, alpha.sum() - a)
        assert stats.kstest(prob[:, i], beta.cdf).pvalue > 0.001, i


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_small_matrix_helpers_are_numpys_and_scipys(k):
    """Written out up to UNROLLED_MAX (4), LAPACK past it: inverse, Cholesky, log det, density."""
    from simstudy.blocks.conjugate import (
        log_normal_from_precision,
        small_cholesky,
        small_inverse,
        small_logdet,
    )

    rng = np.random.default_rng(k)
    a = rng.normal(size=(6, k, k))
    p = a @ a.transpose(0, 2, 1) + k * np.eye(k)
    r, x = rng.normal(size=(6, k)), rng.normal(size=(6, k))
    inverse = small_inverse(jnp.asarray(p))
    np.testing.assert_allclose(inverse, np.linalg.inv(p), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(small_cholesky(jnp.asarray(p)), np.linalg.cholesky(p), rtol=1e-4)
    np.testing.assert_allclose(small_logdet(jnp.asarray(p)), np.linalg.slogdet(p)[1], rtol=1e-4)
    got = np.asarray(log_normal_from_precision(jnp.asarray(x), jnp.asarray(p), jnp.asarray(r)))
    want = [
        stats.multivariate_normal(np.linalg.solve(p[c], r[c]), np.linalg.inv(p[c])).logpdf(x[c])
        for c in range(6)
    ]
    np.testing.assert_allclose(got - want, (got - want)[0], atol=1e-4)  # up to a constant
