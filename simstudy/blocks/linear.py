"""Normal blocks read off by linearisation: any unknown that enters every mean affinely.

The log density of a block ``b`` given everything else is ``-||s(b)||^2 / 2`` for a vector
``s`` of standardised residuals (each residual divided by its standard deviation, times the
square root of its 0/1 weight) that is affine in ``b``: ``s(b) = s0 + G (b - b0)``. So the
full conditional is normal with precision ``G'G`` and mean ``b0 - (G'G)^-1 G's0``, and
``G = ds/db`` is exact by forward-mode differentiation (``jax.jacfwd``; ``d`` passes for a
block of ``d`` values). A prior ``N(m, V)`` adds ``V^-1`` to the precision and
``V^-1 (b0 - m)`` to the gradient. Coefficients of an equation, latent scores, random effects
and missing values are all such blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import UNROLLED_MAX, normal_from_precision


def linearise(fn: Callable[[jax.Array], jax.Array], at: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``fn(at)`` and its Jacobian ``d fn / d at`` (``(m,)`` and ``(m, d)``) by forward mode."""
    return fn(at), jax.jacfwd(fn)(at)


def normal_step(
    current: jax.Array,
    grad: jax.Array,
    precision: jax.Array,
    z: jax.Array,
) -> jax.Array:
    """Draw a normal block given its precision and the gradient term at ``current``.

    ``grad = G's0 + V^-1 (b0 - m)`` and ``precision = G'G + V^-1`` (batched over any leading
    axes); ``z`` is standard normal noise of ``current``'s shape. Returns
    ``b0 - P^-1 grad + L^-T z`` (``P = L L'``), a draw from the block's full conditional.
    """
    d = current.shape[-1]
    if d <= UNROLLED_MAX:  # per-element sums: XLA's CPU dot over many tiny matrices is slow
        rows = [sum(precision[..., i, j] * current[..., j] for j in range(d)) for i in range(d)]
        rhs = jnp.stack(rows, -1) - grad
    else:
        rhs = jnp.einsum("...ij,...j->...i", precision, current) - grad
    return normal_from_precision(None, precision, rhs, z)


def gaussian_terms(
    resid: Sequence[jax.Array], jac: Sequence[Sequence[jax.Array]]
) -> tuple[jax.Array, jax.Array]:
    """``(G's0, G'G)`` from ``m`` residual parts and, per part, its ``d`` derivatives.

    ``resid[r]`` is a residual per row (any shape ``(...)``), ``jac[r][k]`` its derivative
    along the block's ``k``-th value; returns ``(..., d)`` and ``(..., d, d)``. Parts are kept
    apart, not stacked: for a small block the sums are written out per element, one fused loop
    (XLA's CPU dot over a batch of tiny matrices, one per row, is several times slower, and a
    stacked copy of the parts costs a pass of its own).
    """
    m, d = len(resid), len(jac[0])
    if d > UNROLLED_MAX or m > 4 * UNROLLED_MAX:
        g = jnp.stack([jnp.stack(list(row), -1) for row in jac], -2)  # (..., m, d)
        s0 = jnp.stack(list(resid), -1)
        return jnp.einsum("...md,...m->...d", g, s0), jnp.einsum("...md,...me->...de", g, g)
    grad = jnp.stack([sum(jac[r][k] * resid[r] for r in range(m)) for k in range(d)], -1)
    entry = [[sum(jac[r][i] * jac[r][j] for r in range(m)) for j in range(d)] for i in range(d)]
    return grad, jnp.stack([jnp.stack(row, -1) for row in entry], -2)


def row_cross_products(
    columns: list[Any], weight: jax.Array, target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(X'WX, X'Wt)`` of design columns (each ``(N,)``, or a number for a constant one).

    For a few columns the sums over rows are written out per entry (one fused loop): XLA's CPU
    dot of an ``(N, d)`` design is slower for small ``d``.
    """
    if len(columns) > UNROLLED_MAX:
        design = jnp.stack([c * jnp.ones_like(weight) for c in columns], -1)
        weighted = design * weight[:, None]
        return design.T @ weighted, weighted.T @ target
    weighted = [c * weight for c in columns]
    cross = jnp.stack([jnp.stack([(a * b).sum() for b in weighted]) for a in columns])
    return cross, jnp.stack([(b * target).sum() for b in weighted])


def segment_terms(
    resid: Sequence[jax.Array],
    jac: Sequence[Sequence[jax.Array]],
    segments: jax.Array,
    n_segments: int,
) -> tuple[jax.Array, jax.Array]:
    """:func:`gaussian_terms` summed within segments (clusters): shapes (J, d), (J, d, d).

    For a small block each entry is summed on its own and only the (J,) sums are stacked: a
    stack of per-row terms along a minor axis, then one sum, cost the GLMM sweep's random
    effects a quarter of their time (XLA's CPU code; the same held the ordered step's cluster
    moves ten times slower).
    """
    m, d = len(resid), len(jac[0])

    def seg(x):
        return jax.ops.segment_sum(x, segments, num_segments=n_segments)

    if d > UNROLLED_MAX or m > 4 * UNROLLED_MAX:
        grad, precision = gaussian_terms(resid, jac)
        return seg(grad), seg(precision)
    grad = jnp.stack([seg(sum(jac[r][k] * resid[r] for r in range(m))) for k in range(d)], -1)
    entry = {
        (i, j): seg(sum(jac[r][i] * jac[r][j] for r in range(m)))
        for i in range(d)
        for j in range(i, d)
    }
    rows = [[entry[min(i, j), max(i, j)] for j in range(d)] for i in range(d)]
    return grad, jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def second_difference(
    fn: Callable[[jax.Array], jax.Array], at: jax.Array, direction: jax.Array
) -> jax.Array:
    """``fn(at + 2h) - 2 fn(at + h) + fn(at)``: zero (up to rounding) where ``fn`` is affine.

    The debug check behind every block this module draws: a mean that is not affine in its
    block would make the normal conditional wrong without any error.
    """
    return fn(at + 2 * direction) - 2 * fn(at + direction) + fn(at)


def is_affine(
    fn: Callable[[jax.Array], Any], at: jax.Array, direction: jax.Array, rtol: float = 1e-6
) -> bool:
    """Whether ``fn`` is affine along ``direction`` at ``at`` (second difference ≈ 0)."""
    diff = second_difference(fn, at, direction)
    scale = jnp.maximum(jnp.max(jnp.abs(fn(at))), 1.0)
    return bool(jnp.max(jnp.abs(diff)) <= rtol * scale * 100)
