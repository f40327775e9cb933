"""Group moves for the latent interaction sampler: one scale move per latent factor.

See :func:`scale_move`; the draw of each scale is :func:`~simstudy.blocks.group.group_scale`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.group import group_scale

if TYPE_CHECKING:
    from simstudy.blocks.conjugate import IndicatorSums
    from simstudy.models.latent_interaction.gibbs import State
    from simstudy.models.latent_interaction.layout import Layout


def scale_move(
    noise: tuple[jax.Array, jax.Array],
    s: State,
    sums: IndicatorSums,
    layout: Layout,
    priors: Mapping[str, float],
) -> State:
    """Rescale each latent factor in turn along the direction the conditional updates cross slowly.

    For factor ``f`` the move ``eta_f -> g eta_f`` with its free loadings ``/ g``, its
    (residual) variance ``* g^2`` and the structural coefficients that keep every structural
    equation intact (eta_x: ``a1``, ``b1``, ``b3`` ``/ g`` and the eta_x means per category of
    ``d`` ``* g``; eta_m: ``a1 * g``, ``b2``, ``b3`` ``/ g``; eta_y: every ``b * g``) changes the
    likelihood only through the marker indicator of ``f``. Given the rest ``log p(g) = -A g^2 / 2
    + B g - C / g^2 + E log g``: ``A``, ``B`` from the marker's regression on the scores and the
    priors of the coefficients that grow with ``g``; ``C`` from those that shrink and the
    variance's inverse-gamma prior; ``E = n_up - n_down - 2 a0 - 1`` (Jacobians, Haar measure,
    variance prior; the score density cancels its Jacobian). The three moves do not commute
    (``b3`` scales with all of them), so they are made one after another, each from its own
    conditional (Liu & Sabatti 2000); an observed moderator has no scale to move. The marker's
    regression comes from ``sums`` (:class:`~simstudy.blocks.conjugate.IndicatorSums` of the
    scores before the moves: each move changes only its own factor's scores). ``noise``: a
    standard normal and a log-uniform draw per factor (``(3,)`` each).
    """
    z, log_u = noise
    for f in (0, 2) if layout.observed_moderator else (0, 1, 2):
        s = _factor_scale((z[f], log_u[f]), s, f, sums, layout, priors)
    return s


def _factor_scale(noise, s: State, f: int, sums: IndicatorSums, layout: Layout, priors) -> State:
    """The scale move of factor ``f`` (see :func:`scale_move`)."""
    c2 = priors["coef_sd"] ** 2
    a0, b0 = priors["latent_var_shape"], priors["latent_var_scale"]
    j = layout.items.index(f"{'xmy'[f]}1")  # the factor's marker
    shrink_b = np.zeros(s.b.shape[0], bool)  # slopes of eta_y that shrink with g
    shrink_b[[0, 2] if f == 0 else [1, 2] if f == 1 else []] = True
    if f == 0:
        up = s.shift[1:] if layout.nominal else jnp.zeros(0)
        down, variance = jnp.concatenate([s.a1[None], s.b[shrink_b]]), s.phi_x
    elif f == 1:
        up, down, variance = s.a1[None], s.b[shrink_b], s.psi_m
    else:
        up, down, variance = s.b, jnp.zeros(0), s.psi_y
    in_f = (layout.factor_of == f) & ~layout.marker
    loadings = jnp.where(in_f, s.lam, 0.0)
    n_down = down.shape[0] + int(in_f.sum())
    # sums over persons of w e^2 and w e (y - nu) for the marker (w = 1 / theta where observed)
    a = sums.ee[j] / s.theta[j] + (up**2).sum() / c2
    b = (sums.ye[j] + (sums.ybar[j] - s.nu[j]) * sums.e[j]) / s.theta[j]
    c = ((down**2).sum() + (loadings**2).sum()) / (2 * c2) + b0 / variance
    e = float(up.shape[0] - n_down - 2 * a0 - 1)
    g = group_scale(None, a, b, c, jnp.asarray(e), noise=noise)
    s = s._replace(
        eta=s.eta.at[f].multiply(g),
        lam=jnp.where(in_f, s.lam / g, s.lam),
        b=s.b * (g if f == 2 else jnp.where(shrink_b, 1 / g, 1.0)),
    )
    if f == 0:
        return s._replace(phi_x=s.phi_x * g**2, a1=s.a1 / g, shift=s.shift * g)
    if f == 1:
        return s._replace(psi_m=s.psi_m * g**2, a1=s.a1 * g)
    return s._replace(psi_y=s.psi_y * g**2)
