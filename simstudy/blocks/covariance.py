"""Covariance blocks: a covariance matrix given zero-mean normal vectors (random effects, factors).

The prior is LKJ(``lkj_eta``) on the correlations and a prior per variance (half-normal on the
standard deviations, or inverse-gamma on the variances); the update is independence
Metropolis with an inverse-Wishart proposal, the conjugate posterior of a flat
InverseWishart(k + 1, s^2 I) prior, so the likelihood cancels from the acceptance ratio and
only the two priors remain.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import inverse_wishart, inverse_wishart_log_prior, small_logdet

VARIANCE_PRIORS = ("half_normal", "inverse_gamma")
#: The whole-matrix prior: InverseWishart(k + 2, ``b`` I), conjugate given the vectors.
INVERSE_WISHART = "inverse_wishart"
#: Its degrees of freedom above the block's size (the hand-written CFA's ``k + 2``).
IW_EXTRA_DF = 2


def log_variance_prior(var: jax.Array, kind: str, a: float, b: float) -> jax.Array:
    """Log density (up to a constant) over variances ``var``, summed over the last axis.

    ``half_normal``: SD ~ HalfNormal(``a``) (``b`` unused); ``inverse_gamma``: variance ~
    InverseGamma(``a``, ``b``).
    """
    log_var = jnp.log(var)
    if kind == "half_normal":
        return (-0.5 * log_var - var / (2 * a**2)).sum(-1)
    return (-(a + 1) * log_var - b / var).sum(-1)


def lkj_log_prior(phi: jax.Array, lkj_eta: float, kind: str, a: float, b: float) -> jax.Array:
    """Log prior density over ``Phi = D R D``: LKJ on ``R``, :func:`log_variance_prior` on ``D^2``.

    The map from ``(sigma^2, R)`` to ``Phi`` has Jacobian ``prod_i sigma_i^(k - 1)``. Under
    ``kind`` :data:`INVERSE_WISHART` the density is InverseWishart(k + 2, ``b`` I)'s instead
    (``lkj_eta`` and ``a`` unused).
    """
    k = phi.shape[-1]
    if kind == INVERSE_WISHART:
        return inverse_wishart_log_prior(phi, k + IW_EXTRA_DF, b)
    var = jnp.diagonal(phi, axis1=-2, axis2=-1)
    log_var = jnp.log(var)
    log_det_r = small_logdet(phi) - log_var.sum(-1)
    return (
        log_variance_prior(var, kind, a, b)
        + (lkj_eta - 1) * log_det_r
        - (k - 1) / 2 * log_var.sum(-1)
    )


def inverse_wishart_covariance(
    key: jax.Array, scatter: jax.Array, n: jax.Array, scale: float
) -> jax.Array:
    """A ``k x k`` covariance from its conjugate conditional under InverseWishart(k + 2, s I).

    Given the scatter ``sum_j u_j u_j'`` of ``n`` zero-mean normal vectors: InverseWishart(
    k + 2 + n, s I + scatter).
    """
    k = scatter.shape[-1]
    return inverse_wishart(key, k + IW_EXTRA_DF + n, scale * jnp.eye(k) + scatter)


def lkj_covariance(
    key: jax.Array,
    current: jax.Array,
    scatter: jax.Array,
    n: jax.Array,
    lkj_eta: float,
    kind: str,
    a: float,
    b: float,
    proposal_scale: float,
) -> jax.Array:
    """Update a ``k x k`` covariance given the scatter ``sum_j u_j u_j'`` of ``n`` vectors.

    Proposal: InverseWishart(k + 1 + n, proposal_scale I + scatter).
    """
    k = current.shape[-1]
    k_prop, k_u = jax.random.split(key)
    proposal = inverse_wishart(k_prop, k + 1 + n, proposal_scale * jnp.eye(k) + scatter)

    def weight(x):
        target = lkj_log_prior(x, lkj_eta, kind, a, b)
        return target - inverse_wishart_log_prior(x, k + 1, proposal_scale)

    log_ratio = weight(proposal) - weight(current)
    accept = jnp.log(jax.random.uniform(k_u)) < log_ratio
    return jnp.where(accept & jnp.isfinite(log_ratio), proposal, current)
