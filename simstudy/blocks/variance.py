"""Variance blocks: a residual variance given its residuals' sum of squares.

Each block takes the statistics (``ss``: weighted sum of squared residuals, ``n``: the sum of
the weights) and pre-drawn noise, so a sweep draws the noise of every variance in one call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def inverse_gamma_shape(n: jax.Array, shape: float) -> jax.Array:
    """Shape of the gamma draw behind :func:`inverse_gamma_variance`."""
    return shape + n / 2


def inverse_gamma_variance(
    ss: jax.Array, n: jax.Array, scale: float, gamma: jax.Array
) -> jax.Array:
    """A draw from InverseGamma(shape + n/2, scale + ss/2), the conjugate conditional.

    ``gamma``: a Gamma(:func:`inverse_gamma_shape`, 1) draw.
    """
    return (scale + ss / 2) / gamma


def half_normal_shape(n: jax.Array) -> jax.Array:
    """Shape of the gamma draw behind :func:`half_normal_variance`'s proposal."""
    return jnp.where(n > 2, (n - 1) / 2, 0.5)


def half_normal_variance(
    current: jax.Array,
    ss: jax.Array,
    n: jax.Array,
    sd_scale: float,
    gamma: jax.Array,
    uniform: jax.Array,
) -> jax.Array:
    """Update a variance whose standard deviation has a HalfNormal(``sd_scale``) prior.

    The conditional of ``v`` is ``v^-(n+1)/2 exp(-ss / 2v) exp(-v / 2 s^2)``. With more than
    two residuals the InverseGamma((n-1)/2, ss/2) proposal (``gamma`` ~
    Gamma(:func:`half_normal_shape`)) holds every factor but the last, so independence
    Metropolis accepts with probability ``min(1, exp(-(v' - v) / 2 s^2))`` — nearly always when
    the prior is wide. With two or fewer (no data: the prior) the proposal is the prior itself,
    ``v' = 2 s^2 gamma`` with ``gamma`` ~ Gamma(1/2), accepted by the likelihood ratio.
    """
    conjugate = n > 2
    proposal = jnp.where(conjugate, (ss / 2) / gamma, 2 * sd_scale**2 * gamma)

    def log_lik(v):
        return -n / 2 * jnp.log(v) - ss / (2 * v)

    log_ratio = jnp.where(
        conjugate,
        -(proposal - current) / (2 * sd_scale**2),
        log_lik(proposal) - log_lik(current),
    )
    accept = (jnp.log(uniform) < log_ratio) & jnp.isfinite(proposal) & (proposal > 0)
    return jnp.where(accept, proposal, current)
