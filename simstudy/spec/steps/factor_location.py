"""Location moves of latent factors: a factor's scores shifted with its indicators' intercepts.

The move ``f -> f + c`` (on the rows that exist) goes with the intercept of every
indicator of ``f`` updated from sums, ``nu_j -> nu_j - lambda_j c``, or for an ordered item whose
intercept is fixed (lavaan's theta parameterisation) with its thresholds and latent responses,
``tau_jk -> tau_jk + lambda_j c`` and ``u*_j -> u*_j + lambda_j c`` (every response stays in its
category, and its residual as it was; the hand-written CFA sampler's location move), so those
indicators' likelihood does not move: an intercept (or thresholds) and its factor's mean
scores otherwise trade places one small step per sweep (intercepts' ESS in the low hundreds on
the latent interaction model; the ordinal CFA's middle thresholds slowest). What
does move, all of it Gaussian in ``c``: the factor's own prior (its equation's residuals, or its
row of a covariance block), the intercepts' and thresholds' normal priors (the thresholds' order
is kept by a shift), and the residuals of every other
equation holding ``f`` (by ``c`` times the derivative of its mean, a path or
``b + sum b_k g_k`` with product terms). So ``c`` is drawn exactly from its normal conditional
(translations have Jacobian 1). A factor gets a location move when it has indicators updated
from sums (each with a free intercept, or ordered with a fixed one), a prior (an equation or a
covariance block), no random term holding it and no term holding it twice.

Scale moves are :mod:`.factor_scale`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks import ordinal
from simstudy.blocks.conjugate import small_inverse
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL
from simstudy.spec.ir import CovBlock, Equation, Ordered
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults
from simstudy.spec.steps.measurement import Measurement, indicator_priors

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


@dataclass(frozen=True)
class FactorLocation(StepDefaults):
    """One latent factor's location move: what it shifts (positions as the sweep stores them)."""

    factor: str
    block: tuple[str, int] | None  # (block name, member) where the factor's prior is a block's
    equations: tuple[int, ...]  # general equations whose residuals move: its own, those holding it
    indicators: tuple[bool, ...]  # per indicator updated from sums: it measures the factor
    thresholds: tuple[Ordered, ...] = ()  # its ordered indicators with a fixed intercept

    @property
    def name(self) -> str:
        """Name of its normal."""
        return f"factor_location:{self.factor}"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A normal for the draw of ``c``."""
        return NoiseSizes(normal={self.name: 1})

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Draw the shift ``c`` from its normal conditional; move the scores and intercepts."""
        return shift_factor(ctx.layout, state, data, self, ctx, noise.normal[self.name][0])


def factor_locations(
    equations: Sequence[Equation],
    general: Sequence[int],
    blocks: Sequence[CovBlock],
    latents: Sequence[str],
    measurement: Measurement | None,
    ordered: Sequence[Ordered] = (),
) -> tuple[FactorLocation, ...]:
    """The location move of every latent factor that can have one (see the module docstring)."""
    if measurement is None:
        return ()
    out = []
    for f in measurement.factors:
        move = _factor_location(f, equations, general, blocks, measurement, ordered)
        if move is not None and f in latents:
            out.append(move)
    return tuple(out)


def _factor_location(f, equations, general, blocks, measurement, ordered) -> FactorLocation | None:
    moved, own = [], False
    for i in general:
        eq = equations[i]
        if any(f in r.factors or r.effect == f for r in eq.random):
            return None
        if any(c.factors.count(f) > 1 for c in eq.coefficients):
            return None
        if eq.target == f:
            own = True
            moved.append(i)
        elif any(f in c.factors for c in eq.coefficients):
            moved.append(i)
    block = None
    if not own:
        block = next(
            ((b.name, b.members.index(f)) for b in blocks if b.level is None and f in b.members),
            None,
        )
        if block is None:
            return None
    mine = np.asarray(measurement.factor_of) == measurement.factors.index(f)
    pinned = mine & measurement.fixed_intercept
    if (pinned & ~measurement.responses).any():  # a fixed intercept the move would shift
        return None
    shifted = tuple(
        next(o for o in ordered if o.name == measurement.targets[j]) for j in np.flatnonzero(pinned)
    )
    return FactorLocation(f, block, tuple(moved), tuple(bool(x) for x in mine & ~pinned), shifted)


def shift_factor(
    lay: Layout, state: State, data: Mapping[str, Any], move: FactorLocation, ctx: Context, z
) -> State:
    """The location move of one latent factor at standard normal ``z``.

    ``log p(c) = -P c^2 / 2 + h c`` given the rest; each part below adds to ``P`` and ``h``.
    """
    base = ev.full_values(lay, state, data)
    real = data[ROW_REAL].astype(float)
    precision, linear = jnp.asarray(0.0), jnp.asarray(0.0)
    if move.equations:  # residuals s0 + c * slope, exactly: the factor enters them linearly

        def residuals(c):
            vals = {**base, move.factor: base[move.factor] + c * real}
            return [ev.std_residual(lay, i, state, vals, ctx.weights[i]) for i in move.equations]

        resid, slope = jax.jvp(residuals, (jnp.asarray(0.0),), (jnp.asarray(1.0),))
        # one sum of the equations' terms per row: a single fused loop, no stacked copy
        precision = sum(s * s for s in slope).sum()
        linear = -sum(s * r for s, r in zip(slope, resid, strict=True)).sum()
    if move.block is not None:
        name, member = move.block
        block = lay.blocks[ev.block_index(lay, name)]
        cov_inverse = small_inverse(state["cov"][name])
        vectors = jnp.stack([base[m] for m in block.members], -1)
        precision = precision + real.sum() * cov_inverse[member, member]
        linear = linear - (real * (vectors @ cov_inverse[:, member])).sum()
    mask = jnp.asarray(move.indicators, dtype=float)
    lam, nu = state["meas"]["lam"], state["meas"]["nu"]
    (mean, sd), _ = indicator_priors(lay.measurement, ctx.priors)
    precision = precision + (mask * lam**2 / sd**2).sum()
    linear = linear + (mask * lam * (nu - mean) / sd**2).sum()
    targets = lay.measurement.targets
    item = [targets.index(o.name) for o in move.thresholds]
    for o, j in zip(move.thresholds, item, strict=True):  # tau_k + lam c ~ N(0, coef_sd^2)
        tau = ordinal.thresholds(state["thr"][o.name].u, np.ones((1, o.categories - 1), bool))
        precision = precision + (o.categories - 1) * lam[j] ** 2 / ctx.priors.coef_sd**2
        linear = linear - lam[j] * tau.sum() / ctx.priors.coef_sd**2
    c = linear / precision + z / jnp.sqrt(precision)
    nodes = {**state["nodes"], move.factor: state["nodes"][move.factor] + c * real}
    thr = dict(state["thr"])
    for o, j in zip(move.thresholds, item, strict=True):
        nodes[o.name] = nodes[o.name] + lam[j] * c * real
        u = thr[o.name].u
        thr[o.name] = thr[o.name]._replace(u=u.at[:, 0].add(lam[j] * c))
    meas = {**state["meas"], "nu": nu - mask * lam * c}
    return {**state, "nodes": nodes, "meas": meas, "thr": thr}
