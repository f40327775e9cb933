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
