"""Ordinal (and binary) indicators: thresholds, latent responses and the logit correction.

An ordinal indicator ``y in {0, ..., K-1}`` is a cut latent response
``y* = nu + lambda * eta + e`` with ``y = k`` when ``tau_k-1 < y* <= tau_k`` (``tau_-1 = -inf``,
``tau_K-1 = +inf``), ``nu = 0`` and ``e`` standard normal (probit) or standard logistic
(logit): the "theta" parameterisation, residual variance fixed at 1 or pi^2 / 3.

The Gibbs-type samplers treat the latent responses as data augmentation (Albert & Chib 1993):

1. thresholds of each item by a random-walk Metropolis step on ``(tau_0, log gaps)`` with the
   latent responses integrated out (Cowles 1996's point: thresholds drawn given ``y*`` barely
   move), proposal scale adapted during warm-up only;
2. ``y*`` from its truncated normal / truncated logistic full conditional (inverse CDF);
3. then the caller's normal updates of scores and loadings use ``y*`` as a continuous
   indicator. For the probit link they are exact. For the logit link the normal update treats
   the logistic residual as N(0, pi^2 / 3) and is used as an independence Metropolis proposal,
   corrected by :func:`logit_correction` (the density ratio logistic / normal of the residual).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import small_cholesky

LINKS = ("probit", "logit")
#: Residual variance of the latent response per link (theta parameterisation).
RESIDUAL_VAR = {"probit": 1.0, "logit": math.pi**2 / 3}
#: A bound this far out is infinite to every link's CDF (in float32), and has finite slopes.
FAR = 1e4
#: Acceptance rate the threshold proposals are tuned to during warm-up.
TARGET_ACCEPT = 0.3


def _log_cdf(link: str, x: jax.Array) -> jax.Array:
    if link == "probit":
        return jax.scipy.special.log_ndtr(x)
    return jax.nn.log_sigmoid(x)


def log_interval(link: str, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """``log(F(hi) - F(lo))`` for the link's CDF ``F``, stable in both tails (``lo < hi``).

    Infinite bounds (the first and last categories') are taken at +-:data:`FAR`, where ``F``
    is 0 or 1 in float32 all the same: their derivatives are then 0, not NaN (HMC's
    gradients).
    """
    lo, hi = jnp.clip(lo, -FAR, FAR), jnp.clip(hi, -FAR, FAR)
    flip = lo > 0  # both in the upper tail: use F(hi) - F(lo) = F(-lo) - F(-hi)
    a = jnp.where(flip, -hi, lo)
    b = jnp.where(flip, -lo, hi)
    la, lb = _log_cdf(link, a), _log_cdf(link, b)
    return lb + jnp.log1p(-jnp.exp(jnp.minimum(la - lb, 0.0)))


def thresholds(u: jax.Array, cut_mask: jax.Array) -> jax.Array:
    """Ordered thresholds from ``u = (tau_0, log gaps)``; unused slots (mask False) are +inf."""
    steps = jnp.concatenate([u[..., :1], jnp.exp(u[..., 1:])], -1)
    return jnp.where(cut_mask, jnp.cumsum(steps, -1), jnp.inf)


def unconstrain(tau: jax.Array) -> jax.Array:
    """The inverse of :func:`thresholds` on the used slots (unused slots of ``tau``: any value)."""
    gaps = jnp.diff(tau, axis=-1)
    return jnp.concatenate([tau[..., :1], jnp.log(jnp.where(gaps > 0, gaps, 1.0))], -1)


def bounds(tau: jax.Array, y: jax.Array, items_first: bool = False) -> tuple[jax.Array, jax.Array]:
    """Lower and upper cut of each response's category (``tau``: p × (K-1), ``y``: N × p).

    ``items_first``: ``y`` is p × N (and so are the cuts), each item's rows contiguous; the
    cuts are then picked by comparisons, no gather (a batched gather of a chain's thresholds
    is several times slower on XLA's CPU backend).
    """
    if items_first:
        cat = y.astype(jnp.int32)
        lo = jnp.full(y.shape, -jnp.inf, tau.dtype)
        hi = jnp.full(y.shape, jnp.inf, tau.dtype)
        for k in range(tau.shape[-1]):  # cut k between categories k and k + 1
            lo = jnp.where(cat == k + 1, tau[:, k : k + 1], lo)
            hi = jnp.where(cat == k, tau[:, k : k + 1], hi)
        return lo, hi
    p = tau.shape[0]
    ext = jnp.concatenate([jnp.full((p, 1), -jnp.inf), tau, jnp.full((p, 1), jnp.inf)], -1)
    cat = y.astype(jnp.int32)
    items = jnp.arange(p)[None, :]
    return ext[items, cat], ext[items, cat + 1]


class ThresholdState(NamedTuple):
    """Unconstrained thresholds (p × d, d = K-1) and each item's proposal.

    The proposal: a log scale (p,), the running mean (p × d) and covariance (p × d × d) learnt
    in warm-up.
    """

    u: jax.Array
    log_step: jax.Array
    mean: jax.Array
    cov: jax.Array


def threshold_start(u: jax.Array) -> ThresholdState:
    """A proposal state for thresholds ``u``: unit scale, covariance 0.01 I."""
    p, d = u.shape
    return ThresholdState(u, jnp.zeros(p), u, jnp.broadcast_to(0.01 * jnp.eye(d), (p, d, d)))


def threshold_step(
    key: jax.Array | None,
    state: ThresholdState,
    link: str,
    y: jax.Array,
    weight: jax.Array,
    mean: jax.Array,
    cut_mask: jax.Array,
    prior_sd: float,
    adapt: bool,
    moving: jax.Array | None = None,
    scale: jax.Array | float = 1.0,
    noise: tuple[jax.Array, jax.Array] | None = None,
    items_first: bool = False,
) -> ThresholdState:
    """One Metropolis update of every item's thresholds, latent responses integrated out.

    The proposal is adaptive Metropolis (Haario et al. 2001) frozen after warm-up:
    ``u + exp(log_step) * 2.38 / sqrt(d) * chol(cov) z``, with ``cov`` the running covariance
    of ``u`` and ``log_step`` tuned towards :data:`TARGET_ACCEPT`, both only while ``adapt``.

    Parameters
    ----------
    y, weight
        Categories (N × p) and 1.0 where observed and ordinal, else 0.0.
    mean
        ``nu + lambda * eta`` of each latent response (N × p).
    cut_mask
        p × (K-1): which thresholds exist for each item.
    prior_sd
        Thresholds are a priori N(0, prior_sd^2), restricted to be increasing.
    adapt
        Tune the proposal scale towards :data:`TARGET_ACCEPT` (warm-up only).
    moving
        p × (K-1): the slots that move (None: every used one); e.g. all but a first
        threshold fixed at 0 where the intercept is free.
    scale
        The latent responses' SD around ``mean`` (N × p, probit; 1: the link's own), where
        ``mean`` and ``scale`` are a response's conditional given more than its own equation
        (a predictor's, given its children too).
    noise
        Standard normals of ``state.u``'s shape and a U(0, 1) per item, drawn beforehand
        (then ``key`` is unused).
    items_first
        ``y``, ``weight``, ``mean`` and ``scale`` are p × N (:func:`bounds`): under a batch of
        chains several times faster on XLA's CPU backend than N × p, whose items are the
        minor axis.
    """
    moving = cut_mask if moving is None else moving
    if noise is None:
        k_prop, k_acc = jax.random.split(key)
        noise = (
            jax.random.normal(k_prop, state.u.shape),
            jax.random.uniform(k_acc, moving.shape[:1]),
        )
    z_prop, u_acc = noise

    def log_post(u):
        tau = thresholds(u, cut_mask)
        lo, hi = bounds(tau, y, items_first)
        cells = weight * log_interval(link, (lo - mean) / scale, (hi - mean) / scale)
        loglik = cells.sum(-1 if items_first else 0)
        used = cut_mask.astype(float)
        prior = (-0.5 * used * (jnp.where(cut_mask, tau, 0.0) / prior_sd) ** 2).sum(-1)
        jacobian = (used[:, 1:] * u[:, 1:]).sum(-1)
        return loglik + prior + jacobian

    d = state.u.shape[-1]
    step = jnp.exp(state.log_step) * 2.38 / jnp.sqrt(moving.sum(-1).clip(1))
    chol = small_cholesky(state.cov + 1e-8 * jnp.eye(d))
    z = jnp.einsum("pij,pj->pi", chol, z_prop)
    proposal = state.u + step[:, None] * moving * z
    log_ratio = log_post(proposal) - log_post(state.u)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    accept = jnp.log(u_acc) < log_ratio
    u = jnp.where(accept[:, None], proposal, state.u)
    if not adapt:
        return state._replace(u=u)
    rate = jnp.exp(jnp.minimum(log_ratio, 0.0))
    w = 0.02  # memory of the running moments, ~50 sweeps
    dev = u - state.mean
    cov = state.cov + w * (dev[:, :, None] * dev[:, None, :] - state.cov)
    cov = jnp.where(moving[:, :, None] & moving[:, None, :], cov, 0.01 * jnp.eye(d))
    return ThresholdState(
        u, state.log_step + 0.1 * (rate - TARGET_ACCEPT), state.mean + w * dev, cov
    )


def latent_responses(
    key: jax.Array | None,
    link: str,
    y: jax.Array,
    tau: jax.Array,
    mean: jax.Array,
    scale: jax.Array | float = 1.0,
    noise: jax.Array | None = None,
    items_first: bool = False,
) -> jax.Array:
    """Latent responses ``y*`` from their full conditional.

    The link's distribution around ``mean`` (times ``scale``: a probit response's conditional
    SD given more than its own equation), cut to the category of ``y`` (where ``y`` is
    missing the draw is meaningless but finite). ``noise``: a U(0, 1) per response, drawn
    beforehand (then ``key`` is unused). ``items_first``: ``y``, ``mean`` and ``scale`` are
    p × N (:func:`bounds`).
    """
    if noise is None:
        noise = jax.random.uniform(key, mean.shape)
    lo, hi = bounds(tau, y, items_first)
    a, b = (lo - mean) / scale, (hi - mean) / scale
    flip = a > 0  # draw in the mirrored interval when it lies in the upper tail
    a, b = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    if link == "probit":
        z = _truncated_normal(noise, a, b)
    else:
        fa, fb = jax.nn.sigmoid(a), jax.nn.sigmoid(b)
        u = fa + (fb - fa) * noise
        u = jnp.clip(u, jnp.finfo(u.dtype).tiny, 1 - jnp.finfo(u.dtype).eps)
        z = jnp.clip(jnp.log(u) - jnp.log1p(-u), a, b)
    return mean + scale * jnp.where(flip, -z, z)


def _truncated_normal(uniform: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Standard normal cut to ``(a, b)`` with ``a <= 0``, by inverse CDF on the lower tail.

    ``jax.random.truncated_normal`` works through ``erf``, which is exactly -1 in float32
    below about -5.5, and then returns the float limits. Here the CDF goes through ``ndtr``
    (accurate to ~1e-37); far below that an exponential approximation of the tail is used.
    ``uniform``: a U(0, 1) per draw, for whichever of the two it takes.
    """
    fa, fb = jax.scipy.special.ndtr(a), jax.scipy.special.ndtr(b)
    u = fa + (fb - fa) * uniform
    z = jax.scipy.special.ndtri(jnp.clip(u, jnp.finfo(u.dtype).tiny, 1.0))
    far = b < -12.0  # P(Z < -12) ~ 2e-33: use z = b - Exp / |b| there
    tiny = jnp.finfo(uniform.dtype).tiny
    z = jnp.where(far, b + jnp.log(jnp.maximum(uniform, tiny)) / jnp.abs(b), z)
    return jnp.clip(z, a, b)


def logit_correction(residual: jax.Array) -> jax.Array:
    """log(standard logistic density / N(0, pi^2 / 3) density) of a latent response residual."""
    r = jnp.abs(residual)
    log_logistic = -r - 2.0 * jnp.log1p(jnp.exp(-r))
    log_normal = -0.5 * residual**2 / RESIDUAL_VAR["logit"] - 0.5 * jnp.log(
        2 * jnp.pi * RESIDUAL_VAR["logit"]
    )
    return log_logistic - log_normal


def sample_categories(
    key: jax.Array, link: str, mean: jax.Array, tau: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Simulate ``(y, y*)``: latent responses around ``mean`` (N × p) cut at ``tau``.

    ``tau`` is p × (K-1), +inf in unused slots.
    """
    if link == "probit":
        e = jax.random.normal(key, mean.shape)
    else:
        e = jax.random.logistic(key, mean.shape)
    ystar = mean + e
    y = (ystar[:, :, None] > tau[None]).sum(-1)
    return y.astype(mean.dtype), ystar


def category_log_prob(link: str, tau: jax.Array, y: jax.Array, eta: jax.Array) -> jax.Array:
    """``log P(y | eta)`` per response, ``y`` of one item with thresholds ``tau`` (K-1,).

    Binary items take one CDF, ``F(+-(eta - tau))``, where :func:`log_interval` takes two.
    """
    if tau.shape[-1] == 1:
        sign = 2.0 * (y > 0) - 1.0
        return _log_cdf(link, sign * (eta - tau[..., 0]))
    lo, hi = bounds(tau[None, :], y[:, None])
    return log_interval(link, lo[:, 0] - eta, hi[:, 0] - eta)


def _log_density(link: str, x: jax.Array) -> jax.Array:
    """The link's log density at ``x`` (standard normal or logistic)."""
    if link == "probit":
        return -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
    return jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x)


def category_terms(
    link: str, tau: jax.Array, y: jax.Array, eta: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`category_log_prob`, its derivative in ``eta`` and minus its second derivative.

    Written out (a Newton step's per-row terms; nested forward-mode derivatives of ``log_ndtr``
    cost several times as much). With ``P = F(b) - F(a)``, ``a = lo - eta``, ``b = hi - eta``
    and ``r_x = f(x) / P``: ``l' = r_a - r_b`` and ``-l'' = l'^2 - (f'(a) r_a - f'(b) r_b)
    / f``, where ``f'(x) / f(x)`` is ``-x`` (probit) or ``1 - 2 F(x)`` (logit). Binary items
    take one CDF, ``F(z)`` at ``z = s (eta - tau)``: ``l' = s r``, ``-l'' = r (r + z)``
    (probit) or ``F(z) F(-z)`` (logit). The curvature is floored at 0 (log-concave in theory).
    """
    if tau.shape[-1] == 1:
        sign = 2.0 * (y > 0) - 1.0
        z = sign * (eta - tau[..., 0])
        if link == "probit":
            log_p = jax.scipy.special.log_ndtr(z)
            r = jnp.exp(_log_density(link, z) - log_p)
            return log_p, sign * r, jnp.clip(r * (r + z), 0.0, 1.0)
        p = jax.nn.sigmoid(-z)
        return jax.nn.log_sigmoid(z), sign * p, p * (1.0 - p)
    lo, hi = bounds(tau[None, :], y[:, None])
    a = jnp.clip(lo[:, 0] - eta, -FAR, FAR)
    b = jnp.clip(hi[:, 0] - eta, -FAR, FAR)
    log_p = log_interval(link, a, b)
    r_a = jnp.exp(_log_density(link, a) - log_p)
    r_b = jnp.exp(_log_density(link, b) - log_p)
    d1 = r_a - r_b
    if link == "probit":
        slope_a, slope_b = -a, -b
    else:
        slope_a, slope_b = 1.0 - 2.0 * jax.nn.sigmoid(a), 1.0 - 2.0 * jax.nn.sigmoid(b)
    return log_p, d1, jnp.maximum(d1**2 - (slope_b * r_b - slope_a * r_a), 0.0)
