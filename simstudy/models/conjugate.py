"""Draws from the conjugate full conditionals that Gibbs-type estimators share."""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
