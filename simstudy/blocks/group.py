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

from typing import Any

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


def group_scale(
    key: jax.Array,
    a: jax.Array,
    b: jax.Array,
    c: jax.Array,
    e: jax.Array,
    extra: Any = None,
    noise: tuple[jax.Array, jax.Array] | None = None,
    d: Any = None,
) -> jax.Array:
    """Draw a scale ``g`` for a group move, Metropolis from ``g = 1``.

    The target is ``log p(g) = -a g^2 / 2 + b g - c / g^2 + d / g + e log g`` (+
    ``extra(g)``, a non-normal correction), elementwise, with the Jacobian and Haar measure
    folded into ``e`` (Liu & Sabatti 2000); ``d`` (None: 0) comes from normal priors with a
    non-zero mean on quantities scaled by ``1 / g``. The proposal is normal in ``t = log g``
    at the mode of that target (safeguarded Newton steps from ``b / a``, ``a^-1/2`` or
    ``c^1/2``) with its curvature there. Every step of that construction is equivariant: at
    ``T_h x`` the coefficients are ``(h^2 a, h b, c / h^2, d / h, e)``, the target in ``t``
    is shifted by ``-log h`` and so is the proposal, so on the orbit of ``x`` the move is an
    independence sampler, and the acceptance ratio from ``g = 1`` is the right one. (A
    fallback such as "start at 1 when ``b <= 0``" would break this and bias the chain.)
    Returns the accepted ``g`` (1 where rejected). ``noise``: a standard normal and a
    log-uniform draw of ``a``'s shape, drawn beforehand (then ``key`` is unused).
    """
    if noise is None:
        k_t, k_u = jax.random.split(key)
        shape = jnp.shape(a)
        noise = (jax.random.normal(k_t, shape), jnp.log(jax.random.uniform(k_u, shape)))
    z, log_u = noise
    positive_a = a > 0
    safe_a = jnp.where(positive_a, a, 1.0)
    start = jnp.where(
        positive_a & (b > 0), b / safe_a, jnp.where(positive_a, 1 / jnp.sqrt(safe_a), jnp.sqrt(c))
    )
    start = jnp.where(start > 0, start, 1.0)

    def inverse(t):  # the d / g term and its first two derivatives in t (zero without d)
        if d is None:
            return 0.0, 0.0, 0.0
        term = d * jnp.exp(-t)
        return term, -term, term

    def log_target(t):  # over t = log g, with the Jacobian g
        g = jnp.exp(t)
        return -a * g**2 / 2 + b * g - c / g**2 + inverse(t)[0] + (e + 1) * t

    def slope(t):
        g = jnp.exp(t)
        return -a * g**2 + b * g + 2 * c / g**2 + inverse(t)[1] + e + 1

    def curvature(t):  # minus the second derivative, floored
        g = jnp.exp(t)
        return jnp.maximum(2 * a * g**2 - b * g + 4 * c / g**2 - inverse(t)[2], 0.25)

    t = jnp.log(start)
    for _ in range(8):
        t = t + jnp.clip(slope(t) / curvature(t), -2.0, 2.0)
    prec = curvature(t)
    proposal = t + z / jnp.sqrt(prec)
    log_ratio = log_target(proposal) - log_target(0.0) + prec * ((proposal - t) ** 2 - t**2) / 2
    g = jnp.exp(proposal)
    if extra is not None:
        log_ratio += extra(g)
    accept = log_u < log_ratio
    return jnp.where(accept & jnp.isfinite(log_ratio), g, 1.0)


def shear_covariance(cov: jax.Array, row: int, col: int, a: jax.Array) -> jax.Array:
    """``A cov A'`` with ``A = I + a e_row e_col'``: the covariance of ``u_row + a u_col``."""
    shear = jnp.eye(cov.shape[-1]).at[row, col].set(a)
    return shear @ cov @ shear.T


def shear_draw(
    grad: jax.Array,
    precision: jax.Array,
    log_prior_ratio: Any,
    z: jax.Array,
    log_u: jax.Array,
) -> jax.Array:
    """Draw ``a`` of a shear move ``u_row -> u_row + a u_col`` (every cluster), Metropolis from 0.

    With the covariance sheared too (:func:`shear_covariance`), the effects' normal density
    and the Jacobians (``det A = 1``) do not move, so the target over ``a`` is the likelihood
    of the sheared effects, normal with ``(precision, grad)`` of the standardised residuals
    along ``a`` at 0, times the covariance prior at the sheared covariance. The proposal is
    that normal (an independence sampler), so the acceptance ratio is the prior's,
    ``log_prior_ratio(a)``. It moves a covariance and the effects' correlation together: the
    direction Gibbs updates of effects and covariance cross slowly when clusters are small.
    Returns the accepted ``a`` (0 where rejected or where the likelihood does not see ``a``).
    """
    usable = precision > 1e-12
    safe = jnp.where(usable, precision, 1.0)
    a = -grad / safe + z / jnp.sqrt(safe)
    log_ratio = log_prior_ratio(a)
    accept = usable & (log_u < log_ratio) & jnp.isfinite(log_ratio)
    return jnp.where(accept, a, 0.0)
