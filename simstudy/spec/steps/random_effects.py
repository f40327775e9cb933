"""The random effects of one ``(... | g)`` block, then their scale, shear and location moves.

The effects are drawn cluster by cluster from their normal conditional, read off by linearising
the standardised residuals of the equations they enter (row terms summed per cluster), with
the block's covariance as their prior. Under half-normal SDs each effect's scale then moves
with its variance; with two or more effects each ordered pair then shears (``u_row + a u_col``
with the covariance sheared: the covariance and the effects' correlation move together, which
the effect and covariance updates alone do in small steps when clusters are small); and each
effect's location moves between the effects and the fixed coefficient of the same monomial
(:mod:`simstudy.blocks.group`). The step owns the state's
``re`` entry of its block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import small_inverse
from simstudy.blocks.covariance import lkj_log_prior
from simstudy.blocks.group import (
    half_normal_scale_draw,
    location_shift_draw,
    rescale_covariance,
    shear_covariance,
    shear_draw,
)
from simstudy.blocks.linear import normal_step, segment_terms
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import cluster_key
from simstudy.spec.ir import CovBlock
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


def location_pairs(lay: Layout, block: CovBlock) -> tuple[tuple[int, int, int], ...]:
    """``(member, equation, free position)`` of each random effect with a movable location.

    A random effect whose monomial has a free fixed coefficient in its equation: its location
    can move between the two.
    """
    pairs = []
    for i in lay.general:
        eq = lay.equations[i]
        for r in eq.random:
            if r.effect not in block.members:
                continue
            for k, pos in enumerate(lay.free_coefs[i]):
                if eq.coefficients[pos].factors == r.factors:
                    pairs.append((block.members.index(r.effect), i, k))
    return tuple(pairs)


@dataclass(frozen=True)
class RandomEffects(StepDefaults):
    """One block of random effects with its scale and location moves."""

    block: CovBlock
    involved: tuple[int, ...]  # general equations holding one of its effects
    pairs: tuple[tuple[int, int, int], ...]  # location pairs (:func:`location_pairs`)
    start_key: int | None = None

    @classmethod
    def of(cls, lay: Layout, block: CovBlock, start_key: int) -> RandomEffects:
        """The step of a block with a grouping level."""
        involved = tuple(
            i
            for i in lay.general
            if any(r.effect in block.members for r in lay.equations[i].random)
        )
        return cls(block, involved, location_pairs(lay, block), start_key)

    @property
    def shears(self) -> tuple[tuple[int, int], ...]:
        """``(row, col)``: every ordered pair of the block's effects."""
        k = len(self.block.members)
        return tuple((r, c) for r in range(k) for c in range(k) if r != c)

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """Normals: one per cluster and effect, per effect's scale and location, per shear.

        Uniforms: one per shear (its acceptance).
        """
        b = self.block
        k = len(b.members)
        normal = {
            f"re:{b.name}": data[cluster_key(b.level)].shape[0] * k,
            f"scale:{b.name}": k,
            f"shift:{b.name}": k,
        }
        uniform = {}
        if self.shears:
            normal[f"shear:{b.name}"] = uniform[f"shear:{b.name}"] = len(self.shears)
        return NoiseSizes(normal=normal, uniform=uniform)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Effects near 0."""
        j = data[cluster_key(self.block.level)].shape[0]
        return {"re": {self.block.name: 0.1 * jax.random.normal(key, (j, len(self.block.members)))}}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """The effects, then (half-normal SDs) their scales, their shears, their locations."""
        name = self.block.name
        state = self._effects(state, data, noise.normal[f"re:{name}"], ctx)
        if ctx.priors.cov_prior == "half_normal":
            state = self._scales(state, data, noise.normal[f"scale:{name}"], ctx)
        if self.shears:
            z, u = noise.normal[f"shear:{name}"], noise.uniform[f"shear:{name}"]
            state = self._shears(state, data, z, jnp.log(u), ctx)
        return self._shifts(state, data, noise.normal[f"shift:{name}"], ctx)

    def _effects(self, state: State, data: Mapping[str, Any], z: jax.Array, ctx: Context):
        """Draw the random effects of the block, cluster by cluster."""
        lay, block = ctx.layout, self.block
        current = state["re"][block.name]
        group = data[block.level]
        n_clusters = current.shape[0]
        base = ev.full_values(lay, state, data)

        def residuals(u_rows):
            vals = {**base, **{m: u_rows[:, k] for k, m in enumerate(block.members)}}
            return [ev.std_residual(lay, i, state, vals, ctx.weights[i]) for i in self.involved]

        resid, jac = ev.jvp_columns(residuals, current[group], len(block.members))
        # residuals depend on u only through u[group]: differentiate w.r.t. the gathered rows
        grad, precision = segment_terms(resid, jac, group, n_clusters)
        prior_precision = small_inverse(state["cov"][block.name])
        precision = precision + prior_precision
        grad = grad + current @ prior_precision.T
        new = normal_step(current, grad, precision, z.reshape(current.shape))
        real = data[cluster_key(block.level)][:, None]
        return {**state, "re": {**state["re"], block.name: jnp.where(real, new, current)}}

    def _scales(self, state: State, data: Mapping[str, Any], z: jax.Array, ctx: Context):
        """Scale moves of each random effect of the block with its variance."""
        lay, block = ctx.layout, self.block
        for k, member in enumerate(block.members):
            base = ev.full_values(lay, state, data)

            def residuals(c, member=member, base=base, state=state):
                vals = {**base, member: c * base[member]}
                return jnp.stack(
                    [ev.std_residual(lay, i, state, vals, ctx.weights[i]) for i in self.involved],
                    -1,
                )

            resid, slope = jax.jvp(residuals, (jnp.asarray(1.0),), (jnp.asarray(1.0),))
            grad, precision = (slope * resid).sum(), (slope * slope).sum()
            cov = state["cov"][block.name]
            c = half_normal_scale_draw(
                grad, precision, cov[k, k], ctx.priors.cov_scale_of(block.name), z[k]
            )
            re = state["re"][block.name].at[:, k].multiply(c)
            state = {
                **state,
                "re": {**state["re"], block.name: re},
                "cov": {**state["cov"], block.name: rescale_covariance(cov, k, c)},
            }
        return state

    def _shears(self, state, data: Mapping[str, Any], z: jax.Array, log_u: jax.Array, ctx):
        """Shear moves ``u_row -> u_row + a u_col`` with the covariance (blocks.group)."""
        lay, block, priors = ctx.layout, self.block, ctx.priors
        a_prior, b_prior = priors.block_variance_prior(block)
        for n, (row, col) in enumerate(self.shears):
            base = ev.full_values(lay, state, data)
            moved, by = block.members[row], block.members[col]

            def residuals(a, moved=moved, by=by, base=base, state=state):
                vals = {**base, moved: base[moved] + a * base[by]}
                return jnp.stack(
                    [ev.std_residual(lay, i, state, vals, ctx.weights[i]) for i in self.involved],
                    -1,
                )

            resid, slope = jax.jvp(residuals, (jnp.asarray(0.0),), (jnp.asarray(1.0),))
            cov = state["cov"][block.name]

            def log_prior(c):
                return lkj_log_prior(c, priors.lkj_eta, priors.cov_prior, a_prior, b_prior)

            def ratio(a, cov=cov, row=row, col=col):
                return log_prior(shear_covariance(cov, row, col, a)) - log_prior(cov)

            a = shear_draw((slope * resid).sum(), (slope * slope).sum(), ratio, z[n], log_u[n])
            effects = state["re"][block.name]
            state = {
                **state,
                "re": {**state["re"], block.name: effects.at[:, row].add(a * effects[:, col])},
                "cov": {**state["cov"], block.name: shear_covariance(cov, row, col, a)},
            }
        return state

    def _shifts(self, state: State, data: Mapping[str, Any], z: jax.Array, ctx: Context):
        """Location moves between each random effect and its fixed coefficient."""
        lay, block = ctx.layout, self.block
        cov_inverse = small_inverse(state["cov"][block.name])
        weight = data[cluster_key(block.level)].astype(float)
        for member, i, k in self.pairs:
            target = lay.equations[i].target
            coef = state["coef"][target]
            effects = state["re"][block.name]
            (mean,), (sd,) = ctx.priors.equation_prior(lay.equations[i], (lay.free_coefs[i][k],))
            d = location_shift_draw(
                effects, weight, cov_inverse, member, coef[k] - mean, sd, z[member]
            )
            state = {
                **state,
                "coef": {**state["coef"], target: coef.at[k].add(d)},
                "re": {**state["re"], block.name: effects.at[:, member].add(-d)},
            }
        return state
