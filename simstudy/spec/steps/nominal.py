"""A nominal predictor: its missing categories, then its category probabilities.

The predictor ``d`` (codes 1..K, :mod:`simstudy.spec.nominal`) is exogenous with category
probabilities ``pi`` under a Dirichlet(1, ..., 1) prior. Each row with a missing ``d`` draws
its category from its discrete full conditional: ``log pi_k`` plus the log densities of every
general equation holding ``d``'s dummies, evaluated with the dummies set for ``k`` (a fixed
number of categories, one uniform per row: no loop). Then ``pi | d ~ Dirichlet(1 + counts)``
over the rows that exist. The step owns ``nodes[d]`` (the codes, observed ones where
observed) and ``prob[d]``, and records ``P(d=2) .. P(d=K)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks.categorical import categorical_draw, dirichlet_draw
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.ir import Nominal
from simstudy.spec.steps.base import GAMMA_TRIES, Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


@dataclass(frozen=True)
class NominalPredictor(StepDefaults):
    """The missing categories and the category probabilities of one nominal predictor."""

    nominal: Nominal
    involved: tuple[int, ...]  # general equations holding its dummies

    @classmethod
    def of(cls, lay: Layout, nom: Nominal) -> NominalPredictor:
        """The step of ``nom`` in a layout."""
        dummies = set(nom.dummies)
        involved = tuple(i for i in lay.general if dummies & lay.equations[i].variables())
        return cls(nom, involved)

    @property
    def name(self) -> str:
        """Name of its uniforms."""
        return f"nominal:{self.nominal.name}"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A uniform per row (its category), a gamma variate per category."""
        rows = data[ROW_REAL].shape[0]
        return NoiseSizes(uniform={self.name: rows}, gamma=self.nominal.categories)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Missing categories at the first; equal probabilities."""
        d, k = self.nominal.name, self.nominal.categories
        codes = jnp.where(data[observed_key(d)], data[d], 1.0)
        return {"nodes": {d: codes}, "prob": {d: jnp.full(k, 1.0 / k)}}

    def log_conditional(
        self, state: State, data: Mapping[str, Any], weights: Mapping[int, jax.Array], lay: Layout
    ) -> jax.Array:
        """``log pi_k`` + the involved equations' log densities with ``d = k``, (rows, K).

        Up to a constant per row (the residual variances' normalising terms do not depend on
        ``k``).
        """
        nom = self.nominal
        base = ev.full_values(lay, state, data)
        rows = data[ROW_REAL].shape[0]
        columns = []
        for k in range(1, nom.categories + 1):
            codes = jnp.full(rows, float(k))
            vals = {**base, nom.name: codes, **nom.dummy_values(codes)}
            quad = sum(
                (ev.std_residual(lay, i, state, vals, weights[i]) ** 2 for i in self.involved),
                jnp.zeros(rows),
            )
            columns.append(jnp.log(state["prob"][nom.name][k - 1]) - quad / 2)
        return jnp.stack(columns, axis=-1)

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Missing categories from their conditional, then the probabilities given them."""
        nom = self.nominal
        logits = self.log_conditional(state, data, ctx.weights, ctx.layout)
        drawn = 1.0 + categorical_draw(logits, noise.uniform[self.name])
        codes = jnp.where(data[observed_key(nom.name)], data[nom.name], drawn)
        real = data[ROW_REAL].astype(float)
        counts = jnp.stack([(real * (codes == k)).sum() for k in range(1, nom.categories + 1)])
        key, gamma_noise = noise.gamma
        prob = dirichlet_draw(key, 1.0 + counts, GAMMA_TRIES, gamma_noise)
        return {
            **state,
            "nodes": {**state["nodes"], nom.name: codes},
            "prob": {**state["prob"], nom.name: prob},
        }

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """``P(d=2) .. P(d=K)``."""
        prob = state["prob"][self.nominal.name]
        return {p.name: prob[k] for k, p in enumerate(self.nominal.probabilities(), start=1)}
