"""Scale and location moves of latent factors: a factor's scores moved with its parameters.

**Scale.**

For factor ``f`` the move ``f -> g f`` (on the rows that exist) goes with

- its variance ``* g^2`` (its residual variance, or its row and column of a covariance block);
- every free coefficient of its own equation ``* g`` ("up": the equation stays intact);
- every free coefficient of a term holding ``f`` in another equation ``/ g`` ("down": loadings,
  structural paths, product terms), so those terms do not move;

so the likelihood changes only through the terms holding ``f`` with a *fixed* coefficient — the
marker loading under marker identification. Given the rest, ``log p(g) = -A g^2 / 2 + B g -
C / g^2 + E log g`` (Liu & Sabatti 2000, Haar measure ``dg / g``): ``A``, ``B`` from the
fixed-coefficient terms' residuals and the priors of the coefficients that grow, ``C`` from
those that shrink and an inverse-gamma variance prior, ``E = n_up - n_down - 1`` plus the
variance prior's power (``+1`` for a half-normal SD, ``-2 a`` for an InverseGamma(a, b)
variance); the scores' density cancels their Jacobian. The draw is
:func:`~simstudy.blocks.group.group_scale`. Moves of several factors do not commute (a product
term scales with both), so they are made one after another, each from its own conditional.

A factor gets a move when its scale is not pinned (a free variance), its own equation has no
fixed non-zero coefficient and no random term, and every term holding it holds it once and
outside a random term; the others keep the plain updates.

**Location.** The move ``f -> f + c`` (on the rows that exist) goes with the intercept of every
indicator of ``f`` updated from sums, ``nu_j -> nu_j - lambda_j c``, so those indicators'
likelihood does not move: an intercept and its factor's mean scores otherwise trade places one
small step per sweep (intercepts' ESS in the low hundreds on the latent interaction model). What
does move, all of it Gaussian in ``c``: the factor's own prior (its equation's residuals, or its
row of a covariance block), the intercepts' normal priors, and the residuals of every other
equation holding ``f`` (by ``c`` times the derivative of its mean, a path or
``b + sum b_k g_k`` with product terms). So ``c`` is drawn exactly from its normal conditional
(translations have Jacobian 1). A factor gets a location move when it has indicators updated
from sums, a prior (an equation or a covariance block), no random term holding it and no term
holding it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simstudy.spec.ir import CovBlock, Equation
from simstudy.spec.measurement import Measurement


@dataclass(frozen=True)
class FactorScale:
    """What one latent factor's scale move rescales (positions as the sweep stores them)."""

    factor: str
    variance: tuple[str, str, int]  # ("equation", target, 0) or ("block", block name, member)
    up: tuple[tuple[str, int], ...]  # (equation target, position among its free coefficients)
    down: tuple[tuple[str, int], ...]
    loadings_free: tuple[bool, ...]  # per indicator: a free loading on this factor (1 / g)
    loadings_fixed: tuple[bool, ...]  # per indicator: a fixed loading on this factor
    fixed_terms: tuple[tuple[int, float, tuple[str, ...]], ...]  # (equation, value, monomial)

    @property
    def n_up(self) -> int:
        """Coefficients multiplied by ``g``."""
        return len(self.up)

    @property
    def n_down(self) -> int:
        """Coefficients divided by ``g``."""
        return len(self.down) + sum(self.loadings_free)


def factor_scales(
    equations: Sequence[Equation],
    free_coefs: Sequence[tuple[int, ...]],
    general: Sequence[int],
    blocks: Sequence[CovBlock],
    latents: Sequence[str],
    measurement: Measurement | None,
) -> tuple[FactorScale, ...]:
    """The scale move of every latent factor that can have one (see the module docstring)."""
    out = []
    for f in latents:
        move = _factor_scale(f, equations, free_coefs, general, blocks, measurement)
        if move is not None:
            out.append(move)
    return tuple(out)


def _factor_scale(f, equations, free_coefs, general, blocks, measurement) -> FactorScale | None:
    own = [i for i in general if equations[i].target == f]
    variance: tuple[str, str, int] | None = None
    up: list[tuple[str, int]] = []
    if own:
        eq = equations[own[0]]
        if not eq.variance.free or eq.random:
            return None
        if any(c.parameter.fixed not in (None, 0.0) for c in eq.coefficients):
            return None
        variance = ("equation", f, 0)
        up = [(f, k) for k in range(len(free_coefs[own[0]]))]
    else:
        for b in blocks:
            if b.level is None and f in b.members:
                k = b.members.index(f)
                if b.variances[k].free:
                    variance = ("block", b.name, k)
    if variance is None:
        return None
    down: list[tuple[str, int]] = []
    fixed_terms: list[tuple[int, float, tuple[str, ...]]] = []
    for i in general:
        eq = equations[i]
        if eq.target == f:
            continue
        if any(f in r.factors for r in eq.random):
            return None
        positions = {pos: k for k, pos in enumerate(free_coefs[i])}
        for pos, c in enumerate(eq.coefficients):
            count = c.factors.count(f)
            if count == 0:
                continue
            if count > 1:
                return None
            if pos in positions:
                down.append((eq.target, positions[pos]))
            elif c.parameter.fixed:
                fixed_terms.append((i, float(c.parameter.fixed), c.factors))
    p = measurement.size if measurement is not None else 0
    free_load, fixed_load = np.zeros(p, bool), np.zeros(p, bool)
    if measurement is not None and f in measurement.factors:
        mine = np.asarray(measurement.factor_of) == measurement.factors.index(f)
        free_load = mine & ~measurement.marker
        fixed_load = mine & measurement.marker
    return FactorScale(
        f,
        variance,
        tuple(up),
        tuple(down),
        tuple(bool(x) for x in free_load),
        tuple(bool(x) for x in fixed_load),
        tuple(fixed_terms),
    )


@dataclass(frozen=True)
class FactorLocation:
    """What one latent factor's location move shifts (positions as the sweep stores them)."""

    factor: str
    block: tuple[str, int] | None  # (block name, member) where the factor's prior is a block's
    equations: tuple[int, ...]  # general equations whose residuals move: its own, those holding it
    indicators: tuple[bool, ...]  # per indicator updated from sums: it measures the factor


def factor_locations(
    equations: Sequence[Equation],
    general: Sequence[int],
    blocks: Sequence[CovBlock],
    latents: Sequence[str],
    measurement: Measurement | None,
) -> tuple[FactorLocation, ...]:
    """The location move of every latent factor that can have one (see the module docstring)."""
    if measurement is None:
        return ()
    out = []
    for f in measurement.factors:
        move = _factor_location(f, equations, general, blocks, measurement)
        if move is not None and f in latents:
            out.append(move)
    return tuple(out)


def _factor_location(f, equations, general, blocks, measurement) -> FactorLocation | None:
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
    return FactorLocation(f, block, tuple(moved), tuple(bool(x) for x in mine))
