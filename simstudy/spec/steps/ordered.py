"""Ordered variables' thresholds, then their latent responses (data augmentation).

The variables with the same categories and link are one step (one batch: the thresholds' step
and the responses over an N × m array, the variables' values computed once); a variable whose
equation has random effects has one of its own.

Albert & Chib (1993) with Cowles (1996)'s point: thresholds drawn given the latent responses
barely move, so they move by a Metropolis step with the responses integrated out
(:func:`~simstudy.blocks.ordinal.threshold_step`, its proposal learnt in warm-up only); then
each latent response is drawn from its normal (probit) or logistic (logit) conditional cut to
its category's interval (uncut where the category is missing). Under the logit link each
row's residual then gets a Pólya–Gamma precision ``w ~ PG(2, u* - mean)``
(:mod:`simstudy.blocks.polya_gamma`): given ``w`` the residual is normal with variance
``1 / w``, and the equation's row weights (``Context.weights``) carry ``w`` for every later
step. Then, where the equation's mean has no fixed non-zero coefficient (a marker loading), a
scale move (Liu & Wu 1999's parameter expansion): responses, free coefficients, thresholds and
the equation's random effects times one ``g`` (their covariance block times ``g^2``), drawn
from its conditional, which leaves every category where it is: the data augmentation alone
moves along that direction in small steps when the coefficients or random effects explain
much of the response. A lone variable's random effects that no other equation holds also move
with its responses integrated out, before they are drawn (:mod:`.ordered_effects`). Every
other step sees the latent response as the variable's value: its equation is then a Gaussian
one with residual variance 1.

An ordered predictor (probit; a binary mediator) has a step of its own and enters its
children's equations as ``u*``: its responses' conditional is then the normal one of its own
equation and its children's (the node groups' linearised conditional,
:func:`~.nodes.linear_terms`), with a per-row mean and SD. The thresholds' Metropolis step
integrates the responses out of that conditional (the children's densities times the
category's probability under it), the responses are cut from it, and the scale move divides
the children's free coefficients on ``u*`` by ``g``, so their terms keep their value (it is
off where a child has a fixed non-zero coefficient or a random slope on ``u*``). The step owns
the state's ``nodes`` entries (the responses) and ``thr`` entries (the thresholds' sampler
states) of its variables, and records the thresholds ``u|t1 ..``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from simstudy.blocks import ordinal
from simstudy.blocks.covariance import lkj_log_prior
from simstudy.blocks.group import group_scale
from simstudy.blocks.polya_gamma import TERMS, pg_draw
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import CovBlock, Ordered
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults
from simstudy.spec.steps.nodes import involved_equations, linear_terms
from simstudy.spec.steps.ordered_effects import collapsed_effects, collapsible

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout

#: Prefix of the state's ``nodes`` entry of a logit variable's Pólya–Gamma precisions.
PRECISION = "pg:"


def responses(
    key: jax.Array,
    variable: Ordered,
    data: Mapping[str, Any],
    thr: ordinal.ThresholdState,
    mean: jax.Array,
) -> jax.Array:
    """Latent responses of ``variable`` cut to their categories where observed, uncut elsewhere.

    ``mean``: the equation's mean per row; ``thr``: the thresholds' state (1 × (K-1)).
    """
    tau = ordinal.thresholds(thr.u, jnp.ones((1, variable.categories - 1), dtype=bool))
    uniform = jax.random.uniform(key, (1, mean.shape[0]))
    return _responses(uniform, (variable,), data, tau, mean[None, :], 1.0)[0]


def _codes(variables: tuple[Ordered, ...], data: Mapping[str, Any]) -> jax.Array:
    """The categories of ``variables`` (m × N), -1 where missing (an uncut draw there)."""
    return jnp.stack([jnp.where(data[observed_key(v.name)], data[v.name], -1.0) for v in variables])


def _responses(
    uniform: jax.Array,
    variables: tuple[Ordered, ...],
    data: Mapping[str, Any],
    tau: jax.Array,
    mean: jax.Array,
    sd: Any,
) -> jax.Array:
    """The latent responses of ``variables``, m × N (one link, thresholds ``tau``: m × (K-1)).

    ``mean`` and ``sd``: their conditional's (``sd`` 1 but for a predictor's, 1 × N);
    ``uniform``: a U(0, 1) per response (m × N). Items by rows (each item's rows
    contiguous): under a batch of chains several times faster on XLA's CPU backend than rows
    by items (:func:`~simstudy.blocks.ordinal.bounds`).
    """
    link = variables[0].link
    codes = _codes(variables, data)
    return ordinal.latent_responses(
        None, link, codes, tau, mean, sd, noise=uniform, items_first=True
    )


def _stack(states: list[ordinal.ThresholdState]) -> ordinal.ThresholdState:
    """One threshold state of several variables' (each 1 × (K-1)), stacked by rows."""
    return ordinal.ThresholdState(*(jnp.concatenate(parts) for parts in zip(*states, strict=True)))


def _row(state: ordinal.ThresholdState, k: int) -> ordinal.ThresholdState:
    """Variable ``k``'s threshold state (1 × (K-1)) of a stacked one."""
    return ordinal.ThresholdState(*(part[k : k + 1] for part in state))


def ordered_steps(lay: Layout, first_key: int) -> list[OrderedResponses]:
    """The ordered variables' steps, one batch per (categories, link).

    A variable whose equation has random effects, or that is a predictor, has a step of its
    own. Start keys from ``first_key``, one per step.
    """
    groups: dict[Any, list[Ordered]] = {}
    for o in lay.ordered:
        i = next(k for k, e in enumerate(lay.equations) if e.target == o.name)
        alone = lay.equations[i].random or _children(lay, o.name, i)
        key = o.name if alone else (o.categories, o.link)
        groups.setdefault(key, []).append(o)
    return [
        OrderedResponses.of(lay, tuple(vs), first_key + k) for k, vs in enumerate(groups.values())
    ]


def _children(lay: Layout, u: str, i: int) -> tuple[int, ...]:
    """The general equations other than ``u``'s own (``i``) whose mean holds ``u``."""
    return tuple(j for j in involved_equations(lay, (u,)) if j != i)


@dataclass(frozen=True)
class OrderedResponses(StepDefaults):
    """Thresholds and latent responses of ordered variables with the same categories and link.

    A variable whose equation has random effects has a step of its own (its scale move
    carries its blocks).
    """

    variables: tuple[Ordered, ...]
    equations: tuple[int, ...]  # positions of their equations in the layout
    scalable: tuple[bool, ...]  # per variable: the scale move applies
    blocks: tuple[CovBlock, ...] = ()  # the random-effect blocks of a lone variable's equation
    collapsed: tuple[CovBlock, ...] = ()  # those moved with the responses integrated out
    start_key: int | None = None
    children: tuple[int, ...] = ()  # a lone predictor's: equations whose mean holds u*
    inverse: tuple[tuple[int, int], ...] = ()  # (child, free slot): scaled by 1 / g
    measured: tuple[int, ...] = ()  # per variable: its place among the indicators (-1: general)

    @classmethod
    def of(cls, lay: Layout, variables: tuple[Ordered, ...], start_key: int) -> OrderedResponses:
        """The step of ``variables`` (one, or several with no random effects)."""
        index = [
            next(k for k, e in enumerate(lay.equations) if e.target == o.name) for o in variables
        ]
        scalable = (True,) * len(variables)  # fixed terms of its own mean: see _scale
        m = lay.measurement
        held = m.targets if m is not None else ()
        measured = tuple(held.index(o.name) if o.name in held else -1 for o in variables)
        effects = {r.effect for i in index for r in lay.equations[i].random}
        blocks = tuple(b for b in lay.blocks if b.level is not None and set(b.members) & effects)
        children = _children(lay, variables[0].name, index[0])
        if (blocks or children) and len(variables) > 1:
            raise ValueError("an ordered variable with random effects or children is alone")
        collapsed = collapsible(lay, index[0], blocks) if blocks else ()
        inverse, u = [], variables[0].name
        for j in children:  # a child's terms in u* keep their value when scaled by 1 / g
            child = lay.equations[j]
            for p, c in enumerate(child.coefficients):
                if u not in c.factors:
                    continue
                if p in lay.free_coefs[j] and c.factors.count(u) == 1:
                    inverse.append((j, lay.free_coefs[j].index(p)))
                elif c.parameter.fixed != 0.0:
                    scalable = (False,)
            if any(u in r.factors for r in child.random):
                scalable = (False,)
        return cls(
            tuple(variables), tuple(index), scalable, blocks, collapsed, start_key,
            children, tuple(inverse), measured,
        )  # fmt: skip

    @property
    def categories(self) -> int:
        """The variables' number of categories."""
        return self.variables[0].categories

    @property
    def mask(self) -> jax.Array:
        """Every threshold slot is used (m × (K-1), m variables)."""
        return jnp.ones((len(self.variables), self.categories - 1), dtype=bool)

    @property
    def moving(self) -> jax.Array:
        """The free thresholds, m × (K-1): all but the first where the intercept is free."""
        return jnp.asarray([[t.free for t in v.thresholds()] for v in self.variables])

    @property
    def n_free(self) -> tuple[int, ...]:
        """How many thresholds of each variable are free."""
        return tuple(sum(t.free for t in v.thresholds()) for v in self.variables)

    @property
    def logit(self) -> bool:
        """Whether the link is the logit."""
        return self.variables[0].link == "logit"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """Every draw's noise, drawn with the sweep's (one call each for normals and uniforms).

        Thresholds: a normal per slot and a uniform per variable; responses: a uniform
        each; per collapsed block, a normal per effect and a uniform per cluster, and a normal
        and a uniform per effect's scale; the scale move: a normal and a uniform per
        variable; under the logit, the precisions' uniforms.
        """
        rows = data[ROW_REAL].shape[0]
        m, d = len(self.variables), self.categories - 1
        normal: dict[str, int] = {}
        uniform: dict[str, int] = {"responses": rows * m}
        if any(self.n_free):
            normal["thresholds"], uniform["thresholds"] = m * d, m
        for n, blk in enumerate(self.collapsed):
            clusters, q = data[cluster_key(blk.level)].shape[0], len(blk.members)
            normal[f"effects{n}"], uniform[f"effects{n}"] = clusters * q, clusters
            normal[f"scales{n}"], uniform[f"scales{n}"] = q, q
        if any(self.scalable):
            normal["g"], uniform["g"] = m, m
        if self.logit:
            uniform |= {v.name: 2 * TERMS * rows for v in self.variables}
        return NoiseSizes(normal=normal, uniform=uniform)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Thresholds at the normal quantiles of the observed cumulative proportions.

        Responses drawn in their categories around 0.
        """
        nodes, thr = {}, {}
        real = data[ROW_REAL].astype(float)
        for n, v in enumerate(self.variables):
            u, k = v.name, v.categories
            obs = data[observed_key(u)].astype(float) * real
            below = ((data[u][:, None] < jnp.arange(1, k)) * obs[:, None]).sum(0)
            prop = jnp.clip(below / jnp.maximum(obs.sum(), 1.0), 0.02, 0.98)
            tau = jax.lax.cummax(jax.scipy.special.ndtri(prop)) + 0.05 * jnp.arange(k - 1)
            if v.intercept:  # the first at 0, the intercept's start (0) stands in
                tau = tau - tau[0]
            start = ordinal.threshold_start(ordinal.unconstrain(tau[None, :]))
            nodes[u] = responses(jax.random.fold_in(key, n), v, data, start, jnp.zeros(real.shape))
            if self.logit:  # the logistic's variance, pi^2 / 3, as a precision per row
                nodes[PRECISION + u] = jnp.full(real.shape, 3 / jnp.pi**2)
            thr[u] = start
        return {"nodes": nodes, "thr": thr}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Thresholds given the equations' means, then the latent responses (one batch)."""
        lay = ctx.layout
        names = [v.name for v in self.variables]
        vals = ev.full_values(lay, state, data)  # once for every variable of the step
        rows = data[ROW_REAL].shape[0]
        real = data[ROW_REAL]
        coefs = {u: self._free(state, k, lay) for k, u in enumerate(names)}
        mean = self._means(coefs, vals, lay, rows)  # m × N: each variable's rows contiguous
        # a predictor's response given its children too: normal around ``centre``, SD ``sd``
        centre, sd = self._conditional(state, data, ctx) if self.children else (mean, 1.0)
        weight = jnp.stack([(data[observed_key(u)] & real).astype(float) for u in names])
        thr = _stack([state["thr"][u] for u in names])
        m = len(names)
        if any(self.n_free):
            z_thr = noise.normal["thresholds"].reshape(thr.u.shape)
            thr = ordinal.threshold_step(
                None, thr, self.variables[0].link, _codes(self.variables, data), weight,
                centre, self.mask, ctx.priors.coef_sd, ctx.adapt, self.moving, sd,
                noise=(z_thr, noise.uniform["thresholds"]), items_first=True,
            )  # fmt: skip
        if self.collapsed:  # a lone variable's own random effects
            state = collapsed_effects(noise, self, state, data, _row(thr, 0), ctx)
            mean = centre = self._means(coefs, ev.full_values(lay, state, data), lay, rows)
        tau = ordinal.thresholds(thr.u, self.mask)
        u_resp = noise.uniform["responses"].reshape(m, rows)
        ystar = _responses(u_resp, self.variables, data, tau, centre, sd)
        nodes = {**state["nodes"]}
        precision = jnp.ones((len(names), rows))
        if self.logit:
            uniforms = [noise.uniform[u].reshape(2, TERMS, rows) for u in names]
            precision = jnp.stack([pg_draw(w, ystar[k] - mean[k]) for k, w in enumerate(uniforms)])
            nodes |= {PRECISION + u: precision[k] for k, u in enumerate(names)}
        re, cov = state["re"], state["cov"]
        if any(self.scalable):
            fixed = self._fixed(vals, lay, rows)
            g_noise = (noise.normal["g"], noise.uniform["g"])
            g = self._scale(g_noise, ystar, mean, fixed, precision, coefs, thr, state, data, ctx)
            g = jnp.where(jnp.asarray(self.scalable), g, 1.0)
            ystar = jnp.where(real, g[:, None] * ystar, ystar)
            coefs = {u: g[k] * c for k, (u, c) in enumerate(coefs.items())}
            first, log_gaps = thr.u[:, :1], thr.u[:, 1:]
            thr = thr._replace(
                u=jnp.concatenate([g[:, None] * first, log_gaps + jnp.log(g)[:, None]], -1)
            )
            child_coef = dict(state["coef"])
            for j, k in self.inverse:  # a lone predictor's children
                t = lay.equations[j].target
                child_coef[t] = child_coef[t].at[k].divide(g[0])
            state = {**state, "coef": child_coef}
            re, cov = dict(re), dict(cov)
            for b in self.blocks:  # a lone variable's
                there = data[cluster_key(b.level)][:, None]
                re[b.name] = jnp.where(there, g[0] * re[b.name], re[b.name])
                cov[b.name] = g[0] ** 2 * cov[b.name]
        nodes |= {u: ystar[k] for k, u in enumerate(names)}
        coef = {**state["coef"], **{u: c for u, c in coefs.items() if u in state["coef"]}}
        if any(j >= 0 for j in self.measured):
            state = {**state, "meas": self._measured_back(state["meas"], coefs, lay)}
        return {
            **state,
            "re": re,
            "cov": cov,
            "coef": coef,
            "nodes": nodes,
            "thr": {**state["thr"], **{u: _row(thr, k) for k, u in enumerate(names)}},
        }

    def _conditional(
        self, state: State, data: Mapping[str, Any], ctx: Context
    ) -> tuple[jax.Array, jax.Array]:
        """Mean and SD (1 × N) of a lone predictor's responses given its and its children's means.

        The node groups' linearised conditional (:func:`~.nodes.linear_terms`) of the one
        member ``u*``; a padding row gets N(0, 1).
        """
        u = self.variables[0].name
        current = state["nodes"][u][:, None]
        involved = (self.equations[0], *self.children)
        grad, precision = linear_terms(ctx.layout, state, data, ctx, (u,), involved, (), current)
        real = data[ROW_REAL]
        precision = jnp.where(real, precision[:, 0, 0], 1.0)
        centre = jnp.where(real, current[:, 0] - grad[:, 0] / precision, 0.0)
        return centre[None, :], (1.0 / jnp.sqrt(precision))[None, :]

    def _free(self, state: State, k: int, lay: Layout) -> jax.Array:
        """Variable ``k``'s free coefficients, as its equation orders them.

        Its ``coef`` entry, or where the measurement step holds it (an indicator), its free
        intercept and loading from the ``meas`` part.
        """
        j, u = self.measured[k] if self.measured else -1, self.variables[k].name
        if j < 0:
            return state["coef"].get(u, jnp.zeros(0))
        parts = (state["meas"]["nu"][j], state["meas"]["lam"][j])  # positions 0 and 1
        free = lay.free_coefs[self.equations[k]]
        return jnp.stack([parts[p] for p in free]) if free else jnp.zeros(0)

    def _measured_back(
        self, meas: Mapping[str, jax.Array], coefs: Mapping[str, jax.Array], lay: Layout
    ) -> dict[str, jax.Array]:
        """The ``meas`` part with the indicators' free coefficients from ``coefs``."""
        nu, lam = meas["nu"], meas["lam"]
        for k, j in enumerate(self.measured):
            if j < 0:
                continue
            coef = coefs[self.variables[k].name]
            for slot, p in enumerate(lay.free_coefs[self.equations[k]]):
                if p == 0:
                    nu = nu.at[j].set(coef[slot])
                else:
                    lam = lam.at[j].set(coef[slot])
        return {**meas, "nu": nu, "lam": lam}

    def _means(
        self, coefs: Mapping[str, jax.Array], vals: Mapping[str, Any], lay: Layout, rows: int
    ) -> jax.Array:
        """The variables' equation means, m × N (``coefs``: each one's free coefficients)."""
        return jnp.stack(
            [
                jnp.broadcast_to(
                    ev.equation_mean(
                        lay.equations[i],
                        ev.coef_vector(lay.equations[i], coefs[v.name], lay.free_coefs[i]),
                        vals,
                    ),
                    (rows,),
                )
                for v, i in zip(self.variables, self.equations, strict=True)
            ]
        )

    def _fixed(self, vals: Mapping[str, Any], lay: Layout, rows: int) -> jax.Array:
        """The terms of the variables' means with a fixed non-zero coefficient, m × N.

        A marker loading's ``1 * f``: the scale move does not scale them.
        """
        out = []
        for i in self.equations:
            part = sum(
                c.parameter.fixed * ev.product(vals, c.factors)
                for c in lay.equations[i].coefficients
                if c.parameter.fixed not in (None, 0.0)
            )
            out.append(jnp.broadcast_to(jnp.asarray(part, dtype=float), (rows,)))
        return jnp.stack(out)

    def _scale(self, noise, ystar, mean, fixed, precision, coefs, thr, state, data, ctx):
        """Per variable, ``g`` of the scale move.

        Its log density is ``-a g^2 / 2 + b g - c / g^2 + d / g + (D - E - 1) log g``. ``a``:
        the responses' squared moving residuals ``r = u* - (mean - fixed)`` (times their
        precisions) plus the free coefficients' and thresholds' squares over their prior
        variances; ``b``: the coefficients' prior means' pull, and ``sum r * fixed`` where the
        mean has terms with a fixed coefficient (``fixed``, m × N: a marker's ``1 * f``, which
        the move leaves, so the residual becomes ``g r - fixed``: Liu & Sabatti's group move of
        a marker item, as the hand-written CFA sampler's item scale move); ``D``: how many
        values the move scales (Jacobian ``g^D``, Haar measure ``1 / g``). A lone predictor's
        children's coefficients on ``u*`` (``E`` of them, Jacobian ``g^-E``) are scaled by
        ``1 / g``, so their terms keep their value: ``c`` and ``d`` are their normal priors'
        square and mean terms. Random effects scaled with their
        covariance keep their density but for its normaliser, which their Jacobian cancels; the
        covariance's prior and its entries' Jacobian ``g^(q (q + 1))`` enter as a correction of
        the draw.
        """
        lay = ctx.layout
        real = data[ROW_REAL].astype(float)
        tau = ordinal.thresholds(thr.u, self.mask)
        moving = real * precision * (ystar - mean + fixed)
        a = (moving * (ystar - mean + fixed)).sum(-1)
        a = a + (tau**2).sum(-1) / ctx.priors.coef_sd**2
        pull = (moving * fixed).sum(-1)
        b, dims = [], []
        for k, (coef, i) in enumerate(zip(coefs.values(), self.equations, strict=True)):
            means, sds = map(
                jnp.asarray, ctx.priors.equation_prior(lay.equations[i], lay.free_coefs[i])
            )
            a = a.at[k].add((coef**2 / sds**2).sum())
            b.append((coef * means / sds**2).sum())
            dims.append(coef.size + self.n_free[k])
        b = jnp.stack(b) + pull
        dims = real.sum() + jnp.asarray(dims, dtype=float)
        priors = ctx.priors

        def covariance_prior(g: jax.Array) -> jax.Array:
            out = jnp.zeros_like(g)
            for blk in self.blocks:
                q = len(blk.members)
                pa, pb = priors.block_variance_prior(blk)
                phi = state["cov"][blk.name]

                def log_prior(m, pa=pa, pb=pb):
                    return lkj_log_prior(m, priors.lkj_eta, priors.cov_prior, pa, pb)

                out = out + log_prior(g[0] ** 2 * phi) - log_prior(phi) + q * (q + 1) * jnp.log(g)
            return out

        c, d = jnp.zeros_like(a), jnp.zeros_like(a)
        for j, k in self.inverse:  # a lone predictor's (m = 1)
            child = lay.equations[j]
            (mu,), (sd,) = priors.equation_prior(child, (lay.free_coefs[j][k],))
            beta = state["coef"][child.target][k]
            c, d = c + beta**2 / (2 * sd**2), d + beta * mu / sd**2
        extra = covariance_prior if self.blocks else None
        e = dims - len(self.inverse) - 1
        return group_scale(
            None,
            a,
            b,
            c,
            e,
            extra,
            noise=(noise[0], jnp.log(noise[1])),
            d=d if self.inverse else None,
        )

    def after(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """Under the logit, the equations' row weights times the precisions just drawn."""
        if not self.logit:
            return ctx
        weights = dict(ctx.weights)
        for v, i in zip(self.variables, self.equations, strict=True):
            w = ev.weight(ctx.layout.equations[i], ctx.layout, data)
            weights[i] = w * state["nodes"][PRECISION + v.name]
        return ctx.with_(weights=weights)

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """The thresholds, by lavaan name."""
        out = {}
        for v in self.variables:
            tau = ordinal.thresholds(state["thr"][v.name].u, self.mask[:1])[0]
            out |= {p.name: tau[k] for k, p in enumerate(v.thresholds()) if p.free}
        return out
