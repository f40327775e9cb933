"""An ordered variable's thresholds, then its latent responses (data augmentation).

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
much of the response. Every other step sees the latent response as the variable's value: its
equation is then a Gaussian one with residual variance 1.

An ordered predictor (probit; a binary mediator) enters its children's equations as ``u*``:
its responses' conditional is then the normal one of its own equation and its children's
(the node groups' linearised conditional, :func:`~.nodes.linear_terms`), with a per-row mean
and SD. The thresholds' Metropolis step integrates the responses out of that conditional
(the children's densities times the category's probability under it), the responses are cut
from it, and the scale move divides the children's free coefficients on ``u*`` by ``g``, so
their terms keep their value (it is off where a child has a fixed non-zero coefficient or a
random slope on ``u*``). The step owns the state's
``nodes`` entry (the responses) and ``thr`` entry (the thresholds' sampler state)
of its variable, and records the thresholds ``u|t1 ..``.
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

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout

#: Prefix of the state's ``nodes`` entry of a logit variable's Pólya–Gamma precisions.
PRECISION = "pg:"


@dataclass(frozen=True)
class OrderedResponses(StepDefaults):
    """Thresholds and latent responses of ordered variable ``variable``."""

    variable: Ordered
    equation: int  # position of its equation in the layout
    scalable: bool  # the scale move applies: no fixed non-zero coefficient
    blocks: tuple[CovBlock, ...] = ()  # the random-effect blocks of its equation
    start_key: int | None = None
    children: tuple[int, ...] = ()  # general equations whose mean holds its response
    inverse: tuple[tuple[int, int], ...] = ()  # (child, free slot): scaled by 1 / g

    @classmethod
    def of(cls, lay: Layout, variable: Ordered, start_key: int) -> OrderedResponses:
        """The step of one ordered variable."""
        u = variable.name
        i = next(k for k, e in enumerate(lay.equations) if e.target == u)
        eq = lay.equations[i]
        scalable = all(c.parameter.free or c.parameter.fixed == 0.0 for c in eq.coefficients)
        effects = {r.effect for r in eq.random}
        blocks = tuple(b for b in lay.blocks if b.level is not None and set(b.members) & effects)
        children = tuple(j for j in involved_equations(lay, (u,)) if j != i)
        inverse = []
        for j in children:  # a child's terms in u* keep their value when scaled by 1 / g
            child = lay.equations[j]
            for p, c in enumerate(child.coefficients):
                if u not in c.factors:
                    continue
                if p in lay.free_coefs[j] and c.factors.count(u) == 1:
                    inverse.append((j, lay.free_coefs[j].index(p)))
                elif c.parameter.fixed != 0.0:
                    scalable = False
            scalable &= not any(u in r.factors for r in child.random)
        return cls(variable, i, scalable, blocks, start_key, children, tuple(inverse))

    @property
    def mask(self) -> jax.Array:
        """1 × (K-1): every threshold slot is used."""
        return jnp.ones((1, self.variable.categories - 1), dtype=bool)

    @property
    def moving(self) -> jax.Array:
        """1 × (K-1): the free thresholds (all but the first where the intercept is free)."""
        return jnp.asarray([[t.free for t in self.variable.thresholds()]])

    @property
    def n_free(self) -> int:
        """How many thresholds are free."""
        return sum(t.free for t in self.variable.thresholds())

    @property
    def logit(self) -> bool:
        """Whether the link is the logit."""
        return self.variable.link == "logit"

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """A key (thresholds, responses, scale); under the logit the precisions' uniforms."""
        rows = data[ROW_REAL].shape[0]
        uniform = {self.variable.name: 2 * TERMS * rows} if self.logit else {}
        return NoiseSizes(uniform=uniform, keys=1)

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """Thresholds at the normal quantiles of the observed cumulative proportions.

        Responses drawn in their categories around 0.
        """
        u, k = self.variable.name, self.variable.categories
        real = data[ROW_REAL].astype(float)
        obs = data[observed_key(u)].astype(float) * real
        below = ((data[u][:, None] < jnp.arange(1, k)) * obs[:, None]).sum(0)
        prop = jnp.clip(below / jnp.maximum(obs.sum(), 1.0), 0.02, 0.98)
        tau = jax.lax.cummax(jax.scipy.special.ndtri(prop)) + 0.05 * jnp.arange(k - 1)
        if self.variable.intercept:  # the first at 0, the intercept's start (0) stands in
            tau = tau - tau[0]
        start = ordinal.threshold_start(ordinal.unconstrain(tau[None, :]))
        ystar = self._responses(key, data, start, jnp.zeros(real.shape))
        nodes = {u: ystar}
        if self.logit:  # the logistic's variance, pi^2 / 3, as a precision per row
            nodes[PRECISION + u] = jnp.full(real.shape, 3 / jnp.pi**2)
        return {"nodes": nodes, "thr": {u: start}}

    def _responses(
        self,
        key: jax.Array,
        data: Mapping[str, Any],
        thr: ordinal.ThresholdState,
        mean: Any,
        sd: Any = 1.0,
    ) -> jax.Array:
        """Latent responses cut to their categories where observed, uncut elsewhere.

        ``mean`` and ``sd``: their conditional's (``sd`` 1 but for a predictor's).
        """
        u = self.variable.name
        k_cut, k_free = jax.random.split(key)
        tau = ordinal.thresholds(thr.u, self.mask)
        link = self.variable.link
        cut = ordinal.latent_responses(
            k_cut, link, data[u][:, None], tau, mean[:, None], _column(sd)
        )[:, 0]
        noise = jax.random.logistic if self.logit else jax.random.normal
        free = mean + sd * noise(k_free, mean.shape)
        return jnp.where(data[observed_key(u)], cut, free)

    def _conditional(
        self, state: State, data: Mapping[str, Any], ctx: Context
    ) -> tuple[jax.Array, jax.Array]:
        """Mean and SD per row of a predictor's response given its equation and its children's.

        The node groups' linearised conditional (:func:`~.nodes.linear_terms`) of the one
        member ``u*``; a padding row gets N(0, 1).
        """
        u = self.variable.name
        current = state["nodes"][u][:, None]
        involved = (self.equation, *self.children)
        grad, precision = linear_terms(ctx.layout, state, data, ctx, (u,), involved, (), current)
        real = data[ROW_REAL]
        precision = jnp.where(real, precision[:, 0, 0], 1.0)
        centre = jnp.where(real, current[:, 0] - grad[:, 0] / precision, 0.0)
        return centre, 1.0 / jnp.sqrt(precision)

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Thresholds given the equation's mean, then the latent responses."""
        lay, i = ctx.layout, self.equation
        u = self.variable.name
        eq = lay.equations[i]
        vals = ev.full_values(lay, state, data)
        coefs = ev.coef_vector(eq, state["coef"].get(u, jnp.zeros(0)), lay.free_coefs[i])
        rows = data[ROW_REAL].shape[0]
        mean = jnp.broadcast_to(ev.equation_mean(eq, coefs, vals), (rows,))
        # a predictor's response given its children too: normal around ``centre``, SD ``sd``
        centre, sd = self._conditional(state, data, ctx) if self.children else (mean, 1.0)
        weight = (data[observed_key(u)] & data[ROW_REAL]).astype(float)
        k_thr, k_resp = jax.random.split(noise.keys[0])
        thr = state["thr"][u]
        if self.n_free:
            thr = ordinal.threshold_step(
                k_thr,
                thr,
                self.variable.link,
                data[u][:, None],
                weight[:, None],
                centre[:, None],
                self.mask,
                ctx.priors.coef_sd,
                ctx.adapt,
                self.moving,
                _column(sd),
            )
        ystar = self._responses(k_resp, data, thr, centre, sd)
        nodes = {**state["nodes"]}
        precision = jnp.ones(rows)
        if self.logit:
            uniforms = noise.uniform[u].reshape(2, TERMS, rows)
            precision = pg_draw(uniforms, ystar - mean)
            nodes[PRECISION + u] = precision
        coef = state["coef"].get(u, jnp.zeros(0))
        re, cov = state["re"], state["cov"]
        if self.scalable:
            g = self._scale(noise.keys[0], ystar, mean, precision, coef, thr, state, data, ctx)
            real = data[ROW_REAL]
            ystar = jnp.where(real, g * ystar, ystar)
            coef = g * coef
            first, log_gaps = thr.u[:, :1], thr.u[:, 1:]
            thr = thr._replace(u=jnp.concatenate([g * first, log_gaps + jnp.log(g)], -1))
            child_coef = dict(state["coef"])
            for j, k in self.inverse:
                t = lay.equations[j].target
                child_coef[t] = child_coef[t].at[k].divide(g)
            state = {**state, "coef": child_coef}
            re, cov = dict(re), dict(cov)
            for b in self.blocks:
                there = data[cluster_key(b.level)][:, None]
                re[b.name] = jnp.where(there, g * re[b.name], re[b.name])
                cov[b.name] = g**2 * cov[b.name]
        return {
            **state,
            "re": re,
            "cov": cov,
            "coef": {**state["coef"], u: coef} if u in state["coef"] else state["coef"],
            "nodes": {**nodes, u: ystar},
            "thr": {**state["thr"], u: thr},
        }

    def _scale(self, key, ystar, mean, precision, coef, thr, state, data, ctx) -> jax.Array:
        """``g`` of the scale move: ``-a g^2 / 2 + b g - c / g^2 + d / g + (D - E - 1) log g``.

        ``a``: the responses' squared residuals (times their precisions) plus the free
        coefficients' and thresholds' squares over their prior variances; ``b``: the
        coefficients' prior means' pull; ``D``: how many values the move scales (Jacobian
        ``g^D``, Haar measure ``1 / g``). A predictor's children's coefficients on ``u*``
        (``E`` of them, Jacobian ``g^-E``) are scaled by ``1 / g``, so their terms keep their
        value: ``c`` and ``d`` are their normal priors' square and mean terms. Random effects
        scaled with their covariance keep their density but for its normaliser, which their
        Jacobian cancels; the covariance's prior and its entries' Jacobian ``g^(q (q + 1))``
        enter as a correction of the draw.
        """
        lay, i = ctx.layout, self.equation
        real = data[ROW_REAL].astype(float)
        means, sds = map(
            jnp.asarray, ctx.priors.equation_prior(lay.equations[i], lay.free_coefs[i])
        )
        tau = ordinal.thresholds(thr.u, self.mask)[0]
        tau_var = ctx.priors.coef_sd**2
        a = (real * precision * (ystar - mean) ** 2).sum() + (coef**2 / sds**2).sum()
        a = a + (tau**2).sum() / tau_var
        b = (coef * means / sds**2).sum()
        dims = real.sum() + coef.size + self.n_free
        priors = ctx.priors

        def covariance_prior(g: jax.Array) -> jax.Array:
            out = jnp.asarray(0.0)
            for blk in self.blocks:
                q = len(blk.members)
                pa, pb = priors.block_variance_prior(blk)
                phi = state["cov"][blk.name]

                def log_prior(m, pa=pa, pb=pb):
                    return lkj_log_prior(m, priors.lkj_eta, priors.cov_prior, pa, pb)

                out = out + log_prior(g**2 * phi) - log_prior(phi) + q * (q + 1) * jnp.log(g)
            return out

        c, d = jnp.asarray(0.0), jnp.asarray(0.0)
        for j, k in self.inverse:
            child = lay.equations[j]
            (m,), (s,) = priors.equation_prior(child, (lay.free_coefs[j][k],))
            beta = state["coef"][child.target][k]
            c, d = c + beta**2 / (2 * s**2), d + beta * m / s**2
        extra = covariance_prior if self.blocks else None
        e = dims - len(self.inverse) - 1
        key = jax.random.fold_in(key, 1)
        return group_scale(key, a, b, c, e, extra, d=d if self.inverse else None)

    def after(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """Under the logit, the equation's row weights times the precisions just drawn."""
        if not self.logit:
            return ctx
        i = self.equation
        w = ev.weight(ctx.layout.equations[i], ctx.layout, data)
        weights = {**ctx.weights, i: w * state["nodes"][PRECISION + self.variable.name]}
        return ctx.with_(weights=weights)

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """The thresholds, by lavaan name."""
        tau = ordinal.thresholds(state["thr"][self.variable.name].u, self.mask)[0]
        return {p.name: tau[k] for k, p in enumerate(self.variable.thresholds()) if p.free}


def _column(sd: Any) -> Any:
    """A per-row SD as the N × 1 column the ordinal blocks take (a number as it is)."""
    return sd[:, None] if jnp.ndim(sd) else sd
