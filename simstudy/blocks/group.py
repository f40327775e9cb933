"""Group moves: a whole vector of unknowns rescaled at once (parameter expansion).

Under ``u_k -> c u_k`` for every cluster, with the covariance's row and column ``k`` scaled
by ``c`` (so the standardised effects do not move), the density of ``c`` (Liu & Sabatti
2000, Haar measure ``dc / |c|``) is the likelihood of the rescaled effects times the prior of
the rescaled variance, all powers of ``|c|`` cancelling for LKJ correlations and a half-normal
SD: a normal, ``N(m, 1/P)`` with the likelihood's ``(P_l, m_l)`` plus ``v_k / a^2`` from the
prior. Drawing it exactly moves a variance component and its effects together, which a
Gibbs sweep alone does only in small steps when the variance is small (the classic slow
direction of centred random effects).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def half_normal_scale_draw(
    grad: jax.Array, precision: jax.Array, variance: jax.Array, sd_scale: float, z: jax.Array
) -> jax.Array:
    """Draw the factor ``c`` of a scale move at ``c = 1``.

    ``grad``, ``precision``: ``G's0`` and ``G'G`` of the standardised residuals along ``c``
    at ``c = 1``; ``variance``: the current variance of the scaled component; ``z``: a
    standard normal.
    """
    prior = variance / sd_scale**2
    total = precision + prior
    mean = (precision - grad) / total  # 1 - (grad + prior) / total
    return mean + z / jnp.sqrt(total)


def rescale_covariance(cov: jax.Array, k: int, c: jax.Array) -> jax.Array:
    """``D cov D`` with ``D = diag(1, ..., c, ..., 1)`` (``c`` at position ``k``)."""
    d = jnp.ones(cov.shape[-1]).at[k].set(c)
    return cov * d[:, None] * d[None, :]


def location_shift_draw(
    effects: jax.Array,
    weight: jax.Array,
    cov_inverse: jax.Array,
    k: int,
    coef: jax.Array,
    coef_sd: float,
    z: jax.Array,
) -> jax.Array:
    """Draw the shift ``d`` of a location move ``beta + d``, ``u_jk - d`` (the mean unchanged).

    The likelihood does not see ``d``; the random effects' normal prior and the
    coefficient's N(0, coef_sd^2) prior give a normal: precision ``J (S^-1)_kk + 1/coef_sd^2``.
    Without it the centred coefficient and the mean of its effects drift together.
    """
    j = weight.sum()
    precision = j * cov_inverse[k, k] + 1.0 / coef_sd**2
    rhs = (weight[:, None] * effects @ cov_inverse.T)[:, k].sum() - coef / coef_sd**2
    return rhs / precision + z / jnp.sqrt(precision)
