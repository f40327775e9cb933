"""The free coefficients of one general equation, from its design columns.

The equation's mean is linear in its coefficients, so their conditional is normal: the
weighted design columns' cross-products plus the normal priors' precisions
(N(0, coef_sd^2) unless :class:`~simstudy.spec.sweep.Priors` gives the equation its own). The
step owns the state's ``coef`` entry of its equation (empty where every coefficient is fixed)
and records its free coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks.linear import normal_step, row_cross_products
from simstudy.spec import evaluate as ev
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


@dataclass(frozen=True)
class Coefficients(StepDefaults):
    """The free coefficients of general equation ``equation``."""

    equation: int  # position in the layout's equations
    target: str
    positions: tuple[int, ...]  # positions of its free coefficients
    start_key: int | None = None

    @property
    def name(self) -> str:
        """Name of its normals."""
        return f"coef:{self.target}"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A normal per free coefficient."""
        return NoiseSizes(normal={self.name: len(self.positions)} if self.positions else {})

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Coefficients near 0."""
        return {"coef": {self.target: 0.1 * jax.random.normal(key, (len(self.positions),))}}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Draw the free coefficients from their normal conditional."""
        if not self.positions:
            return state
        lay, i = ctx.layout, self.equation
        eq = lay.equations[i]
        current = state["coef"][eq.target]
        vals = ev.full_values(lay, state, data)
        resid = ev.residual(lay, i, state, vals)
        w = ctx.weights[i] / ev.variance(lay, state, i)
        design = [ev.product(vals, eq.coefficients[pos].factors) for pos in self.positions]
        cross, fitted = row_cross_products(design, w, resid)
        means, sds = map(jnp.asarray, ctx.priors.equation_prior(eq, self.positions))
        precision = cross + jnp.diag(1.0 / sds**2)
        grad = -fitted + (current - means) / sds**2
        new = normal_step(current, grad, precision, noise.normal[self.name])
        return {**state, "coef": {**state["coef"], eq.target: new}}

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """Its free coefficients that are not nuisance, by lavaan name."""
        eq = lay.equations[self.equation]
        out = {}
        for k, pos in enumerate(self.positions):
            p = eq.coefficients[pos].parameter
            if not p.nuisance:
                out[p.name] = state["coef"][self.target][k]
        return out
