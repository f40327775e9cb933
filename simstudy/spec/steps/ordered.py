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
equation is then a Gaussian one with residual variance 1. The step owns the state's
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
from simstudy.blocks.group import group_scale, rescale_covariance
from simstudy.blocks.newton import newton_cluster_step, newton_scalar_step
from simstudy.blocks.polya_gamma import TERMS, pg_draw
from simstudy.spec import evaluate as ev
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import CovBlock, Ordered
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout

#: Prefix of the state's ``nodes`` entry of a logit variable's Pólya–Gamma precisions.
PRECISION = "pg:"


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


@dataclass(frozen=True)
class OrderedResponses(StepDefaults):
    """Thresholds and latent responses of ordered variable ``variable``."""

    variable: Ordered
    equation: int  # position of its equation in the layout
    scalable: bool  # the scale move applies: no fixed non-zero coefficient
    blocks: tuple[CovBlock, ...] = ()  # the random-effect blocks of its equation
    collapsed: tuple[CovBlock, ...] = ()  # those moved with the responses integrated out
    start_key: int | None = None

    @classmethod
    def of(cls, lay: Layout, variable: Ordered, start_key: int) -> OrderedResponses:
        """The step of one ordered variable."""
        i = next(k for k, e in enumerate(lay.equations) if e.target == variable.name)
        eq = lay.equations[i]
        scalable = all(c.parameter.free or c.parameter.fixed == 0.0 for c in eq.coefficients)
        effects = {r.effect for r in eq.random}
        blocks = tuple(b for b in lay.blocks if b.level is not None and set(b.members) & effects)
        return cls(variable, i, scalable, blocks, collapsible(lay, i, blocks), start_key)

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
        self, key: jax.Array, data: Mapping[str, Any], thr: ordinal.ThresholdState, mean: Any
    ) -> jax.Array:
        """Latent responses cut to their categories where observed, uncut elsewhere."""
        u = self.variable.name
        k_cut, k_free = jax.random.split(key)
        tau = ordinal.thresholds(thr.u, self.mask)
        link = self.variable.link
        cut = ordinal.latent_responses(k_cut, link, data[u][:, None], tau, mean[:, None])[:, 0]
        noise = jax.random.logistic if self.logit else jax.random.normal
        free = mean + noise(k_free, mean.shape)
        return jnp.where(data[observed_key(u)], cut, free)

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Thresholds given the equation's mean, then the latent responses."""
        lay, i = ctx.layout, self.equation
        u = self.variable.name
        eq = lay.equations[i]
        vals = ev.full_values(lay, state, data)
        coefs = ev.coef_vector(eq, state["coef"].get(u, jnp.zeros(0)), lay.free_coefs[i])
        rows = data[ROW_REAL].shape[0]
        mean = jnp.broadcast_to(ev.equation_mean(eq, coefs, vals), (rows,))
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
                mean[:, None],
                self.mask,
                ctx.priors.coef_sd,
                ctx.adapt,
                self.moving,
            )
        if self.collapsed:
            state = self._collapsed_effects(jax.random.fold_in(k_thr, 1), state, data, thr, ctx)
            vals = ev.full_values(lay, state, data)
            mean = jnp.broadcast_to(ev.equation_mean(eq, coefs, vals), (rows,))
        ystar = self._responses(k_resp, data, thr, mean)
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

    def _collapsed_effects(
        self, key: jax.Array, state: State, data: Mapping[str, Any], thr: Any, ctx: Context
    ) -> State:
        """Each collapsible block's effects by Newton–Metropolis on the categories' likelihood."""
        lay, i, u = ctx.layout, self.equation, self.variable.name
        eq = lay.equations[i]
        coefs = ev.coef_vector(eq, state["coef"].get(u, jnp.zeros(0)), lay.free_coefs[i])
        rows = data[ROW_REAL].shape[0]
        weight = (data[observed_key(u)] & data[ROW_REAL]).astype(float)
        tau = ordinal.thresholds(thr.u, self.mask)[0]
        link, y = self.variable.link, data[u]

        def loglik(eta):
            return weight * ordinal.category_log_prob(link, tau, y, eta)

        re, covs = dict(state["re"]), dict(state["cov"])
        for n, blk in enumerate(self.collapsed):
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
            effects = newton_cluster_step(
                jax.random.fold_in(key, 2 * n),
                current,
                jnp.linalg.inv(cov),
                offset,
                cols,
                group,
                real,
                loglik,
            )
            effects, cov = self._collapsed_scales(
                jax.random.fold_in(key, 2 * n + 1),
                blk,
                effects,
                cov,
                offset,
                cols,
                data,
                loglik,
                ctx,
            )
            re[blk.name] = effects
            covs[blk.name] = cov
        return {**state, "re": re, "cov": covs}

    def _collapsed_scales(self, key, blk, effects, cov, offset, cols, data, loglik, ctx):
        """Each effect's scale with its variance (non-centred), responses integrated out.

        ``b_k -> c b_k`` on every cluster with row and column ``k`` of the covariance times
        ``c``: the effects' density and their Jacobian cancel, leaving the categories'
        likelihood, the covariance's prior and its entries' Jacobian ``c^(q + 1)``; ``t =
        log c`` by a Newton–Metropolis step (Haar measure ``dc / c``).
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

            def log_target(t, base=base, moved=moved, cov=cov, k=k):
                c = jnp.exp(t)
                eta = base + (c - 1.0) * moved
                return loglik(eta).sum() + log_prior(rescale_covariance(cov, k, c)) + (q + 1) * t

            c = jnp.exp(newton_scalar_step(jax.random.fold_in(key, k), log_target))
            effects = jnp.where(real[:, None], effects.at[:, k].multiply(c), effects)
            cov = rescale_covariance(cov, k, c)
        return effects, cov

    def _scale(self, key, ystar, mean, precision, coef, thr, state, data, ctx) -> jax.Array:
        """``g`` of the scale move: ``-a g^2 / 2 + b g + (D - 1) log g``.

        ``a``: the responses' squared residuals (times their precisions) plus the free
        coefficients' and thresholds' squares over their prior variances; ``b``: the
        coefficients' prior means' pull; ``D``: how many values the move scales (Jacobian
        ``g^D``, Haar measure ``1 / g``). Random effects scaled with their covariance keep
        their density but for its normaliser, which their Jacobian cancels; the covariance's
        prior and its entries' Jacobian ``g^(q (q + 1))`` enter as a correction of the draw.
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

        extra = covariance_prior if self.blocks else None
        return group_scale(jax.random.fold_in(key, 1), a, b, jnp.asarray(0.0), dims - 1, extra)

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
