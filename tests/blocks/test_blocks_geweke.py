"""Geweke's "getting it right" check for each block: draw the unknowns from their prior and
data given them, apply the block once; the unknowns must still follow their prior.

Each test draws M independent (prior, data) pairs at once (vmapped), so it costs one small
compiled program; a wrong conditional (a missing factor, a wrong shape or sign) shifts the
marginal far beyond what the Kolmogorov-Smirnov tests allow.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import distributions as dist
from scipy import stats

from simstudy.blocks.conjugate import inverse_wishart, unit_gamma
from simstudy.blocks.covariance import lkj_covariance, lkj_log_prior
from simstudy.blocks.group import (
    half_normal_scale_draw,
    location_shift_draw,
    rescale_covariance,
    shear_covariance,
    shear_draw,
)
from simstudy.blocks.linear import gaussian_terms, is_affine, normal_step, row_cross_products
from simstudy.blocks.ordinal import latent_responses
from simstudy.blocks.variance import (
    half_normal_shape,
    half_normal_variance,
    inverse_gamma_shape,
    inverse_gamma_variance,
)

M = 4000
P_MIN = 1e-3


def _keys(seed, k):
    return jax.random.split(jax.random.key(seed), k)


def _same_law(after, reference):
    assert stats.ks_2samp(np.asarray(after), np.asarray(reference)).pvalue > P_MIN


def test_normal_coefficients_keep_their_prior():
    sd, x = 2.0, jnp.asarray([[1.0, -1.0], [1.0, 0.0], [1.0, 0.5], [1.0, 2.0], [1.0, 1.0]])

    def one(key):
        kb, ke, kz, kc = jax.random.split(key, 4)
        beta = sd * jax.random.normal(kb, (2,))
        y = x @ beta + jax.random.normal(ke, (5,))
        current = sd * jax.random.normal(kc, (2,))  # anywhere: the draw does not depend on it
        resid = y - x @ current  # five residual parts, each -x[r] along the coefficients
        grad, precision = gaussian_terms(list(resid), [list(-row) for row in x])
        grad = grad + current / sd**2
        precision = precision + jnp.eye(2) / sd**2
        return normal_step(current, grad, precision, jax.random.normal(kz, (2,)))

    after = jax.jit(jax.vmap(one))(_keys(0, M))
    prior = sd * jax.random.normal(jax.random.key(99), (M,))
    _same_law(after[:, 0], prior)
    _same_law(after[:, 1], prior)


@pytest.mark.parametrize("d", [2, 6])  # written-out sums, and the dot past UNROLLED_MAX
def test_row_cross_products_are_the_weighted_normal_equations(d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(40, d))
    w, t = rng.random(40) * (rng.random(40) < 0.8), rng.normal(size=40)
    columns = [1.0, *(jnp.asarray(x[:, k]) for k in range(1, d))]  # a constant: a number
    x[:, 0] = 1.0
    cross, fitted = row_cross_products(columns, jnp.asarray(w), jnp.asarray(t))
    np.testing.assert_allclose(cross, x.T @ (w[:, None] * x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fitted, x.T @ (w * t), rtol=1e-5, atol=1e-5)


def test_inverse_gamma_variance_keeps_its_prior():
    a, b, n = 3.0, 2.0, 5

    def one(key):
        kv, ke, kg = jax.random.split(key, 3)
        v = b / jax.random.gamma(kv, a)
        e = jnp.sqrt(v) * jax.random.normal(ke, (n,))
        gamma = unit_gamma(kg, inverse_gamma_shape(jnp.asarray(float(n)), a))
        return inverse_gamma_variance((e**2).sum(), n, b, gamma)

    after = jax.jit(jax.vmap(one))(_keys(1, M))
    _same_law(after, b / jax.random.gamma(jax.random.key(98), a, (M,)))


def _half_normal_case(n, seed):
    s = 1.5

    def one(key):
        kv, ke, kg, ku = jax.random.split(key, 4)
        v = (s * jax.random.normal(kv)) ** 2
        e = jnp.sqrt(v) * jax.random.normal(ke, (n,))
        gamma = unit_gamma(kg, half_normal_shape(jnp.asarray(float(n))))
        # the chain's current value is the drawn v (Geweke: the state is a prior draw)
        return half_normal_variance(v, (e**2).sum(), n, s, gamma, jax.random.uniform(ku))

    after = jax.jit(jax.vmap(one))(_keys(seed, M))
    _same_law(after, (s * jax.random.normal(jax.random.key(97), (M,))) ** 2)


def test_half_normal_variance_keeps_its_prior_with_data():
    _half_normal_case(6, 2)


def test_half_normal_variance_keeps_its_prior_without_data():
    _half_normal_case(0, 3)


def _lkj_half_normal(key, k, s, eta):
    """A covariance from LKJ(eta) correlations and HalfNormal(s) SDs."""
    kv, kr = jax.random.split(key)
    sd = jnp.abs(s * jax.random.normal(kv, (k,)))
    chol = sd[:, None] * dist.LKJCholesky(k, eta).sample(kr)
    return chol @ chol.T


def test_lkj_covariance_keeps_its_prior():
    k, j, s, eta = 2, 8, 1.0, 2.0

    def prior(key):
        return _lkj_half_normal(key, k, s, eta)

    def one(key):
        kp, ku, kb = jax.random.split(key, 3)
        phi = prior(kp)
        u = jax.random.multivariate_normal(ku, jnp.zeros(k), phi, (j,))
        return lkj_covariance(kb, phi, u.T @ u, j, eta, "half_normal", s, 0.0, 1e-3)

    after = jax.jit(jax.vmap(one))(_keys(4, M))
    reference = jax.vmap(prior)(_keys(96, M))
    _same_law(after[:, 0, 0], reference[:, 0, 0])
    _same_law(after[:, 1, 1], reference[:, 1, 1])
    corr = lambda c: c[:, 0, 1] / jnp.sqrt(c[:, 0, 0] * c[:, 1, 1])  # noqa: E731
    _same_law(corr(after), corr(reference))


def test_scale_move_keeps_the_prior_of_variance_and_effects():
    """u_j ~ N(0, v), sd(v) ~ HalfNormal(s), y_j ~ N(u_j, 1): move (u, v) -> (c u, c^2 v)."""
    j, s = 6, 1.0

    def one(key):
        kv, ku, ky, kz = jax.random.split(key, 4)
        v = (s * jax.random.normal(kv)) ** 2
        u = jnp.sqrt(v) * jax.random.normal(ku, (j,))
        y = u + jax.random.normal(ky, (j,))
        resid, slope = y - u, -u  # standardised residuals at c = 1 and d/dc
        c = half_normal_scale_draw(
            (slope * resid).sum(), (slope * slope).sum(), v, s, jax.random.normal(kz)
        )
        cov = rescale_covariance(v[None, None], 0, c)
        return cov[0, 0], c * u[0]

    v_after, u_after = jax.jit(jax.vmap(one))(_keys(5, M))
    kv, ku = jax.random.split(jax.random.key(95))
    v_ref = (s * jax.random.normal(kv, (M,))) ** 2
    _same_law(v_after, v_ref)
    _same_law(u_after, jnp.sqrt(v_ref) * jax.random.normal(ku, (M,)))


def test_location_move_keeps_the_prior_of_coefficient_and_effects():
    """beta ~ N(0, sd^2), u_j ~ N(0, S): the move beta + d, u_j - d leaves beta + u_j fixed."""
    j, sd, var = 5, 2.0, 0.5

    def one(key):
        kb, ku, kz = jax.random.split(key, 3)
        beta = sd * jax.random.normal(kb)
        u = jnp.sqrt(var) * jax.random.normal(ku, (j, 1))
        d = location_shift_draw(
            u, jnp.ones(j), jnp.eye(1) / var, 0, beta, sd, jax.random.normal(kz)
        )
        return beta + d, u[0, 0] - d

    beta_after, u_after = jax.jit(jax.vmap(one))(_keys(6, M))
    _same_law(beta_after, sd * jax.random.normal(jax.random.key(94), (M,)))
    _same_law(u_after, jnp.sqrt(var) * jax.random.normal(jax.random.key(93), (M,)))


@pytest.mark.parametrize("row, col", [(1, 0), (0, 1)])
def test_shear_move_keeps_the_prior_of_covariance_and_effects(row, col):
    """S ~ LKJ(2) x half-normal SDs, u_j ~ N(0, S), y_j ~ N(u_j0 + x_j u_j1, 1): move
    (u, S) -> (A u, A S A') with A = I + a e_row e_col'; S's margins must keep their prior."""
    k, j, s, eta = 2, 6, 1.0, 2.0

    def prior(key):
        return _lkj_half_normal(key, k, s, eta)

    def one(key):
        kp, ku, kx, ky, kz, ka = jax.random.split(key, 6)
        phi = prior(kp)
        u = jax.random.multivariate_normal(ku, jnp.zeros(k), phi, (j,))
        x = jax.random.normal(kx, (j,))
        design = jnp.stack([jnp.ones(j), x], -1)
        y = (design * u).sum(-1) + jax.random.normal(ky, (j,))
        resid = y - (design * u).sum(-1)  # standardised residuals at a = 0 and d/da
        slope = -design[:, row] * u[:, col]

        def log_prior_ratio(a):
            sheared = shear_covariance(phi, row, col, a)
            return lkj_log_prior(sheared, eta, "half_normal", s, 0.0) - lkj_log_prior(
                phi, eta, "half_normal", s, 0.0
            )

        a = shear_draw(
            (slope * resid).sum(),
            (slope * slope).sum(),
            log_prior_ratio,
            jax.random.normal(kz),
            jnp.log(jax.random.uniform(ka)),
        )
        moved = u.at[:, row].add(a * u[:, col])
        return shear_covariance(phi, row, col, a), a, y[0] - (design[0] * moved[0]).sum()

    after, a, noise = jax.jit(jax.vmap(one))(_keys(7, M))
    assert 0.2 < float((a != 0).mean()) < 1.0  # it moves, and it can refuse
    reference = jax.vmap(prior)(_keys(92, M))
    _same_law(after[:, row, row], reference[:, row, row])
    corr = lambda c: c[:, 0, 1] / jnp.sqrt(c[:, 0, 0] * c[:, 1, 1])  # noqa: E731
    _same_law(corr(after), corr(reference))
    _same_law(noise, jax.random.normal(jax.random.key(91), (M,)))  # y given the moved effects


def test_shear_proposal_is_the_likelihood_along_the_shear():
    """With a flat prior the draw is the normal ``exp(-sum (s0 + a slope)^2 / 2)`` in ``a``."""
    rng = np.random.default_rng(3)
    resid, slope = jnp.asarray(rng.normal(size=9)), jnp.asarray(rng.normal(size=9))

    def log_lik(a):
        return -0.5 * ((resid + a * slope) ** 2).sum()

    def draw(z):
        g, p = (slope * resid).sum(), (slope * slope).sum()
        return shear_draw(g, p, lambda a: 0.0 * a, jnp.asarray(z), jnp.asarray(-1.0))

    mode, one_sd = draw(0.0), draw(1.0)
    assert abs(float(jax.grad(log_lik)(mode))) < 1e-4
    np.testing.assert_allclose(one_sd - mode, (-jax.hessian(log_lik)(mode)) ** -0.5, rtol=1e-5)
    # no information along the shear (nothing observed): no move
    assert float(shear_draw(0.0, 0.0, lambda a: 0.0 * a, jnp.asarray(1.0), -1.0)) == 0.0


def test_affine_check_tells_affine_from_not():
    at, direction = jnp.asarray([0.3, -0.2]), jnp.asarray([0.5, 1.0])
    assert is_affine(lambda b: 2.0 * b + 1.0, at, direction)
    assert not is_affine(lambda b: b * b, at, direction)


def test_inverse_wishart_conjugate_draw_keeps_its_prior():
    k, j, df = 2, 6, 5.0
    scale = jnp.asarray([[1.0, 0.3], [0.3, 0.8]])

    def one(key):
        kp, ku, kb = jax.random.split(key, 3)
        phi = inverse_wishart(kp, df, scale)
        u = jax.random.multivariate_normal(ku, jnp.zeros(k), phi, (j,))
        return inverse_wishart(kb, df + j, scale + u.T @ u)

    after = jax.jit(jax.vmap(one))(_keys(7, M))
    reference = jax.vmap(lambda key: inverse_wishart(key, df, scale))(_keys(92, M))
    _same_law(after[:, 0, 0], reference[:, 0, 0])
    _same_law(after[:, 0, 1], reference[:, 0, 1])


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_ordinal_latent_responses_keep_their_law(link):
    """y* ~ link's distribution around its mean, y its category: y* | y keeps y*'s law."""
    tau = jnp.asarray([[-0.8, 0.1, 1.2]])

    def one(key):
        ks, kd, km = jax.random.split(key, 3)
        mean = 0.5 * jax.random.normal(km, (1, 1))
        noise = (
            jax.random.normal(ks, (1, 1)) if link == "probit" else jax.random.logistic(ks, (1, 1))
        )
        ystar = mean + noise
        y = (ystar[..., None] > tau[None]).sum(-1)
        return latent_responses(kd, link, y, tau, mean)[0, 0], ystar[0, 0]

    after, _ = jax.jit(jax.vmap(one))(_keys(8, M))
    _, reference = jax.jit(jax.vmap(one))(_keys(91, M))  # independent prior draws of y*
    _same_law(after, reference)
