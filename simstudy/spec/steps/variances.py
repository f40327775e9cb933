"""Every free variance but those of covariance blocks of two or more, in one batch.

Units: the general equations' residual variances, the free ones of the indicators (from the
measurement step's sums), and the variance of each one-member covariance block (its conditional
is a variance's: no correlation). One gamma draw for all; half-normal units accept or keep their
proposal (:func:`~simstudy.blocks.variance.half_normal_variance`), inverse-gamma ones are
conjugate. The step owns the state's ``var`` part and the one-member blocks' ``cov`` entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.conjugate import indicator_ssr, unit_gamma
from simstudy.blocks.variance import (
    half_normal_shape,
    half_normal_variance,
    inverse_gamma_shape,
    inverse_gamma_variance,
)
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL
from simstudy.spec.ir import CovBlock
from simstudy.spec.steps.base import GAMMA_TRIES, Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


@dataclass(frozen=True)
class Variances(StepDefaults):
    """The variances drawn together (see the module docstring)."""

    equations: tuple[int, ...]  # general equations with a free residual variance
    indicators: tuple[int, ...]  # indicators updated from sums with a free variance (positions)
    singles: tuple[CovBlock, ...]  # one-member covariance blocks

    @classmethod
    def of(cls, lay: Layout) -> Variances:
        """The variances of a layout."""
        m = lay.measurement
        free = tuple(int(j) for j in np.flatnonzero(m.free_variance)) if m is not None else ()
        singles = tuple(b for b in lay.blocks if len(b.members) == 1)
        return cls(lay.free_variances(), free, singles)

    @property
    def size(self) -> int:
        """How many variances it draws."""
        return len(self.equations) + len(self.indicators) + len(self.singles)

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A gamma variate per variance, and a uniform for each half-normal acceptance."""
        return NoiseSizes(uniform={"accept": self.size}, gamma=self.size)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Residual variances from the data (latents: 1); one-member blocks at 1."""
        real = data[ROW_REAL].astype(float)
        var = {}
        for i in self.equations:
            t = lay.equations[i].target
            var[t] = ev.start_variance(t, lay, data, real)
        return {"var": var, "cov": {b.name: jnp.eye(1) for b in self.singles}}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Draw every variance of the batch."""
        lay, priors = ctx.layout, ctx.priors
        ss, n = _variance_stats(lay, self.equations, state, data, ctx.weights)
        names = [lay.equations[i].target for i in self.equations]
        current = [state["var"][t] for t in names]
        half = [priors.resvar_prior == "half_normal"] * len(names)
        sd_scale = [priors.sigma_scale_of(t) for t in names]
        ig = [priors.variance_ig(t in lay.latents) for t in names]
        free = np.asarray(self.indicators, dtype=int)
        p = free.size
        if p:
            meas = state["meas"]
            ss.append(indicator_ssr(ctx.sums, meas["nu"], meas["lam"])[free])
            n.append(ctx.sums.n[free])
            current.append(meas["theta"][free])
            half += [priors.resvar_prior == "half_normal"] * p
            sd_scale += [priors.sigma_scale_of(lay.measurement.targets[j]) for j in free]
            ig += [priors.variance_ig(False)] * p
        for b in self.singles:
            vector, w = ev.block_vectors(b, state, data, lay)
            ss.append((w * vector[:, 0] ** 2).sum())
            n.append(w.sum())
            current.append(state["cov"][b.name][0, 0])
            half.append(priors.cov_prior == "half_normal")
            sd_scale.append(priors.cov_scale_of(b.name))
            ig.append(priors.variance_ig(b.level is None))
        ss, n, current = (jnp.concatenate([jnp.atleast_1d(x) for x in v]) for v in (ss, n, current))
        half_mask = np.asarray(half)
        shape = jnp.asarray([a for a, _ in ig])
        scale = jnp.asarray([b for _, b in ig])
        k_gamma, gamma_noise = noise.gamma
        gamma = unit_gamma(
            k_gamma,
            jnp.where(half_mask, half_normal_shape(n), inverse_gamma_shape(n, shape)),
            GAMMA_TRIES,
            gamma_noise,
        )
        new = inverse_gamma_variance(ss, n, scale, gamma)
        if half_mask.any():
            uniform = noise.uniform["accept"]
            drawn = half_normal_variance(current, ss, n, jnp.asarray(sd_scale), gamma, uniform)
            new = jnp.where(half_mask, drawn, new)
        out = {**state, "var": {t: new[k] for k, t in enumerate(names)}}
        if p:
            theta = state["meas"]["theta"].at[free].set(new[len(names) : len(names) + p])
            out["meas"] = {**state["meas"], "theta": theta}
        cov = dict(state["cov"])
        for k, b in enumerate(self.singles):
            cov[b.name] = new[len(names) + p + k].reshape(1, 1)
        out["cov"] = cov
        return out

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """Residual variances that are not nuisance, and one-member blocks' variances."""
        out = {}
        for i in self.equations:
            eq = lay.equations[i]
            if not eq.variance.nuisance:
                out[eq.variance.name] = state["var"][eq.target]
        for b in self.singles:
            out[b.variances[0].name] = state["cov"][b.name][0, 0]
        return out


def _variance_stats(
    lay: Layout,
    equations: tuple[int, ...],
    state: State,
    data: Mapping[str, Any],
    weights: Mapping[int, jax.Array],
) -> tuple[list[jax.Array], list[jax.Array]]:
    """Sums of squared residuals and weights of the general equations' free variances."""
    vals = ev.full_values(lay, state, data)
    ss, n = [], []
    for i in equations:
        resid = ev.residual(lay, i, state, vals)
        ss.append((weights[i] * resid**2).sum())
        n.append(weights[i].sum())
    return ss, n
