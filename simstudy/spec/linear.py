"""Which variables of a model are jointly normal given the data (no JAX: config checks read it).

A model that is linear and Gaussian in its latent variables, and (when asked) in its incomplete
predictors, has them integrated out by the NumPyro back end (:mod:`simstudy.spec.hmc`): its
observed outcomes are then multivariate normal per row.
"""

from __future__ import annotations

from collections.abc import Sequence

from simstudy.spec.ir import LATENT, CovBlock, Equation, ModelSpec


def marginal_nodes(
    equations: Sequence[Equation],
    latents: Sequence[str],
    imputed: Sequence[str],
    blocks: Sequence[CovBlock],
    *,
    incomplete: bool = False,
) -> tuple[str, ...] | None:
    """The variables a marginal model treats jointly: exogenous factors, then targets.

    ``incomplete``: the incomplete predictors (``imputed``) join them, each with its
    equation (an exogenous one's nuisance model), instead of being sampled. None where the
    model is not linear and Gaussian in them (a random effect, a product with a node, a
    non-latent block member), or has nothing to integrate out; or, without ``incomplete``,
    has an incomplete predictor.
    """
    if (not incomplete and imputed) or not (latents or (incomplete and imputed)):
        return None
    if any(b.level is not None for b in blocks):
        return None
    nodes = (*(m for b in blocks for m in b.members), *(e.target for e in equations))
    if not {*latents, *imputed} <= set(nodes) or any(
        m not in latents for b in blocks for m in b.members
    ):
        return None
    for eq in equations:
        if eq.random:
            return None
        for c in eq.coefficients:
            inner = [f for f in c.factors if f in nodes]
            if inner and len(c.factors) > 1:
                return None
    return nodes


def spec_marginal_nodes(spec: ModelSpec, *, incomplete: bool = False) -> tuple[str, ...] | None:
    """:func:`marginal_nodes` of a spec (as its layout gives them to the back ends)."""
    latents = tuple(v.name for v in spec.variables if v.kind == LATENT)
    imputed = tuple(n for n in spec.unknown_nodes() if n not in latents)
    return marginal_nodes(spec.order(), latents, imputed, spec.blocks, incomplete=incomplete)
