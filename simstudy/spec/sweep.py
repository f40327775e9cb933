"""The Gibbs back end: a :class:`~simstudy.spec.ir.ModelSpec` compiled into a sweep of blocks.

The sweep is a static list of blocks from :mod:`simstudy.blocks`:

1. **nodes** — the level-1 unknowns (latent scores, missing values of predictors), in groups
   where no two members share a monomial (so each group enters every mean affinely); each
   group's normal conditional is read off by linearising the standardised residuals of the
   equations it enters (``jax.jvp``, one pass per member, all rows at once);
2. **random effects** of each ``(... | g)`` block, the same way, with row terms summed per
   cluster;
3. **coefficients** of each equation (normal prior, N(0, coef_sd^2) unless overridden);
4. **residual variances** (half-normal SD or inverse-gamma prior);
5. **covariance blocks** (LKJ correlations, half-normal SDs or inverse-gamma variances).

Every statistic is weighted by ``row_real`` × observed (a target with missing values and no
children is left out of its equation where missing, not drawn). Each sweep's normal noise
comes from one RNG call, its gamma and uniform noise from one call each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from simstudy.blocks.conjugate import unit_gamma
from simstudy.blocks.covariance import lkj_covariance
from simstudy.blocks.group import (
    half_normal_scale_draw,
    location_shift_draw,
    rescale_covariance,
)
from simstudy.blocks.linear import gaussian_terms, normal_step, segment_terms
from simstudy.blocks.variance import (
    half_normal_shape,
    half_normal_variance,
    inverse_gamma_shape,
    inverse_gamma_variance,
)
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.ir import LATENT, CovBlock, Equation, ModelSpec, with_derived


@dataclass(frozen=True)
class Priors:
    """The priors every compiled model uses (see ``conf/model/*.yaml`` of spec models)."""

    coef_sd: float = 10.0
    resvar_prior: str = "half_normal"
    sigma_scale: float = 5.0
    var_shape: float = 2.0
    var_scale: float = 0.5
    cov_prior: str = "half_normal"
    cov_scale: float = 5.0
    lkj_eta: float = 1.0
    # per-equation overrides (simstudy fit's priors on the data's scale), as sorted pairs:
    # target -> prior mean and SD of each coefficient position; target or block -> SD scale
    coef_means: tuple[tuple[str, tuple[float, ...]], ...] = ()
    coef_sds: tuple[tuple[str, tuple[float, ...]], ...] = ()
    sigma_scales: tuple[tuple[str, float], ...] = ()
    cov_scales: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, priors: Mapping[str, Any]) -> Priors:
        """Priors from a model's ``priors`` mapping (missing keys take the defaults)."""
        names = cls.__dataclass_fields__
        return cls(**{k: _frozen(v) for k, v in priors.items() if k in names})

    def coef_prior(
        self, target: str, positions: tuple[int, ...]
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Prior means and SDs of an equation's coefficients at ``positions``."""
        means, sds = dict(self.coef_means).get(target), dict(self.coef_sds).get(target)
        return (
            tuple(means[i] if means else 0.0 for i in positions),
            tuple(sds[i] if sds else self.coef_sd for i in positions),
        )

    def sigma_scale_of(self, target: str) -> float:
        """Scale of the half-normal prior on the residual SD of ``target``'s equation."""
        return dict(self.sigma_scales).get(target, self.sigma_scale)

    def cov_scale_of(self, block: str) -> float:
        """Scale of the half-normal prior on the SDs of covariance block ``block``."""
        return dict(self.cov_scales).get(block, self.cov_scale)


def _frozen(value: Any) -> Any:
    """A prior setting as a hashable value: mappings as sorted pairs, lists as tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Layout:
    """Static facts of a compiled spec the sweep loops over."""

    equations: tuple[Equation, ...]
    free_coefs: tuple[tuple[int, ...], ...]  # per equation: positions of its free coefficients
    free_var: tuple[bool, ...]
    node_groups: tuple[tuple[str, ...], ...]
    imputed: tuple[str, ...]
    latents: tuple[str, ...]
    blocks: tuple[CovBlock, ...]


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


def layout(spec: ModelSpec) -> Layout:
    """The :class:`Layout` of a spec."""
    eqs = spec.order()
    latents = tuple(v.name for v in spec.variables if v.kind == LATENT)
    unknown = spec.unknown_nodes()
    return Layout(
        equations=eqs,
        free_coefs=tuple(
            tuple(i for i, c in enumerate(e.coefficients) if c.parameter.free) for e in eqs
        ),
        free_var=tuple(e.variance.free for e in eqs),
        node_groups=node_groups(spec),
        imputed=tuple(n for n in unknown if n not in latents),
        latents=latents,
        blocks=spec.blocks,
    )


# ---------------------------------------------------------------------------------------
# Evaluating the model at a state


def full_values(lay: Layout, state: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """Per-row values of every variable: data, imputed values where missing, latents, REs."""
    vals = {k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:"))}
    for name in lay.imputed:
        vals[name] = jnp.where(data[observed_key(name)], data[name], state["nodes"][name])
    for name in lay.latents:
        vals[name] = state["nodes"][name]
    for b in lay.blocks:
        if b.level is not None:
            per_row = state["re"][b.name][data[b.level]]
            for i, m in enumerate(b.members):
                vals[m] = per_row[:, i]
        else:
            for m in b.members:
                vals.setdefault(m, state["nodes"][m])
    return vals


def coef_vector(eq: Equation, free: jax.Array, positions: tuple[int, ...]) -> list[Any]:
    """All coefficients of an equation: free ones from ``free``, fixed ones as numbers."""
    out: list[Any] = [c.parameter.fixed for c in eq.coefficients]
    for k, i in enumerate(positions):
        out[i] = free[k]
    return out


def equation_mean(eq: Equation, coefs: list[Any], vals: Mapping[str, Any]) -> jax.Array:
    """``sum(coef x monomial) + sum(random effect x monomial)`` per row."""
    mean = 0.0
    for c, coef in zip(eq.coefficients, coefs, strict=True):
        mean = mean + coef * _product(vals, c.factors)
    for r in eq.random:
        mean = mean + vals[r.effect] * _product(vals, r.factors)
    return mean


def _product(vals: Mapping[str, Any], factors: tuple[str, ...]) -> Any:
    out = 1.0
    for f in factors:
        out = out * vals[f]
    return out


def weight(eq: Equation, lay: Layout, data: Mapping[str, Any]) -> jax.Array:
    """0/1 per row: the row enters the equation (real, and its target known or drawn)."""
    real = data[ROW_REAL].astype(float)
    if eq.target in lay.imputed or eq.target in lay.latents:
        return real
    return real * data[observed_key(eq.target)].astype(float)


def _variance(lay: Layout, state: Mapping[str, Any], i: int) -> Any:
    eq = lay.equations[i]
    return state["var"][eq.target] if lay.free_var[i] else eq.variance.fixed


def std_residual(
    lay: Layout, i: int, state: Mapping[str, Any], vals: Mapping[str, Any], w: jax.Array
) -> jax.Array:
    """Standardised, weighted residual of equation ``i`` per row."""
    eq = lay.equations[i]
    coefs = coef_vector(eq, state["coef"][eq.target], lay.free_coefs[i])
    resid = vals[eq.target] - equation_mean(eq, coefs, vals)
    return resid * jnp.sqrt(w / _variance(lay, state, i))


def _chol_inv(cov: jax.Array) -> jax.Array:
    return jnp.linalg.inv(jnp.linalg.cholesky(cov))


# ---------------------------------------------------------------------------------------
# The sweep


def noise_sizes(lay: Layout, data: Mapping[str, Any]) -> dict[str, int]:
    """How many standard normals each normal block needs per sweep."""
    rows = data[ROW_REAL].shape[0]
    sizes = {f"nodes{k}": rows * len(g) for k, g in enumerate(lay.node_groups)}
    for b in lay.blocks:
        if b.level is not None:
            sizes[f"re:{b.name}"] = data[cluster_key(b.level)].shape[0] * len(b.members)
            sizes[f"scale:{b.name}"] = len(b.members)
            sizes[f"shift:{b.name}"] = len(b.members)
    for i, eq in enumerate(lay.equations):
        if lay.free_coefs[i]:
            sizes[f"coef:{eq.target}"] = len(lay.free_coefs[i])
    return sizes


def _take(noise: jax.Array, sizes: Mapping[str, int]) -> dict[str, jax.Array]:
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = noise[start : start + size]
        start += size
    return out


def _update_nodes(lay, state, data, group, z, weights):
    """Draw one group of level-1 unknowns (all rows at once)."""
    involved = [
        i
        for i, e in enumerate(lay.equations)
        if e.target in group or any(g in e.variables() for g in group)
    ]
    own_blocks = [b for b in lay.blocks if b.level is None and set(b.members) & set(group)]
    rows = data[ROW_REAL].shape[0]
    current = jnp.stack([state["nodes"][n] for n in group], axis=-1)

    base = full_values(lay, state, data)
    real = jnp.sqrt(data[ROW_REAL].astype(float))[:, None]

    def residuals(b):
        vals = dict(base)
        for k, n in enumerate(group):
            vals[n] = (
                jnp.where(data[observed_key(n)], data[n], b[:, k]) if n in lay.imputed else b[:, k]
            )
        parts = [std_residual(lay, i, state, vals, weights[i]) for i in involved]
        for blk in own_blocks:
            eta = jnp.stack([vals[m] for m in blk.members], axis=-1)
            std = eta @ _chol_inv(state["cov"][blk.name]).T * real
            parts += [std[:, k] for k in range(std.shape[1])]
        return jnp.stack(parts, axis=-1)

    resid, jac = _jvp_columns(residuals, current, len(group))
    grad, precision = gaussian_terms(resid, jac)
    free = jnp.stack([_node_free(lay, n, data) for n in group], axis=-1)
    # rows where a node is not drawn (observed, padding) keep a N(0, 1) placeholder
    eye = jnp.eye(len(group))
    precision = precision + (1 - free)[:, :, None] * eye
    grad = grad + (1 - free) * current
    new = normal_step(current, grad, precision, z.reshape(rows, len(group)))
    nodes = dict(state["nodes"])
    for k, n in enumerate(group):
        nodes[n] = new[:, k]
    return {**state, "nodes": nodes}


def _node_free(lay: Layout, name: str, data: Mapping[str, Any]) -> jax.Array:
    real = data[ROW_REAL].astype(float)
    if name in lay.imputed:
        return real * (1 - data[observed_key(name)].astype(float))
    return real


def _jvp_columns(fn, at: jax.Array, d: int) -> tuple[jax.Array, jax.Array]:
    """``fn(at)`` and, per column ``k`` of ``at``, the derivative along that column."""
    cols = []
    out = None
    for k in range(d):
        tangent = jnp.zeros_like(at).at[..., k].set(1.0)
        out, col = jax.jvp(fn, (at,), (tangent,))
        cols.append(col)
    return out, jnp.stack(cols, axis=-1)


def _update_re(lay, state, data, block, z, weights):
    """Draw the random effects of one block, cluster by cluster."""
    involved = [
        i for i, e in enumerate(lay.equations) if any(r.effect in block.members for r in e.random)
    ]
    current = state["re"][block.name]
    group = data[block.level]
    n_clusters = current.shape[0]

    base = full_values(lay, state, data)

    def residuals(u_rows):
        vals = {**base, **{m: u_rows[:, k] for k, m in enumerate(block.members)}}
        return jnp.stack([std_residual(lay, i, state, vals, weights[i]) for i in involved], -1)

    resid, jac = _jvp_columns(residuals, current[group], len(block.members))
    # residuals depend on u only through u[group]: differentiate w.r.t. the gathered rows
    grad, precision = gaussian_terms(resid, jac)
    grad, precision = segment_terms(grad, precision, group, n_clusters)
    prior_precision = jnp.linalg.inv(state["cov"][block.name])
    precision = precision + prior_precision
    grad = grad + current @ prior_precision.T
    new = normal_step(current, grad, precision, z.reshape(current.shape))
    real = data[cluster_key(block.level)][:, None]
    return {**state, "re": {**state["re"], block.name: jnp.where(real, new, current)}}


def _scale_re(lay, state, data, block, z, weights, priors: Priors):
    """Scale moves of each random effect of a block with its variance (blocks.group)."""
    involved = [
        i for i, e in enumerate(lay.equations) if any(r.effect in block.members for r in e.random)
    ]
    for k, member in enumerate(block.members):
        base = full_values(lay, state, data)

        def residuals(c, member=member, base=base, state=state):
            vals = {**base, member: c * base[member]}
            return jnp.stack([std_residual(lay, i, state, vals, weights[i]) for i in involved], -1)

        resid, slope = jax.jvp(residuals, (jnp.asarray(1.0),), (jnp.asarray(1.0),))
        grad, precision = (slope * resid).sum(), (slope * slope).sum()
        cov = state["cov"][block.name]
        c = half_normal_scale_draw(
            grad, precision, cov[k, k], priors.cov_scale_of(block.name), z[k]
        )
        re = state["re"][block.name].at[:, k].multiply(c)
        state = {
            **state,
            "re": {**state["re"], block.name: re},
            "cov": {**state["cov"], block.name: rescale_covariance(cov, k, c)},
        }
    return state


def location_pairs(lay: Layout, block: CovBlock) -> list[tuple[int, int, int]]:
    """``(member, equation, free position)`` of each random effect with a movable location.

    A random effect whose monomial has a free fixed coefficient in its equation: its location
    can move between the two.
    """
    pairs = []
    for i, eq in enumerate(lay.equations):
        for r in eq.random:
            if r.effect not in block.members:
                continue
            for k, pos in enumerate(lay.free_coefs[i]):
                if eq.coefficients[pos].factors == r.factors:
                    pairs.append((block.members.index(r.effect), i, k))
    return pairs


def _shift_re(lay, state, data, block, z, priors: Priors):
    """Location moves between each random effect and its fixed coefficient (blocks.group)."""
    cov_inverse = jnp.linalg.inv(state["cov"][block.name])
    weight = data[cluster_key(block.level)].astype(float)
    for member, i, k in location_pairs(lay, block):
        target = lay.equations[i].target
        coef = state["coef"][target]
        effects = state["re"][block.name]
        (mean,), (sd,) = priors.coef_prior(target, (lay.free_coefs[i][k],))
        d = location_shift_draw(effects, weight, cov_inverse, member, coef[k] - mean, sd, z[member])
        state = {
            **state,
            "coef": {**state["coef"], target: coef.at[k].add(d)},
            "re": {**state["re"], block.name: effects.at[:, member].add(-d)},
        }
    return state


def _update_coefs(lay, state, data, i, z, weights, priors: Priors):
    eq = lay.equations[i]
    current = state["coef"][eq.target]
    vals = full_values(lay, state, data)

    def residuals(beta):
        st = {**state, "coef": {**state["coef"], eq.target: beta}}
        return std_residual(lay, i, st, vals, weights[i])[:, None]

    resid, jac = _jvp_columns(residuals, current, current.shape[0])
    # jac: (rows, 1, p)
    grad = jnp.einsum("rmp,rm->p", jac, resid)
    precision = jnp.einsum("rmp,rmq->pq", jac, jac)
    means, sds = map(jnp.asarray, priors.coef_prior(eq.target, lay.free_coefs[i]))
    precision = precision + jnp.diag(1.0 / sds**2)
    grad = grad + (current - means) / sds**2
    new = normal_step(current, grad, precision, z)
    return {**state, "coef": {**state["coef"], eq.target: new}}


def _variance_stats(lay, state, data, weights):
    vals = full_values(lay, state, data)
    ss, n = [], []
    for i, eq in enumerate(lay.equations):
        if not lay.free_var[i]:
            continue
        coefs = coef_vector(eq, state["coef"][eq.target], lay.free_coefs[i])
        resid = vals[eq.target] - equation_mean(eq, coefs, vals)
        ss.append((weights[i] * resid**2).sum())
        n.append(weights[i].sum())
    return jnp.stack(ss), jnp.stack(n)


def sweep(
    rng_key: jax.Array,
    state: Mapping[str, Any],
    data: Mapping[str, Any],
    lay: Layout,
    priors: Priors,
) -> dict:
    """One sweep over every block (see the module docstring)."""
    weights = [weight(e, lay, data) for e in lay.equations]
    sizes = noise_sizes(lay, data)
    k_norm, k_gamma, k_unif, k_cov = jax.random.split(rng_key, 4)
    z = _take(jax.random.normal(k_norm, (max(1, sum(sizes.values())),)), sizes)
    state = dict(state)
    for k, group in enumerate(lay.node_groups):
        state = _update_nodes(lay, state, data, group, z[f"nodes{k}"], weights)
    for b in lay.blocks:
        if b.level is not None:
            state = _update_re(lay, state, data, b, z[f"re:{b.name}"], weights)
            if priors.cov_prior == "half_normal":
                state = _scale_re(lay, state, data, b, z[f"scale:{b.name}"], weights, priors)
            state = _shift_re(lay, state, data, b, z[f"shift:{b.name}"], priors)
    for i, eq in enumerate(lay.equations):
        if lay.free_coefs[i]:
            state = _update_coefs(lay, state, data, i, z[f"coef:{eq.target}"], weights, priors)
    if any(lay.free_var):
        state = _update_variances(lay, state, data, weights, priors, k_gamma, k_unif)
    cov = dict(state["cov"])
    for key, b in zip(jax.random.split(k_cov, max(1, len(lay.blocks))), lay.blocks, strict=False):
        cov[b.name] = _update_cov(b, state, data, lay, key, priors)
    state["cov"] = cov
    return state


def _update_variances(lay, state, data, weights, priors, k_gamma, k_unif):
    ss, n = _variance_stats(lay, state, data, weights)
    names = [e.target for i, e in enumerate(lay.equations) if lay.free_var[i]]
    current = jnp.stack([state["var"][t] for t in names])
    if priors.resvar_prior == "half_normal":
        gamma = unit_gamma(k_gamma, half_normal_shape(n))
        scales = jnp.asarray([priors.sigma_scale_of(t) for t in names])
        new = half_normal_variance(
            current, ss, n, scales, gamma, jax.random.uniform(k_unif, n.shape)
        )
    else:
        gamma = unit_gamma(k_gamma, inverse_gamma_shape(n, priors.var_shape))
        new = inverse_gamma_variance(ss, n, priors.var_scale, gamma)
    return {**state, "var": {t: new[k] for k, t in enumerate(names)}}


#: Scale of the flat inverse-Wishart prior behind the covariance proposal under half-normal
#: SDs: small, so that the proposal is close to the likelihood and the acceptance ratio is the
#: (slowly varying) ratio of the two priors.
PROPOSAL_SCALE = 1e-3


def _update_cov(block: CovBlock, state, data, lay, key, priors: Priors) -> jax.Array:
    if block.level is None:
        vals = full_values(lay, state, data)
        vectors = jnp.stack([vals[m] for m in block.members], -1)
        w = data[ROW_REAL].astype(float)
    else:
        vectors = state["re"][block.name]
        w = data[cluster_key(block.level)].astype(float)
    scatter = jnp.einsum("ni,nj,n->ij", vectors, vectors, w)
    if priors.cov_prior == "half_normal":
        a, b, scale = priors.cov_scale_of(block.name), 0.0, PROPOSAL_SCALE
    else:
        a, b, scale = priors.var_shape, priors.var_scale, priors.var_scale
    return lkj_covariance(
        key,
        state["cov"][block.name],
        scatter,
        w.sum(),
        priors.lkj_eta,
        priors.cov_prior,
        a,
        b,
        scale,
    )


# ---------------------------------------------------------------------------------------
# Start values and recorded quantities


def init(rng_key: jax.Array, data: Mapping[str, Any], lay: Layout, priors: Priors) -> dict:
    """A dispersed start: coefficients near 0, variances from the data, latents N(0, 1)."""
    keys = iter(jax.random.split(rng_key, 4 + len(lay.equations) + len(lay.blocks)))
    rows = data[ROW_REAL].shape[0]
    real = data[ROW_REAL].astype(float)
    coef, var = {}, {}
    for i, eq in enumerate(lay.equations):
        p = len(lay.free_coefs[i])
        coef[eq.target] = 0.1 * jax.random.normal(next(keys), (p,))
        if lay.free_var[i]:
            var[eq.target] = _start_variance(eq.target, lay, data, real)
    nodes = {}
    k_nodes = next(keys)
    for k, name in enumerate((*lay.latents, *lay.imputed)):
        z = jax.random.normal(jax.random.fold_in(k_nodes, k), (rows,))
        if name in lay.imputed:
            obs = data[observed_key(name)].astype(float) * real
            mean = (data[name] * obs).sum() / jnp.maximum(obs.sum(), 1.0)
            sd = jnp.sqrt(_start_variance(name, lay, data, real))
            nodes[name] = mean + sd * z
        else:
            nodes[name] = z
    re, cov = {}, {}
    for b in lay.blocks:
        k = len(b.members)
        cov[b.name] = jnp.eye(k)
        if b.level is not None:
            j = data[cluster_key(b.level)].shape[0]
            re[b.name] = 0.1 * jax.random.normal(next(keys), (j, k))
    return {"coef": coef, "var": var, "nodes": nodes, "re": re, "cov": cov}


def _start_variance(name, lay, data, real):
    if name in lay.latents:
        return jnp.asarray(1.0)
    obs = data[observed_key(name)].astype(float) * real
    n = jnp.maximum(obs.sum(), 2.0)
    mean = (data[name] * obs).sum() / n
    return jnp.maximum(((data[name] - mean) ** 2 * obs).sum() / (n - 1), 1e-6)


def collect(state: Mapping[str, Any], lay: Layout, spec: ModelSpec) -> dict[str, jax.Array]:
    """The estimands of one state, by lavaan name (and derived quantities)."""
    out: dict[str, jax.Array] = {}
    for i, eq in enumerate(lay.equations):
        for k, pos in enumerate(lay.free_coefs[i]):
            p = eq.coefficients[pos].parameter
            if not p.nuisance:
                out[p.name] = state["coef"][eq.target][k]
        if lay.free_var[i] and not eq.variance.nuisance:
            out[eq.variance.name] = state["var"][eq.target]
    for b in lay.blocks:
        cov = state["cov"][b.name]
        for i, p in enumerate(b.variances):
            out[p.name] = cov[i, i]
        it = iter(b.covariances)
        for i in range(1, len(b.members)):
            for j in range(i):
                p = next(it)
                if p.free:
                    out[p.name] = cov[i, j]
    return with_derived(spec, out)
