"""Discrete draws from pre-drawn noise: a category per row, and category probabilities.

Both are bounded: the category is the inverse CDF of its logits' softmax at one uniform per
row (no loop), the probabilities normalised gamma variates from
:func:`~simstudy.blocks.conjugate.unit_gamma` (a loop of at most a fixed number of rounds).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import unit_gamma


def categorical_draw(logits: jax.Array, uniform: jax.Array) -> jax.Array:
    """A draw from ``softmax(logits)`` over the last axis (indices 0..K-1) per row.

    ``uniform``: U(0, 1) noise, one per row (``logits``'s shape without its last axis). The
    index is the number of cumulative probabilities below the uniform (the last category
    takes what rounding leaves above the K-1'th).
    """
    cumulative = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)[..., :-1]
    return jnp.sum(uniform[..., None] >= cumulative, axis=-1)


def dirichlet_draw(
    key: jax.Array,
    alpha: jax.Array,
    tries: int,
    noise: tuple[jax.Array, jax.Array, jax.Array],
) -> jax.Array:
    """A Dirichlet(``alpha``) draw from pre-drawn noise (``unit_gamma``'s ``noise``).

    For ``alpha >= 1`` (counts plus a uniform prior's ones): smaller shapes can underflow every
    variate to 0 in float32.
    """
    g = unit_gamma(key, alpha, tries, noise)
    return g / g.sum(-1, keepdims=True)
