"""Group moves for the CFA's Gibbs sampler (Liu & Sabatti 2000's generalized Gibbs).

Plain conditional updates cross some directions of the posterior slowly: the scale of a factor
against its loadings, the location of a factor against intercepts and thresholds, and the scale
of an ordinal item's latent responses. Each move here draws a transformation of the whole
state along one such direction from its conditional, so it leaves the posterior invariant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from numpyro import distributions as dist

from simstudy.blocks import ordinal as ordm
from simstudy.blocks.conjugate import inv_gamma, inverse_wishart, normal_from_precision
from simstudy.blocks.covariance import lkj_covariance
from simstudy.blocks.group import group_scale

if TYPE_CHECKING:
    from simstudy.models.cfa import Layout, State


def scale_move(
    key: jax.Array,
    s: State,
    y: jax.Array,
    weight: jax.Array,
    layout: Layout,
    priors: Mapping[str, float],
    correction: Any = None,
) -> State:
    """Rescale each factor along the direction the Gibbs updates cross slowly.

    For factor ``f`` the group move ``eta_f -> g eta_f``, ``lambda_j -> lambda_j / g`` (its
    non-marker indicators), ``Phi -> D Phi D`` (``D = diag(.., g, ..)``) changes the likelihood
    only through the marker indicator, so ``g`` is about as well determined as the marker's
    regression on the scores: ``a``, ``b`` from that regression, ``c`` from the loading and
    factor covariance priors, ``e`` from the Jacobian and Haar measure (``g^(k - m_f)``,
    ``m_f`` free loadings) and the factor covariance prior: ``g^-(2k + 3)`` under the
    inverse-Wishart, ``g^-(2 a0 + 2 + k - 1)`` under inverse-gamma variances (shape ``a0``)
    with LKJ correlations. ``correction(residual)`` adds a log density ratio
    per marker cell where the marker's residual is not normal (logit).
    """
    mk = jnp.asarray(layout.marker_of)
    k = len(layout.factors)
    w = weight[:, mk]  # (N, k) marker weights
    resid = y[:, mk] - s.nu[mk]
    onehot = jnp.asarray(layout.onehot)
    free = jnp.asarray(~layout.marker, float)
    m = free @ onehot  # free loadings per factor
    c = ((free * s.lam**2) @ onehot) / (2 * priors["coef_sd"] ** 2)
    if priors["factor_cov"] == "inverse_wishart":  # |Phi|^-(2k+3)/2 exp(-tr(b0 Phi^-1)/2)
        c = c + priors["var_scale"] * jnp.diag(jnp.linalg.inv(s.phi)) / 2
        e = -(k + m + 3)
    else:  # InverseGamma(a0, b0) on Phi_ff, Jacobian of the LKJ correlations: sigma^-(k-1)
        c = c + priors["var_scale"] / jnp.diag(s.phi)
        e = -(m + 2 * priors["var_shape"] + 1)
    extra = None
    if correction is not None:

        def extra(g):
            return (correction(resid - g * s.eta) - correction(resid - s.eta)).sum(0)

    a, b = (w * s.eta**2).sum(0), (w * s.eta * resid).sum(0)
    g = group_scale(key, a, b, c, e, extra)
    g_item = g[jnp.asarray(layout.factor_of)]
    return s._replace(
        eta=s.eta * g,
        lam=jnp.where(jnp.asarray(layout.marker), s.lam, s.lam / g_item),
        phi=s.phi * g[:, None] * g[None, :],
    )


def item_scale_move(
    key: jax.Array,
    s: State,
    y: jax.Array,
    weight: jax.Array,
    scores: jax.Array,
    layout: Layout,
    cut_mask: jax.Array,
    coef_sd: float,
    correction: Any = None,
) -> tuple[State, jax.Array]:
    """Rescale each ordinal item's latent responses, thresholds and (free) loading together.

    ``y*_j -> g y*_j``, ``tau_j -> g tau_j``, ``lambda_j -> g lambda_j`` (not for markers) keeps
    every latent response inside its category, so only the fixed residual variance and the
    priors decide ``g``: the slow direction of Albert-Chib augmentation (the parameter
    expansion of Liu & Wu 1999, as a group move). Returns the state and the rescaled ``y``.
    """
    ordinal = jnp.asarray(layout.ordinal)
    marker = jnp.asarray(layout.marker)
    free = jnp.where(marker, 0.0, 1.0)
    w = weight * ordinal
    moving = y - free * s.lam * scores  # the part of the residual that scales with g
    fixed = jnp.where(marker, scores, 0.0)
    tau = jnp.where(cut_mask, ordm.thresholds(s.cuts.u, cut_mask), 0.0)
    prior = (free * s.lam**2 + (tau**2).sum(-1)) / coef_sd**2
    a = (w * moving**2).sum(0) + prior
    b = (w * moving * fixed).sum(0)
    e = (w > 0).sum(0) + cut_mask.sum(-1) + free - 1.0
    extra = None
    if correction is not None:

        def extra(g):
            return (correction(g * moving - fixed) - correction(moving - fixed)).sum(0)

    g = jnp.where(ordinal, group_scale(key, jnp.where(ordinal, a, 1.0), b, 0.0, e, extra), 1.0)
    u = ordm.unconstrain(jnp.where(cut_mask, g[:, None] * tau, 0.0))
    u = jnp.where(cut_mask, u, s.cuts.u)
    lam = jnp.where(marker, s.lam, g * s.lam)
    return s._replace(lam=lam, cuts=s.cuts._replace(u=u)), jnp.where(ordinal, g * y, y)


def location_move(key: jax.Array, s: State, layout: Layout, cut_mask, coef_sd: float) -> State:
    """Shift every factor's location with all that the likelihood ties to it, exactly.

    The translation ``eta_f -> eta_f + delta_f``, ``tau_j -> tau_j + lambda_j delta_f``
    (ordinal items), ``nu_j -> nu_j - lambda_j delta_f`` (continuous items) leaves the
    likelihood of ``y`` (latent responses integrated out) unchanged, so ``delta`` given the
    rest is normal: the factor prior N(0, Phi) and the N(0, coef_sd^2) priors on thresholds and
    intercepts are all that depend on it (Liu & Sabatti 2000, translation group, Jacobian 1).
    Ordinal thresholds otherwise drift only as fast as the mean of the scores.
    """
    onehot = jnp.asarray(layout.onehot)
    ordinal = jnp.asarray(layout.ordinal)
    n = s.eta.shape[0]
    phi_inv = jnp.linalg.inv(s.phi)
    count = jnp.where(ordinal, cut_mask.sum(-1), 1.0)  # priors on each item's shifted values
    c2 = coef_sd**2
    prec = n * phi_inv + jnp.diag((s.lam**2 * count / c2) @ onehot)
    tau_sum = jnp.where(cut_mask, ordm.thresholds(s.cuts.u, cut_mask), 0.0).sum(-1)
    item = jnp.where(ordinal, -s.lam * tau_sum, s.lam * s.nu) / c2
    delta = normal_from_precision(key, prec, -phi_inv @ s.eta.sum(0) + item @ onehot)
    shift = s.lam * delta[jnp.asarray(layout.factor_of)]
    u = s.cuts.u.at[:, 0].add(jnp.where(ordinal, shift, 0.0))
    return s._replace(
        eta=s.eta + delta,
        nu=jnp.where(ordinal, s.nu, s.nu - shift),
        cuts=s.cuts._replace(u=u),
    )


#: Priors of a factor covariance matrix the CFA sampler knows (``model.priors.factor_cov``).
FACTOR_COV_PRIORS = ("lkj", "inverse_wishart")


def factor_cov_draw(
    key: jax.Array, phi: jax.Array, eta: jax.Array, priors: Mapping[str, Any]
) -> jax.Array:
    """Update the covariance of zero-mean factor scores ``eta`` (N × k) under its prior.

    ``priors["factor_cov"]``: ``"inverse_wishart"`` — the conjugate draw from
    InverseWishart(k + 2 + N, var_scale I + eta'eta); ``"lkj"`` — LKJ(``lkj_eta``) correlations
    and InverseGamma(var_shape, var_scale) variances, by the independence Metropolis block
    :func:`simstudy.blocks.covariance.lkj_covariance` (proposal scale ``var_scale``).
    """
    k, n = eta.shape[1], eta.shape[0]
    b0 = priors["var_scale"]
    if priors["factor_cov"] == "inverse_wishart":
        return inverse_wishart(key, k + 2 + n, b0 * jnp.eye(k) + eta.T @ eta)
    return lkj_covariance(
        key, phi, eta.T @ eta, n, priors["lkj_eta"], "inverse_gamma", priors["var_shape"], b0, b0
    )


def factor_cov_prior_draw(key: jax.Array, k: int, priors: Mapping[str, Any]) -> jax.Array:
    """A draw of the factor covariance from its prior (for simulation-based calibration)."""
    b0 = priors["var_scale"]
    if priors["factor_cov"] == "inverse_wishart":
        return inverse_wishart(key, k + 2, b0 * jnp.eye(k))
    k_var, k_corr = jax.random.split(key)
    sd = jnp.sqrt(inv_gamma(k_var, priors["var_shape"], jnp.full((k,), b0)))
    chol = dist.LKJCholesky(k, priors["lkj_eta"]).sample(k_corr) if k > 1 else jnp.ones((1, 1))
    return (sd[:, None] * chol) @ (sd[:, None] * chol).T
