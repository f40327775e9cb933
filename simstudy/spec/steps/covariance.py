"""A covariance block of two or more members, by an inverse-Wishart proposal or draw.

LKJ correlations with half-normal SDs or inverse-gamma variances: the proposal (the
conditional under a flat inverse-Wishart prior) is accepted or kept by the priors' ratio.
Under the ``inverse_wishart`` family, InverseWishart(k + 2, var_scale I): the conjugate draw.

The step owns the state's ``cov`` entry of its block (one-member blocks are
:mod:`.variances`' units) and records its variances and free covariances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks.covariance import INVERSE_WISHART, inverse_wishart_covariance, lkj_covariance
from simstudy.spec import evaluate as ev
from simstudy.spec.ir import CovBlock
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout

#: Scale of the flat inverse-Wishart prior behind the covariance proposal under half-normal
#: SDs: small, so that the proposal is close to the likelihood and the acceptance ratio is the
#: (slowly varying) ratio of the two priors.
PROPOSAL_SCALE = 1e-3


@dataclass(frozen=True)
class Covariance(StepDefaults):
    """One covariance block of two or more members."""

    block: CovBlock

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A key for the Wishart proposal and its acceptance."""
        return NoiseSizes(keys=1)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """The identity."""
        return {"cov": {self.block.name: jnp.eye(len(self.block.members))}}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Propose from the inverse-Wishart conditional under a flat prior; accept or keep."""
        block, priors = self.block, ctx.priors
        vectors, w = ev.block_vectors(block, state, data, ctx.layout)
        scatter = jnp.einsum("ni,nj,n->ij", vectors, vectors, w)
        a, b = priors.block_variance_prior(block)
        if priors.cov_prior == INVERSE_WISHART:
            new = inverse_wishart_covariance(noise.keys[0], scatter, w.sum(), b)
            return {**state, "cov": {**state["cov"], block.name: new}}
        scale = PROPOSAL_SCALE if priors.cov_prior == "half_normal" else b
        new = lkj_covariance(
            noise.keys[0],
            state["cov"][block.name],
            scatter,
            w.sum(),
            priors.lkj_eta,
            priors.cov_prior,
            a,
            b,
            scale,
        )
        return {**state, "cov": {**state["cov"], block.name: new}}

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """Its variances and free covariances, by lavaan name."""
        b = self.block
        cov = state["cov"][b.name]
        out = {p.name: cov[i, i] for i, p in enumerate(b.variances)}
        it = iter(b.covariances)
        for i in range(1, len(b.members)):
            for j in range(i):
                p = next(it)
                if p.free:
                    out[p.name] = cov[i, j]
        return out
