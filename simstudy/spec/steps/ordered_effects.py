"""An ordered variable's own random effects moved with its latent responses integrated out.

Given the responses, the effects of a cluster with few rows move in small steps (the responses
pin them); integrated out, each cluster's effects move by Metropolis–Hastings with a Newton
proposal on the categories' likelihood, then each effect's scale with its variance (the
non-centred counterpart of the covariance's draw): :mod:`simstudy.blocks.newton`. Run by
:class:`~.ordered.OrderedResponses` before it draws the responses, for the blocks
:func:`collapsible` admits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp

from simstudy.blocks import ordinal
from simstudy.blocks.conjugate import small_inverse
from simstudy.blocks.covariance import lkj_log_prior
from simstudy.blocks.group import rescale_covariance
from simstudy.blocks.newton import newton_cluster_step, newton_scalar_step, scalar_derivatives
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import CovBlock
from simstudy.spec.steps.base import Context, Noise, State

if TYPE_CHECKING:
    from simstudy.spec.steps.ordered import OrderedResponses
    from simstudy.spec.sweep import Layout


def collapsible(lay: Layout, i: int, blocks: tuple[CovBlock, ...]) -> tuple[CovBlock, ...]:
    """The blocks of equation ``i``'s random effects that no other equation holds.

    Their cluster likelihood with the latent responses integrated out is the categories'
    probabilities alone only where the responses enter no other equation (as predictors) and
    the effects no other equation: then they can move by :mod:`simstudy.blocks.newton`.
    """
    target = lay.equations[i].target
    others = [e for k, e in enumerate(lay.equations) if k != i]
    if any(target in c.factors for e in others for c in e.coefficients):
        return ()
    held = {r.effect for e in others for r in e.random}
    return tuple(b for b in blocks if not set(b.members) & held)


def collapsed_effects(
    noise: Noise,
    step: OrderedResponses,
    state: State,
    data: Mapping[str, Any],
    thr: Any,
    ctx: Context,
) -> State:
    """Each collapsible block's effects by Newton–Metropolis on the categories' likelihood.

    ``noise``: the step's, with ``effects<n>`` and ``scales<n>`` normals and uniforms per block.
    """
    lay, i, u = ctx.layout, step.equations[0], step.variables[0].name
    eq = lay.equations[i]
    coefs = ev.coef_vector(eq, state["coef"].get(u, jnp.zeros(0)), lay.free_coefs[i])
    rows = data[ROW_REAL].shape[0]
    weight = (data[observed_key(u)] & data[ROW_REAL]).astype(float)
    tau = ordinal.thresholds(thr.u, step.mask[:1])[0]
    link, y = step.variables[0].link, data[u]

    def row_terms(eta):  # the categories' log likelihood per row and its derivatives
        return tuple(weight * t for t in ordinal.category_terms(link, tau, y, eta))

    re, covs = dict(state["re"]), dict(state["cov"])
    for n, blk in enumerate(step.collapsed):
        vals = ev.full_values(lay, {**state, "re": re, "cov": covs}, data)
        group = data[blk.level]
        current = re[blk.name]

        def eta_of(u_rows, vals=vals, blk=blk):
            v = {**vals, **{m: u_rows[:, k] for k, m in enumerate(blk.members)}}
            return [jnp.broadcast_to(ev.equation_mean(eq, coefs, v), (rows,))]

        (eta,), (cols,) = ev.jvp_columns(eta_of, current[group], len(blk.members))
        offset = eta - sum(c * current[group, k] for k, c in enumerate(cols))
        real = data[cluster_key(blk.level)]
        cov = state["cov"][blk.name]
        z = noise.normal[f"effects{n}"].reshape(current.shape)
        effects = newton_cluster_step(
            None,
            current,
            small_inverse(cov),
            offset,
            cols,
            group,
            real,
            row_terms,
            noise=(z, noise.uniform[f"effects{n}"]),
        )
        effects, cov = _collapsed_scales(
            (noise.normal[f"scales{n}"], noise.uniform[f"scales{n}"]),
            blk,
            effects,
            cov,
            offset,
            cols,
            data,
            row_terms,
            ctx,
        )
        re[blk.name] = effects
        covs[blk.name] = cov
    return {**state, "re": re, "cov": covs}


def _collapsed_scales(noise, blk, effects, cov, offset, cols, data, row_terms, ctx):
    """Each effect's scale with its variance (non-centred), responses integrated out.

    ``b_k -> c b_k`` on every cluster with row and column ``k`` of the covariance times
    ``c``: the effects' density and their Jacobian cancel, leaving the categories'
    likelihood, the covariance's prior and its entries' Jacobian ``c^(q + 1)``; ``t =
    log c`` by a Newton–Metropolis step (Haar measure ``dc / c``); ``noise``: a normal and a
    uniform per effect. The likelihood's derivatives in ``t`` are written out from the rows'
    (``eta = base + (c - 1) m``, so ``eta' = eta'' = c m``); the prior's, of a small matrix,
    by differentiation.
    """
    priors, q = ctx.priors, len(blk.members)
    pa, pb = priors.block_variance_prior(blk)
    group = data[blk.level]
    real = data[cluster_key(blk.level)]

    def log_prior(m):
        return lkj_log_prior(m, priors.lkj_eta, priors.cov_prior, pa, pb)

    for k in range(q):
        base = offset + sum(c * effects[group, j] for j, c in enumerate(cols))
        moved = effects[group, k] * cols[k]
        prior_terms = scalar_derivatives(
            lambda t, cov=cov, k=k: log_prior(rescale_covariance(cov, k, jnp.exp(t))) + (q + 1) * t
        )

        def derivatives(t, base=base, moved=moved, prior_terms=prior_terms):
            c = jnp.exp(t)
            ll, d1, w = row_terms(base + (c - 1.0) * moved)
            slope = c * moved
            p0, p1, p2 = prior_terms(t)
            return (
                ll.sum() + p0,
                (d1 * slope).sum() + p1,
                (d1 * slope - w * slope**2).sum() + p2,
            )

        t = newton_scalar_step(None, derivatives, noise=(noise[0][k], noise[1][k]))
        c = jnp.exp(t)
        effects = jnp.where(real[:, None], effects.at[:, k].multiply(c), effects)
        cov = rescale_covariance(cov, k, c)
    return effects, cov
