"""Level-1 unknowns (latent scores, missing values of predictors), one group at a time.

A group holds no two factors of one monomial, so it enters every mean affinely; its normal
conditional is read off by linearising the standardised residuals of the general equations it
enters (``jax.jvp``, one pass per member, all rows at once), plus its covariance block's
density and the indicators' information read from sums (:mod:`.measurement`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import inverse_cholesky
from simstudy.blocks.linear import gaussian_terms, normal_step
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.ir import CovBlock, ModelSpec
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout


def node_groups(spec: ModelSpec) -> tuple[tuple[str, ...], ...]:
    """Level-1 unknowns grouped so that no group holds two factors of one monomial."""
    monomials = [set(m) for e in spec.equations for m in e.monomials()]
    groups: list[list[str]] = []
    for node in spec.unknown_nodes():
        for g in groups:
            if not any(node in m and any(o in m for o in g) for m in monomials):
                g.append(node)
                break
        else:
            groups.append([node])
    return tuple(tuple(g) for g in groups)


@dataclass(frozen=True)
class NodeGroup(StepDefaults):
    """One group of level-1 unknowns, drawn jointly per row."""

    index: int  # position among the layout's groups (names its noise)
    members: tuple[str, ...]
    involved: tuple[int, ...]  # general equations the group enters
    own_blocks: tuple[CovBlock, ...]  # level-1 covariance blocks holding a member
    start_key: int | None = None  # all groups share the key of the nodes' start

    @classmethod
    def of(cls, lay: Layout, index: int, start_key: int) -> NodeGroup:
        """The step of the layout's ``index``-th group."""
        group = lay.node_groups[index]
        involved = involved_equations(lay, group)
        own = tuple(b for b in lay.blocks if b.level is None and set(b.members) & set(group))
        return cls(index, group, involved, own, start_key)

    @property
    def name(self) -> str:
        """Name of its normals."""
        return f"nodes{self.index}"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A standard normal per row and member."""
        return NoiseSizes(normal={self.name: data[ROW_REAL].shape[0] * len(self.members)})

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Start values of the members.

        Measured factors at jittered mean indicator scores, missing values near their mean,
        other latents N(0, 1).
        """
        rows = data[ROW_REAL].shape[0]
        real = data[ROW_REAL].astype(float)
        order = (*lay.latents, *lay.imputed)  # a member's key is its place here
        m = lay.measurement
        start = m.start_scores(data) if m is not None else {}
        nodes = {}
        for name in self.members:
            z = jax.random.normal(jax.random.fold_in(key, order.index(name)), (rows,))
            if name in start:
                nodes[name] = start[name] + 0.3 * jnp.std(start[name]) * z
            elif name in lay.imputed:
                obs = data[observed_key(name)].astype(float) * real
                mean = (data[name] * obs).sum() / jnp.maximum(obs.sum(), 1.0)
                sd = jnp.sqrt(ev.start_variance(name, lay, data, real))
                nodes[name] = mean + sd * z
            else:
                nodes[name] = z
        return {"nodes": nodes}

    def share(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """The indicators' information on the scores, once per sweep (before any group draws).

        Computed here, after the ordered items' responses are drawn (they are indicators too),
        and kept for later groups: the scores do not enter it.
        """
        m = ctx.layout.measurement
        if ctx.terms is not None or m is None or not set(self.members) & set(m.factors):
            return ctx
        return ctx.with_(terms=m.terms(state, data))

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Draw the group's members on every row at once."""
        lay = ctx.layout
        group = self.members
        rows = data[ROW_REAL].shape[0]
        d = len(group)
        current = jnp.stack([state["nodes"][n] for n in group], axis=-1)
        grad, precision = linear_terms(
            lay, state, data, ctx, group, self.involved, self.own_blocks, current
        )
        m = lay.measurement
        measured = {k: m.factors.index(n) for k, n in enumerate(group) if m and n in m.factors}
        if measured:  # the indicators' information: -P f^2 / 2 + h f per row
            info, linear = ctx.terms
            zero = jnp.zeros(rows)
            add_info = jnp.stack(
                [info[measured[k]] if k in measured else zero for k in range(d)], -1
            )
            add_lin = jnp.stack(
                [linear[measured[k]] if k in measured else zero for k in range(d)], -1
            )
            precision = precision + add_info[:, :, None] * jnp.eye(d)
            grad = grad + add_info * current - add_lin
        free = jnp.stack([_node_free(lay, n, data) for n in group], axis=-1)
        # rows where a node is not drawn (observed, padding) keep a N(0, 1) placeholder
        eye = jnp.eye(d)
        precision = precision + (1 - free)[:, :, None] * eye
        grad = grad + (1 - free) * current
        new = normal_step(current, grad, precision, noise.normal[self.name].reshape(rows, d))
        nodes = dict(state["nodes"])
        for k, n in enumerate(group):
            nodes[n] = new[:, k]
        return {**state, "nodes": nodes}


def involved_equations(lay: Layout, members: tuple[str, ...]) -> tuple[int, ...]:
    """The general equations whose target is a member or whose mean holds one (positions)."""
    return tuple(
        i
        for i in lay.general
        if lay.equations[i].target in members
        or any(g in lay.equations[i].variables() for g in members)
    )


def linear_terms(
    lay: Layout,
    state: State,
    data: Mapping[str, Any],
    ctx: Context,
    members: tuple[str, ...],
    involved: tuple[int, ...],
    own_blocks: tuple[CovBlock, ...],
    current: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``(grad, precision)`` per row of the members' normal conditional at ``current``.

    Read off the standardised residuals of the ``involved`` equations and the members'
    level-1 covariance blocks, linearised (exact: each is affine in the members): the
    conditional mean is ``current - precision^-1 grad``. ``current``: rows × members; a
    member that is an incomplete predictor keeps its observed values.
    """
    rows, d = current.shape
    base = ev.full_values(lay, state, data)
    real = jnp.sqrt(data[ROW_REAL].astype(float))[:, None]

    def residuals(b):
        vals = dict(base)
        for k, n in enumerate(members):
            vals[n] = (
                jnp.where(data[observed_key(n)], data[n], b[:, k]) if n in lay.imputed else b[:, k]
            )
        parts = [ev.std_residual(lay, i, state, vals, ctx.weights[i]) for i in involved]
        for blk in own_blocks:
            eta = jnp.stack([vals[m] for m in blk.members], axis=-1)
            std = eta @ inverse_cholesky(state["cov"][blk.name]).T * real
            parts += [std[:, k] for k in range(std.shape[1])]
        return parts

    if not (involved or own_blocks):
        return jnp.zeros((rows, d)), jnp.zeros((rows, d, d))
    resid, jac = ev.jvp_columns(residuals, current, d)
    return gaussian_terms(resid, jac)


def _node_free(lay: Layout, name: str, data: Mapping[str, Any]) -> jax.Array:
    """1 on the rows where ``name`` is drawn: real rows, and for a predictor its missing ones."""
    real = data[ROW_REAL].astype(float)
    if name in lay.imputed:
        return real * (1 - data[observed_key(name)].astype(float))
    return real
