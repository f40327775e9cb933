"""Scale moves of latent factors: a factor's scores rescaled with its parameters.

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

Where a fixed-coefficient term sits in a probit ordered variable's equation (an ordered marker),
its latent responses pin ``g`` as tightly as a continuous indicator would, where the categories
say much less (Albert & Chib's augmentation: the factor's scale then crawls, and the marker's
thresholds with it). There the move draws ``g`` with those latent responses integrated out:
random-walk Metropolis steps in ``log g`` on the target above whose marker part is the
categories' probit likelihood, then the responses are drawn afresh given the moved scores (a
joint draw of ``g`` and the responses, so the chain keeps its posterior). The walk's scale
follows the state (``1 / sqrt`` of the target's curvature terms), with its Hastings correction.

A factor gets a move when its scale is not pinned (a free variance), its own equation has no
fixed non-zero coefficient and no random term, and every term holding it holds it once and
outside a random term; the others keep the plain updates.

Location moves are :mod:`.factor_location`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks import ordinal
from simstudy.blocks.group import group_scale, rescale_covariance
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.ir import CovBlock, Equation, Ordered
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults
from simstudy.spec.steps.measurement import Measurement, indicator_priors, marker_terms
from simstudy.spec.steps.ordered import responses

#: Random-walk Metropolis steps in ``log g`` of a move with an ordered marker, per sweep.
WALK_STEPS = 3
#: The walk's scale times ``1 / sqrt(curvature)`` (about 2.4 for one dimension).
WALK_SCALE = 2.4

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


@dataclass(frozen=True)
class FactorScale(StepDefaults):
    """One latent factor's scale move: what it rescales (positions as the sweep stores them)."""

    factor: str
    variance: tuple[str, str, int]  # ("equation", target, 0) or ("block", block name, member)
    up: tuple[tuple[str, int], ...]  # (equation target, position among its free coefficients)
    down: tuple[tuple[str, int], ...]
    loadings_free: tuple[bool, ...]  # per indicator: a free loading on this factor (1 / g)
    loadings_fixed: tuple[bool, ...]  # per indicator: a fixed loading on this factor
    fixed_terms: tuple[tuple[int, float, tuple[str, ...]], ...]  # (equation, value, monomial)
    collapsed: tuple[Ordered, ...] = ()  # probit ordered markers (fixed terms' or indicators')

    @property
    def n_up(self) -> int:
        """Coefficients multiplied by ``g``."""
        return len(self.up)

    @property
    def n_down(self) -> int:
        """Coefficients divided by ``g``."""
        return len(self.down) + sum(self.loadings_free)

    @property
    def name(self) -> str:
        """Name of its noise."""
        return f"factor_scale:{self.factor}"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A normal and a uniform for the draw of ``g``.

        With an ordered marker: one of each per walk step, and a key for its responses.
        """
        if self.collapsed:
            steps = {self.name: WALK_STEPS}
            return NoiseSizes(normal=steps, uniform=steps, keys=1)
        return NoiseSizes(normal={self.name: 1}, uniform={self.name: 1})

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Draw ``g`` from its conditional and rescale the factor with its parameters."""
        z = (noise.normal[self.name], jnp.log(noise.uniform[self.name]))
        key = noise.keys[0] if self.collapsed else None
        return _scale_factor(ctx.layout, state, data, self, ctx, z, key)


def factor_scales(
    equations: Sequence[Equation],
    free_coefs: Sequence[tuple[int, ...]],
    general: Sequence[int],
    blocks: Sequence[CovBlock],
    latents: Sequence[str],
    measurement: Measurement | None,
    ordered: Sequence[Ordered] = (),
) -> tuple[FactorScale, ...]:
    """The scale move of every latent factor that can have one (see the module docstring)."""
    out = []
    probit = {o.name: o for o in ordered if o.link == "probit"}
    for f in latents:
        move = _factor_scale(f, equations, free_coefs, general, blocks, measurement)
        if move is not None:
            targets = dict.fromkeys(equations[i].target for i, _, _ in move.fixed_terms)
            if measurement is not None:  # ordered markers updated from sums
                fixed = np.flatnonzero(move.loadings_fixed)
                targets |= dict.fromkeys(measurement.targets[j] for j in fixed)
            collapsed = tuple(probit[t] for t in targets if t in probit)
            out.append(dataclasses.replace(move, collapsed=collapsed))
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


def _scale_factor(
    lay: Layout, state: State, data, move: FactorScale, ctx: Context, noise, key=None
) -> State:
    """The scale move of one latent factor (see the module docstring)."""
    priors, sums = ctx.priors, ctx.sums
    coef = state["coef"]
    up, up_mean, up_sd = ev.coef_priors(lay, priors, coef, move.up)
    down, down_mean, down_sd = ev.coef_priors(lay, priors, coef, move.down)
    kind, name, member = move.variance
    variance = state["var"][name] if kind == "equation" else state["cov"][name][member, member]
    a = (up**2 / up_sd**2).sum()
    b = (up * jnp.asarray(up_mean, dtype=float) / up_sd**2).sum()
    # what g scales by 1 / g: -(x/g - m)^2 / 2s^2 = -x^2 / 2s^2 g^2 + m x / s^2 g + const
    c = (down**2 / down_sd**2).sum() / 2
    d = (down * jnp.asarray(down_mean, dtype=float) / down_sd**2).sum()
    if lay.measurement is not None:
        free = jnp.asarray(move.loadings_free)
        lam = state["meas"]["lam"]
        loading_mean, loading_sd = indicator_priors(lay.measurement, priors)[1]
        c = c + jnp.where(free, lam**2 / loading_sd**2, 0.0).sum() / 2
        d = d + jnp.where(free, lam * loading_mean / loading_sd**2, 0.0).sum()
        # an ordered marker's categories enter the walk below, not its responses
        carried = {o.name for o in move.collapsed}
        targets = lay.measurement.targets
        plain = [x and t not in carried for x, t in zip(move.loadings_fixed, targets, strict=True)]
        a_m, b_m = marker_terms(
            sums, state["meas"], np.asarray(plain, dtype=bool), lay.measurement.fixed_loading
        )
        a, b = a + a_m, b + b_m
    if move.fixed_terms:
        a_t, b_t = _fixed_term_stats(lay, state, data, move, ctx.weights)
        a, b = a + a_t, b + b_t
    latent_prior = kind == "equation" or lay.blocks[ev.block_index(lay, name)].level is None
    half_normal = (priors.resvar_prior if kind == "equation" else priors.cov_prior) == "half_normal"
    if half_normal:
        sd_scale = priors.sigma_scale_of(name) if kind == "equation" else priors.cov_scale_of(name)
        a = a + variance / sd_scale**2
        e = move.n_up - move.n_down
    else:
        shape, scale = priors.variance_ig(latent_prior)
        c = c + scale / variance
        e = move.n_up - move.n_down - 2 * shape - 1
    e = jnp.asarray(e, dtype=float)
    if move.collapsed:
        marker = _collapsed_terms(lay, state, data, move)
        g = _walk(marker, a, b, c, d, e, noise)
    else:
        g = group_scale(None, a, b, c, e, noise=(noise[0][0], noise[1][0]), d=d)
    real = data[ROW_REAL]
    nodes = {**state["nodes"], move.factor: jnp.where(real, g, 1.0) * state["nodes"][move.factor]}
    if move.collapsed:  # the markers' responses given the moved scores
        for k, o in enumerate(move.collapsed):
            mean = marker.mean0[k] + (g - 1) * marker.parts[k][3]
            thr = state["thr"][o.name]
            nodes[o.name] = responses(jax.random.fold_in(key, k), o, data, thr, mean)
    coef = dict(coef)
    for t in {t for t, _ in (*move.up, *move.down)}:
        power = np.zeros(coef[t].shape[0])  # per coefficient: g^power
        for k in (k for tt, k in move.up if tt == t):
            power[k] += 1
        for k in (k for tt, k in move.down if tt == t):
            power[k] -= 1
        coef[t] = coef[t] * jnp.where(power > 0, g, jnp.where(power < 0, 1 / g, 1.0))
    out = {**state, "nodes": nodes, "coef": coef}
    if lay.measurement is not None and any(move.loadings_free):
        lam = state["meas"]["lam"]
        out["meas"] = {
            **state["meas"],
            "lam": jnp.where(np.asarray(move.loadings_free), lam / g, lam),
        }
    if kind == "equation":
        out["var"] = {**state["var"], name: variance * g**2}
    else:
        out["cov"] = {**state["cov"], name: rescale_covariance(state["cov"][name], member, g)}
    return out


def _fixed_term_stats(
    lay: Layout, state: State, data, move: FactorScale, weights: Mapping[int, jax.Array]
):
    """``(A, B)`` of the general equations where the factor has a fixed coefficient.

    Along the move their standardised residuals are ``s0 - (g - 1) M k`` (``M``: the fixed
    terms holding the factor, ``k``: sqrt(weight / variance)), so ``A = sum (M k)^2`` and
    ``B = sum (s0 + M k) M k``.
    """
    vals = ev.full_values(lay, state, data)
    a, b = jnp.asarray(0.0), jnp.asarray(0.0)
    collapsed = {o.name for o in move.collapsed}
    for i in sorted({t[0] for t in move.fixed_terms}):
        if lay.equations[i].target in collapsed:
            continue
        terms = [(v, f) for j, v, f in move.fixed_terms if j == i]
        scale = jnp.sqrt(weights[i] / ev.variance(lay, state, i))
        mk = sum(v * ev.product(vals, f) for v, f in terms) * scale
        s0 = ev.std_residual(lay, i, state, vals, weights[i])
        a = a + (mk**2).sum()
        b = b + ((s0 + mk) * mk).sum()
    return a, b


class _Marker(NamedTuple):
    """An ordered marker's part of the target: per variable (weight, lo, hi, moving) per row.

    Along the move its latent response's mean is ``mean0 - moving + g * moving``, so its
    category's probability is ``F(hi' - g moving) - F(lo' - g moving)`` with ``lo' = lo -
    mean0 + moving`` (stored as ``lo``, ``hi``).
    """

    parts: tuple[tuple[jax.Array, jax.Array, jax.Array, jax.Array], ...]
    mean0: tuple[jax.Array, ...]
    info: jax.Array  # sum of weight * moving^2: the curvature the categories give, at most


def _collapsed_terms(lay: Layout, state: State, data, move: FactorScale) -> _Marker:
    """The ordered markers' categories as functions of ``g`` (responses integrated out)."""
    vals = ev.full_values(lay, state, data)
    rows = data[ROW_REAL].shape[0]
    m = lay.measurement
    parts, means, info = [], [], jnp.asarray(0.0)
    for o in move.collapsed:
        if m is not None and o.name in m.targets:  # an indicator: nu + lam f, lam fixed
            j = m.targets.index(o.name)
            moving = m.fixed_loading[j] * vals[move.factor]
            mean0 = state["meas"]["nu"][j] + moving
        else:
            i = next(k for k, eq in enumerate(lay.equations) if eq.target == o.name)
            eq = lay.equations[i]
            coefs = ev.coef_vector(eq, state["coef"].get(o.name, jnp.zeros(0)), lay.free_coefs[i])
            mean0 = jnp.broadcast_to(ev.equation_mean(eq, coefs, vals), (rows,))
            moving = jnp.broadcast_to(
                sum(v * ev.product(vals, f) for j, v, f in move.fixed_terms if j == i), (rows,)
            )
        weight = (data[observed_key(o.name)] & data[ROW_REAL]).astype(float)
        mask = jnp.ones((1, o.categories - 1), dtype=bool)
        tau = ordinal.thresholds(state["thr"][o.name].u, mask)
        lo, hi = ordinal.bounds(tau, data[o.name][:, None])
        shift = moving - mean0
        parts.append((weight, lo[:, 0] + shift, hi[:, 0] + shift, moving))
        means.append(mean0)
        info = info + (weight * moving**2).sum()
    return _Marker(tuple(parts), tuple(means), info)


def _walk(marker: _Marker, a, b, c, d, e, noise) -> jax.Array:
    """``g`` by :data:`WALK_STEPS` random-walk Metropolis steps in ``t = log g``.

    The target: ``-a g^2 / 2 + b g - c / g^2 + d / g + (e + 1) t`` (as
    :func:`~simstudy.blocks.group.group_scale`'s) plus the ordered markers' log likelihood
    of their categories. The step's scale at ``t`` is :data:`WALK_SCALE` over the square
    root of ``g^2 (info + a) + 4 c / g^2 + 1`` (what the target's curvature is made of, as
    the state along the move has it), so the Hastings ratio corrects for its change.
    """
    link = "probit"

    def log_target(t):
        g = jnp.exp(t)
        out = -a * g**2 / 2 + b * g - c / g**2 + d / g + (e + 1) * t
        for w, lo, hi, moving in marker.parts:
            cell = ordinal.log_interval(link, lo - g * moving, hi - g * moving)
            out = out + jnp.where(w > 0, w * cell, 0.0).sum()
        return out

    def log_scale(t):
        g2 = jnp.exp(2 * t)
        return jnp.log(WALK_SCALE) - 0.5 * jnp.log(g2 * (marker.info + a) + 4 * c / g2 + 1.0)

    z, log_u = noise

    def one(k, carry):
        t, current = carry
        s_here = log_scale(t)
        proposal = t + jnp.exp(s_here) * z[k]
        s_there = log_scale(proposal)
        step2 = (proposal - t) ** 2
        hastings = s_here - s_there - step2 / (2 * jnp.exp(2 * s_there))
        hastings = hastings + step2 / (2 * jnp.exp(2 * s_here))
        target = log_target(proposal)
        ratio = jnp.where(jnp.isnan(target), -jnp.inf, target - current + hastings)
        accept = log_u[k] < ratio
        return jnp.where(accept, proposal, t), jnp.where(accept, target, current)

    # a loop, not unrolled: the categories' likelihood is traced once (compile time)
    start = (jnp.asarray(0.0), log_target(jnp.asarray(0.0)))
    t, _ = jax.lax.fori_loop(0, WALK_STEPS, one, start)
    return jnp.exp(t)
