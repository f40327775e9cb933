"""Draws from the conjugate full conditionals that Gibbs-type estimators share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist


def inv_gamma(key: jax.Array, shape: jax.Array | float, scale: jax.Array | float) -> jax.Array:
    """Inverse-gamma draws with the given shape and scale (broadcast)."""
    shape, scale = jnp.asarray(shape), jnp.asarray(scale)
    out = jnp.broadcast_shapes(shape.shape, scale.shape)
    return scale / jax.random.gamma(key, jnp.broadcast_to(shape, out))


def normal_from_precision(key: jax.Array, precision: jax.Array, rhs: jax.Array) -> jax.Array:
    """Draw from N(P^-1 r, P^-1) for a batch of small precision matrices ``P`` and vectors ``r``."""
    chol = jnp.linalg.cholesky(precision)
    mean = jax.scipy.linalg.cho_solve((chol, True), rhs[..., None])[..., 0]
    z = jax.random.normal(key, rhs.shape)
    # mean + L^-T z has covariance (L L^T)^-1
    upper = jnp.swapaxes(chol, -1, -2)
    return mean + jax.scipy.linalg.solve_triangular(upper, z[..., None], lower=False)[..., 0]


def inverse_wishart(key: jax.Array, df: jax.Array | float, scale: jax.Array) -> jax.Array:
    """An inverse-Wishart(df, scale) draw (k × k), by Bartlett's decomposition of its inverse."""
    k = scale.shape[-1]
    k_chi, k_norm = jax.random.split(key)
    dof = df - jnp.arange(k)
    diag = jnp.sqrt(2.0 * jax.random.gamma(k_chi, dof / 2.0))
    lower = jnp.tril(jax.random.normal(k_norm, (k, k)), -1)
    bartlett = lower + jnp.diag(diag)
    # W = L_inv A A' L_inv' ~ Wishart(df, scale^-1), with scale^-1 = L_inv L_inv'
    chol_inv = jnp.linalg.cholesky(jnp.linalg.inv(scale))
    factor = chol_inv @ bartlett
    return jnp.linalg.inv(factor @ factor.T)


def loading_draw(
    keys: tuple[jax.Array, jax.Array],
    y: jax.Array,
    weight: jax.Array,
    scores: jax.Array,
    marker: jax.Array,
    intercept: jax.Array | bool,
    coef_var: float,
) -> tuple[jax.Array, jax.Array]:
    """Intercepts and loadings of indicators that each load on one factor, given their weights.

    Per indicator ``j`` the regression of ``y_j`` on its factor's scores with per-cell precision
    ``weight`` (``1 / theta_j`` where observed, 0 where missing) and N(0, coef_var) priors:
    ``(nu_j, lambda_j)`` jointly; marker indicators keep ``lambda_j = 1`` and draw only the
    intercept; indicators without a free ``intercept`` (ordinal ones) keep ``nu_j = 0``.

    Parameters
    ----------
    keys
        Two keys: loadings and intercepts, marker intercepts.
    y
        Indicators or latent responses (N × p, any value where the weight is 0).
    weight
        Precision of each cell (N × p).
    scores
        Each indicator's factor score per person (N × p).
    marker
        Boolean (p,): loading fixed at 1.
    intercept
        Boolean (p,) or scalar: the intercept is free (else fixed at 0).

    Returns
    -------
    nu, lam
    """
    k_coef, k_nu = keys
    free = jnp.broadcast_to(jnp.asarray(intercept, bool), marker.shape)
    n_w = weight.sum(0)
    s_e, s_ee = (weight * scores).sum(0), (weight * scores**2).sum(0)
    s_y, s_ye = (weight * y).sum(0), (weight * y * scores).sum(0)
    off = jnp.where(free, s_e, 0.0)
    prec = jnp.stack(
        [
            jnp.stack([jnp.where(free, n_w, 0.0) + 1 / coef_var, off], -1),
            jnp.stack([off, s_ee + 1 / coef_var], -1),
        ],
        -2,
    )
    rhs = jnp.stack([jnp.where(free, s_y, 0.0), s_ye], -1)
    coef = normal_from_precision(k_coef, prec, rhs)
    prec_nu = n_w + 1 / coef_var  # markers: intercept of y - score
    nu_marker = (s_y - s_e) / prec_nu + jax.random.normal(k_nu, n_w.shape) / jnp.sqrt(prec_nu)
    nu = jnp.where(free, jnp.where(marker, nu_marker, coef[:, 0]), 0.0)
    lam = jnp.where(marker, 1.0, coef[:, 1])
    return nu, lam


def measurement_draw(
    keys: tuple[jax.Array, jax.Array, jax.Array],
    y: jax.Array,
    observed: jax.Array,
    scores: jax.Array,
    marker: jax.Array,
    theta: jax.Array,
    coef_var: float,
    var_shape: float,
    var_scale: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Intercepts, loadings and residual variances of continuous single-factor indicators.

    ``(nu_j, lambda_j) | theta_j`` by :func:`loading_draw` (all intercepts free), then
    ``theta_j | nu_j, lambda_j`` from InverseGamma(var_shape + n_j / 2, var_scale + SSR_j / 2).

    Parameters
    ----------
    keys
        Three keys: loadings and intercepts, marker intercepts, residual variances.
    y, observed
        Indicators (N × p, any value where missing) and their mask.
    scores
        Each indicator's factor score per person (N × p).
    marker
        Boolean (p,): loading fixed at 1.
    theta
        Current residual variances (p,).

    Returns
    -------
    nu, lam, theta
    """
    obs = observed.astype(float)
    nu, lam = loading_draw(keys[:2], y, obs / theta, scores, marker, True, coef_var)
    ssr = (obs * (y - nu - lam * scores) ** 2).sum(0)
    return nu, lam, inv_gamma(keys[2], var_shape + obs.sum(0) / 2, var_scale + ssr / 2)


#: Priors of a factor covariance matrix the CFA sampler knows (``model.priors.factor_cov``).
FACTOR_COV_PRIORS = ("lkj", "inverse_wishart")


def lkj_log_prior(phi: jax.Array, lkj_eta: float, var_shape: float, var_scale: float):
    """Log density over ``Phi`` (up to a constant) of LKJ correlations and inverse-gamma variances.

    ``Phi = D R D`` with ``D = diag(sigma)``, ``R ~ LKJ(lkj_eta)`` and every ``sigma_i^2 ~
    InverseGamma(var_shape, var_scale)``. The map from ``(sigma^2, R)`` to the free entries of
    ``Phi`` has Jacobian ``prod_i sigma_i^(k - 1)``, which turns the density of ``(sigma^2, R)``
    into one over ``Phi``.
    """
    k = phi.shape[-1]
    var = jnp.diagonal(phi, axis1=-2, axis2=-1)
    log_var = jnp.log(var)
    log_det_r = jnp.linalg.slogdet(phi)[1] - log_var.sum(-1)
    inv_gamma_part = (-(var_shape + 1) * log_var - var_scale / var).sum(-1)
    return inv_gamma_part + (lkj_eta - 1) * log_det_r - (k - 1) / 2 * log_var.sum(-1)


def inverse_wishart_log_prior(phi: jax.Array, df: float, scale: float):
    """Log density (up to a constant) of InverseWishart(df, scale * I) at ``Phi``."""
    k = phi.shape[-1]
    trace = scale * jnp.trace(jnp.linalg.inv(phi), axis1=-2, axis2=-1)
    return -(df + k + 1) / 2 * jnp.linalg.slogdet(phi)[1] - trace / 2


def factor_cov_draw(
    key: jax.Array, phi: jax.Array, eta: jax.Array, priors: Mapping[str, Any]
) -> jax.Array:
    """Update the covariance of zero-mean factor scores ``eta`` (N × k) under its prior.

    ``priors["factor_cov"]``: ``"inverse_wishart"`` — the conjugate draw from
    InverseWishart(k + 2 + N, var_scale I + eta'eta); ``"lkj"`` — LKJ(``lkj_eta``) correlations
    and InverseGamma(var_shape, var_scale) variances, by independence Metropolis with the
    inverse-Wishart posterior of a flatter InverseWishart(k + 1, var_scale I) prior as the
    proposal. The likelihood cancels from the acceptance ratio, which is the ratio of the two
    priors; with data the proposal is close to the target and nearly always accepted.
    """
    k, n = eta.shape[1], eta.shape[0]
    b0 = priors["var_scale"]
    scatter = b0 * jnp.eye(k) + eta.T @ eta
    if priors["factor_cov"] == "inverse_wishart":
        return inverse_wishart(key, k + 2 + n, scatter)
    k_prop, k_u = jax.random.split(key)
    proposal = inverse_wishart(k_prop, k + 1 + n, scatter)

    def weight(x):
        target = lkj_log_prior(x, priors["lkj_eta"], priors["var_shape"], b0)
        return target - inverse_wishart_log_prior(x, k + 1, b0)

    log_ratio = weight(proposal) - weight(phi)
    accept = jnp.log(jax.random.uniform(k_u)) < log_ratio
    return jnp.where(accept & jnp.isfinite(log_ratio), proposal, phi)


def factor_cov_prior_draw(key: jax.Array, k: int, priors: Mapping[str, Any]) -> jax.Array:
    """A draw of the factor covariance from its prior (for simulation-based calibration)."""
    b0 = priors["var_scale"]
    if priors["factor_cov"] == "inverse_wishart":
        return inverse_wishart(key, k + 2, b0 * jnp.eye(k))
    k_var, k_corr = jax.random.split(key)
    sd = jnp.sqrt(inv_gamma(k_var, priors["var_shape"], jnp.full((k,), b0)))
    chol = dist.LKJCholesky(k, priors["lkj_eta"]).sample(k_corr) if k > 1 else jnp.ones((1, 1))
    return (sd[:, None] * chol) @ (sd[:, None] * chol).T


def marker_signs(y: jax.Array, observed: jax.Array, marker_of_item: Any) -> jax.Array:
    """+1 or -1 per indicator: the sign of its covariance with its factor's marker.

    Start values for loadings: a chain started with every loading positive stays in that
    basin when a true loading is negative (the marker fixes the factor's sign, but a factor can
    also be "taken over" by its other indicators: a local mode where every chain agrees).
    """
    obs = observed.astype(float)
    both = obs * obs[:, marker_of_item]
    n = jnp.maximum(both.sum(0), 1.0)
    marker = y[:, marker_of_item]
    centred = y - (y * both).sum(0) / n
    centred_marker = marker - (marker * both).sum(0) / n
    return jnp.where((both * centred * centred_marker).sum(0) < 0, -1.0, 1.0)
