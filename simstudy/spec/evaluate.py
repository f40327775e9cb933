"""A compiled spec evaluated at a sweep state: per-row values, means, residuals, weights.

Shared by the sweep's steps (:mod:`simstudy.spec.steps`), the NumPyro model and the
imputation analyses: one home for what "the model at this state" means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import CovBlock, Equation

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout, Priors

#: Prefix of the data keys the measurement step adds (constants of a data set, not variables).
STATS = "stats:"


def full_values(lay: Layout, state: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """Per-row values of every variable: data, imputed values where missing, latents, REs."""
    vals = {k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:", STATS))}
    for name in lay.imputed:
        vals[name] = jnp.where(data[observed_key(name)], data[name], state["nodes"][name])
    for name in lay.latents:
        vals[name] = state["nodes"][name]
    for o in lay.ordered:  # the latent responses stand for the categories
        vals[o.name] = state["nodes"][o.name]
    for nom in lay.nominals:  # categories, drawn where missing, and their dummies
        vals[nom.name] = state["nodes"][nom.name]
        vals |= nom.dummy_values(vals[nom.name])
    for b in lay.blocks:
        if b.level is not None:
            per_row = state["re"][b.name][data[b.level]]
            for i, m in enumerate(b.members):
                vals[m] = per_row[:, i]
        else:
            for m in b.members:
                vals.setdefault(m, state["nodes"][m])
    return vals


def coef_vector(eq: Equation, free: jax.Array, positions: tuple[int, ...]) -> list[Any]:
    """All coefficients of an equation: free ones from ``free``, fixed ones as numbers."""
    out: list[Any] = [c.parameter.fixed for c in eq.coefficients]
    for k, i in enumerate(positions):
        out[i] = free[k]
    return out


def equation_mean(eq: Equation, coefs: list[Any], vals: Mapping[str, Any]) -> jax.Array:
    """``sum(coef x monomial) + sum(random effect x monomial)`` per row."""
    mean = 0.0
    for c, coef in zip(eq.coefficients, coefs, strict=True):
        mean = mean + coef * product(vals, c.factors)
    for r in eq.random:
        mean = mean + vals[r.effect] * product(vals, r.factors)
    return mean


def product(vals: Mapping[str, Any], factors: tuple[str, ...]) -> Any:
    """The product of ``factors``' values (1 for none: an intercept's column)."""
    out = 1.0
    for f in factors:
        out = out * vals[f]
    return out


def weight(eq: Equation, lay: Layout, data: Mapping[str, Any]) -> jax.Array:
    """0/1 per row: the row enters the equation (real, and its target known or drawn)."""
    real = data[ROW_REAL].astype(float)
    if eq.target in lay.imputed or eq.target in lay.latents:
        return real
    if any(o.name == eq.target for o in lay.ordered):  # responses drawn where missing too
        return real
    return real * data[observed_key(eq.target)].astype(float)


def variance(lay: Layout, state: Mapping[str, Any], i: int) -> Any:
    """The residual variance of equation ``i``: drawn, or its fixed value."""
    eq = lay.equations[i]
    return state["var"][eq.target] if lay.free_var[i] else eq.variance.fixed


def residual(lay: Layout, i: int, state: Mapping[str, Any], vals: Mapping[str, Any]) -> jax.Array:
    """Residual of equation ``i`` per row (unweighted)."""
    eq = lay.equations[i]
    coefs = coef_vector(eq, state["coef"][eq.target], lay.free_coefs[i])
    return vals[eq.target] - equation_mean(eq, coefs, vals)


def std_residual(
    lay: Layout, i: int, state: Mapping[str, Any], vals: Mapping[str, Any], w: jax.Array
) -> jax.Array:
    """Standardised, weighted residual of equation ``i`` per row."""
    return residual(lay, i, state, vals) * jnp.sqrt(w / variance(lay, state, i))


def jvp_columns(fn: Any, at: jax.Array, d: int) -> tuple[list[jax.Array], list[list[jax.Array]]]:
    """``fn(at)`` (a list of residual parts) and each part's derivative along each column.

    Returns ``(parts, jac)`` with ``jac[r][k]`` the derivative of part ``r`` along column ``k``
    of ``at`` (:func:`simstudy.blocks.linear.gaussian_terms`' arguments).
    """
    out: list[jax.Array] = []
    cols = []
    for k in range(d):
        tangent = jnp.zeros_like(at).at[..., k].set(1.0)
        out, col = jax.jvp(fn, (at,), (tangent,))
        cols.append(col)
    return list(out), [[cols[k][r] for k in range(d)] for r in range(len(out))]


def block_vectors(
    block: CovBlock, state: Mapping[str, Any], data: Mapping[str, Any], lay: Layout
) -> tuple[jax.Array, jax.Array]:
    """The vectors of a covariance block (rows or clusters by members) and their 0/1 weights."""
    if block.level is None:
        vals = full_values(lay, state, data)
        vectors = jnp.stack([vals[m] for m in block.members], -1)
        return vectors, data[ROW_REAL].astype(float)
    return state["re"][block.name], data[cluster_key(block.level)].astype(float)


def block_index(lay: Layout, name: str) -> int:
    """Position of covariance block ``name`` in the layout."""
    return next(k for k, b in enumerate(lay.blocks) if b.name == name)


def coef_priors(
    lay: Layout, priors: Priors, coef: Mapping[str, jax.Array], which: tuple[tuple[str, int], ...]
) -> tuple[jax.Array, tuple[float, ...], jax.Array]:
    """Values, prior means and SDs of the free coefficients ``(target, position)``."""
    if not which:
        return jnp.zeros(0), (), jnp.zeros(0)
    positions = {lay.equations[i].target: lay.free_coefs[i] for i in lay.general}
    equations = {lay.equations[i].target: lay.equations[i] for i in lay.general}
    means, sds = [], []
    for t, k in which:
        m, s = priors.equation_prior(equations[t], (positions[t][k],))
        means.append(m[0])
        sds.append(s[0])
    return jnp.stack([coef[t][k] for t, k in which]), tuple(means), jnp.asarray(sds)


def start_variance(name: str, lay: Layout, data: Mapping[str, Any], real: jax.Array) -> jax.Array:
    """A start value of ``name``'s variance: 1 for a latent, else its observed variance."""
    if name in lay.latents:
        return jnp.asarray(1.0)
    obs = data[observed_key(name)].astype(float) * real
    n = jnp.maximum(obs.sum(), 2.0)
    mean = (data[name] * obs).sum() / n
    return jnp.maximum(((data[name] - mean) ** 2 * obs).sum() / (n - 1), 1e-6)
