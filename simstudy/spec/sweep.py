"""The Gibbs back end: a :class:`~simstudy.spec.ir.ModelSpec` compiled into a sweep of blocks.

The sweep is a static list of blocks from :mod:`simstudy.blocks`:

1. **nodes** — the level-1 unknowns (latent scores, missing values of predictors), in groups
   where no two members share a monomial (so each group enters every mean affinely); each
   group's normal conditional is read off by linearising the standardised residuals of the
   general equations it enters (``jax.jvp``, one pass per member, all rows at once), plus the
   indicators' information read from sums (:mod:`simstudy.spec.measurement`);
2. **random effects** of each ``(... | g)`` block, the same way, with row terms summed per
   cluster, then their scale and location moves;
3. **coefficients**: the indicator equations' intercepts and loadings all at once from
   per-indicator sums; each other equation's from its design columns (normal priors,
   N(0, coef_sd^2) unless :class:`Priors` gives an equation its own);
4. **variances**, all in one draw: residual variances (half-normal SD or inverse-gamma prior,
   latent variables' with their own numbers) and one-member covariance blocks;
5. **covariance blocks** of two or more (LKJ correlations, half-normal SDs or inverse-gamma
   variances);
6. **scale moves**, then **location moves**, of the latent factors
   (:mod:`simstudy.spec.factor_moves`).

Every statistic is weighted by ``row_real`` × observed (a target with missing values and no
children is left out of its equation where missing, not drawn). Each sweep's normal noise
comes from one RNG call, its uniform noise from one more (gamma variates are built from both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.conjugate import indicator_ssr, inverse_cholesky, unit_gamma
from simstudy.blocks.covariance import lkj_covariance
from simstudy.blocks.group import (
    group_scale,
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
from simstudy.spec import measurement as meas
from simstudy.spec.dgm import ROW_REAL, cluster_key, observed_key
from simstudy.spec.factor_moves import (
    FactorLocation,
    FactorScale,
    factor_locations,
    factor_scales,
)
from simstudy.spec.ir import LATENT, CovBlock, Equation, ModelSpec, with_derived
from simstudy.spec.measurement import Measurement


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
    #: InverseGamma(shape, scale) of latent variables' (residual) variances: the factors' own
    #: class (flat, (-1, 0), is Mplus's default there); None: ``var_shape`` / ``var_scale``.
    latent_var_shape: float | None = None
    latent_var_scale: float | None = None
    # per-equation overrides (simstudy fit's priors on the data's scale), as sorted pairs:
    # target -> prior mean and SD of each coefficient position; target or block -> SD scale
    coef_means: tuple[tuple[str, tuple[float, ...]], ...] = ()
    coef_sds: tuple[tuple[str, tuple[float, ...]], ...] = ()
    sigma_scales: tuple[tuple[str, float], ...] = ()
    cov_scales: tuple[tuple[str, float], ...] = ()

    def variance_ig(self, latent: bool) -> tuple[float, float]:
        """``(shape, scale)`` of the inverse-gamma prior of a latent or a residual variance."""
        if latent and self.latent_var_shape is not None:
            scale = self.var_scale if self.latent_var_scale is None else self.latent_var_scale
            return self.latent_var_shape, scale
        return self.var_shape, self.var_scale

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
    measurement: Measurement | None = None  # indicator equations updated from sums
    general: tuple[int, ...] = ()  # the other equations (positions), linearised
    scales: tuple[FactorScale, ...] = ()  # latent factors' scale moves
    locations: tuple[FactorLocation, ...] = ()  # latent factors' location moves

    def free_variances(self) -> tuple[int, ...]:
        """Positions of the general equations with a free residual variance."""
        return tuple(i for i in self.general if self.free_var[i])


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
    imputed = tuple(n for n in unknown if n not in latents)
    free_coefs = tuple(
        tuple(i for i, c in enumerate(e.coefficients) if c.parameter.free) for e in eqs
    )
    m = meas.measurement_of(eqs, latents, imputed)
    general = tuple(i for i in range(len(eqs)) if m is None or i not in m.equations)
    return Layout(
        equations=eqs,
        free_coefs=free_coefs,
        free_var=tuple(e.variance.free for e in eqs),
        node_groups=node_groups(spec),
        imputed=imputed,
        latents=latents,
        blocks=spec.blocks,
        measurement=m,
        general=general,
        scales=factor_scales(eqs, free_coefs, general, spec.blocks, latents, m),
        locations=factor_locations(eqs, general, spec.blocks, latents, m),
    )


# ---------------------------------------------------------------------------------------
# Evaluating the model at a state


def full_values(lay: Layout, state: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """Per-row values of every variable: data, imputed values where missing, latents, REs."""
    vals = {
        k: v for k, v in data.items() if not k.startswith(("observed:", "clusters:", meas.STATS))
    }
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
    """``L^-1`` for ``cov = L L'``: elementwise for small blocks (no LAPACK call per matrix)."""
    return inverse_cholesky(cov)


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
    if lay.measurement is not None:
        sizes["meas:coef"] = 2 * lay.measurement.size
        sizes["meas:nu"] = lay.measurement.size
    for i in lay.general:
        if lay.free_coefs[i]:
            sizes[f"coef:{lay.equations[i].target}"] = len(lay.free_coefs[i])
    if lay.scales:
        sizes["factor_scale"] = len(lay.scales)
    if lay.locations:
        sizes["factor_location"] = len(lay.locations)
    return sizes


def _take(noise: jax.Array, sizes: Mapping[str, int]) -> dict[str, jax.Array]:
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = noise[start : start + size]
        start += size
    return out


def _update_nodes(lay, state, data, group, z, weights, terms):
    """Draw one group of level-1 unknowns (all rows at once)."""
    involved = [
        i
        for i in lay.general
        if lay.equations[i].target in group or any(g in lay.equations[i].variables() for g in group)
    ]
    own_blocks = [b for b in lay.blocks if b.level is None and set(b.members) & set(group)]
    rows = data[ROW_REAL].shape[0]
    d = len(group)
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

    if involved or own_blocks:
        resid, jac = _jvp_columns(residuals, current, d)
        grad, precision = gaussian_terms(resid, jac)
    else:
        grad, precision = jnp.zeros((rows, d)), jnp.zeros((rows, d, d))
    m = lay.measurement
    measured = {k: m.factors.index(n) for k, n in enumerate(group) if m and n in m.factors}
    if measured:  # the indicators' information: -P f^2 / 2 + h f per row
        info, linear = terms
        zero = jnp.zeros(rows)
        add_info = jnp.stack([info[measured[k]] if k in measured else zero for k in range(d)], -1)
        add_lin = jnp.stack([linear[measured[k]] if k in measured else zero for k in range(d)], -1)
        precision = precision + add_info[:, :, None] * jnp.eye(d)
        grad = grad + add_info * current - add_lin
    free = jnp.stack([_node_free(lay, n, data) for n in group], axis=-1)
    # rows where a node is not drawn (observed, padding) keep a N(0, 1) placeholder
    eye = jnp.eye(d)
    precision = precision + (1 - free)[:, :, None] * eye
    grad = grad + (1 - free) * current
    new = normal_step(current, grad, precision, z.reshape(rows, d))
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
        i for i in lay.general if any(r.effect in block.members for r in lay.equations[i].random)
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
        i for i in lay.general if any(r.effect in block.members for r in lay.equations[i].random)
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
    for i in lay.general:
        eq = lay.equations[i]
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
    """The free coefficients of equation ``i``: its mean is linear in them (design columns)."""
    eq = lay.equations[i]
    current = state["coef"][eq.target]
    vals = full_values(lay, state, data)
    coefs = coef_vector(eq, current, lay.free_coefs[i])
    resid = vals[eq.target] - equation_mean(eq, coefs, vals)
    w = weights[i] / _variance(lay, state, i)
    design = jnp.stack(
        [
            _product(vals, eq.coefficients[pos].factors) * jnp.ones_like(w)
            for pos in lay.free_coefs[i]
        ],
        axis=-1,
    )
    weighted = design * w[:, None]
    means, sds = map(jnp.asarray, priors.coef_prior(eq.target, lay.free_coefs[i]))
    precision = design.T @ weighted + jnp.diag(1.0 / sds**2)
    grad = -(weighted.T @ resid) + (current - means) / sds**2
    new = normal_step(current, grad, precision, z)
    return {**state, "coef": {**state["coef"], eq.target: new}}


def _variance_stats(lay, state, data, weights):
    """Sums of squared residuals and weights of the general equations' free variances."""
    vals = full_values(lay, state, data)
    ss, n = [], []
    for i in lay.free_variances():
        eq = lay.equations[i]
        coefs = coef_vector(eq, state["coef"][eq.target], lay.free_coefs[i])
        resid = vals[eq.target] - equation_mean(eq, coefs, vals)
        ss.append((weights[i] * resid**2).sum())
        n.append(weights[i].sum())
    return ss, n


def sweep(
    rng_key: jax.Array,
    state: Mapping[str, Any],
    data: Mapping[str, Any],
    lay: Layout,
    priors: Priors,
) -> dict:
    """One sweep over every block (see the module docstring)."""
    weights = {i: weight(lay.equations[i], lay, data) for i in lay.general}
    sizes = noise_sizes(lay, data)
    k_norm, k_gamma, k_unif, k_cov = jax.random.split(rng_key, 4)
    n_unif = n_variance_units(lay)
    # the gamma variates' candidates come with the sweep's normal and uniform noise
    sizes["gamma"] = GAMMA_TRIES * n_unif
    z = _take(jax.random.normal(k_norm, (max(1, sum(sizes.values())),)), sizes)
    uniform = jax.random.uniform(k_unif, ((2 + GAMMA_TRIES) * n_unif + len(lay.scales),))
    gamma_noise = (
        z["gamma"].reshape(GAMMA_TRIES, n_unif),
        uniform[2 * n_unif : (2 + GAMMA_TRIES) * n_unif].reshape(GAMMA_TRIES, n_unif),
        uniform[n_unif : 2 * n_unif],
    )
    state = dict(state)
    # the indicators' information on the scores does not change while the scores do
    terms = meas.node_terms(lay.measurement, state["meas"], data) if lay.measurement else None
    for k, group in enumerate(lay.node_groups):
        state = _update_nodes(lay, state, data, group, z[f"nodes{k}"], weights, terms)
    for b in lay.blocks:
        if b.level is not None:
            state = _update_re(lay, state, data, b, z[f"re:{b.name}"], weights)
            if priors.cov_prior == "half_normal":
                state = _scale_re(lay, state, data, b, z[f"scale:{b.name}"], weights, priors)
            state = _shift_re(lay, state, data, b, z[f"shift:{b.name}"], priors)
    sums = None
    if lay.measurement is not None:
        m = lay.measurement
        sums = meas.sums(m, meas.scores(m, state["nodes"]), data)
        noise = (z["meas:coef"].reshape(m.size, 2), z["meas:nu"])
        prior = _indicator_priors(lay, priors)
        nu, lam = meas.draw_coefficients(m, sums, state["meas"]["theta"], noise, prior)
        state["meas"] = {**state["meas"], "nu": nu, "lam": lam}
    for i in lay.general:
        if lay.free_coefs[i]:
            target = lay.equations[i].target
            state = _update_coefs(lay, state, data, i, z[f"coef:{target}"], weights, priors)
    if n_unif:
        noise = (k_gamma, gamma_noise, uniform[:n_unif])
        state = _update_variances(lay, state, data, weights, priors, sums, noise)
    cov = dict(state["cov"])
    joint = [b for b in lay.blocks if len(b.members) > 1]
    for key, b in zip(jax.random.split(k_cov, max(1, len(joint))), joint, strict=False):
        cov[b.name] = _update_cov(b, state, data, lay, key, priors)
    state["cov"] = cov
    for k, move in enumerate(lay.scales):
        noise = (z["factor_scale"][k], jnp.log(uniform[(2 + GAMMA_TRIES) * n_unif + k]))
        state = _scale_factor(lay, state, data, move, sums, weights, priors, noise)
    for k, move in enumerate(lay.locations):
        state = _shift_factor(lay, state, data, move, weights, priors, z["factor_location"][k])
    return state


#: Candidates per gamma variate drawn with a sweep's noise
#: (:func:`~simstudy.blocks.conjugate.unit_gamma`).
GAMMA_TRIES = 4


def _update_variances(lay, state, data, weights, priors, sums, noise):
    """Every free variance but those of covariance blocks of two or more, in one batch.

    Units: the general equations' residual variances, the indicators', and the variance of
    each one-member covariance block (its conditional is a variance's: no correlation). One
    gamma draw for all; half-normal units accept or keep their proposal
    (:func:`~simstudy.blocks.variance.half_normal_variance`), inverse-gamma ones are conjugate.
    """
    ss, n = _variance_stats(lay, state, data, weights)
    names = [lay.equations[i].target for i in lay.free_variances()]
    current = [state["var"][t] for t in names]
    half = [priors.resvar_prior == "half_normal"] * len(names)
    sd_scale = [priors.sigma_scale_of(t) for t in names]
    ig = [priors.variance_ig(t in lay.latents) for t in names]
    p = lay.measurement.size if lay.measurement is not None else 0
    if p:
        ss.append(indicator_ssr(sums, state["meas"]["nu"], state["meas"]["lam"]))
        n.append(sums.n)
        current.append(state["meas"]["theta"])
        half += [priors.resvar_prior == "half_normal"] * p
        sd_scale += [priors.sigma_scale_of(t) for t in lay.measurement.targets]
        ig += [priors.variance_ig(False)] * p
    singles = [b for b in lay.blocks if len(b.members) == 1]
    for b in singles:
        vector, w = _block_vectors(b, state, data, lay)
        ss.append((w * vector[:, 0] ** 2).sum())
        n.append(w.sum())
        current.append(state["cov"][b.name][0, 0])
        half.append(priors.cov_prior == "half_normal")
        sd_scale.append(priors.cov_scale_of(b.name))
        ig.append(priors.variance_ig(b.level is None))
    ss, n, current = (jnp.concatenate([jnp.atleast_1d(x) for x in v]) for v in (ss, n, current))
    half_mask = np.asarray(half)
    shape = jnp.asarray([a for a, _ in ig])
    scale = jnp.asarray([b for _, b in ig])
    k_gamma, gamma_noise, uniform = noise
    gamma = unit_gamma(
        k_gamma,
        jnp.where(half_mask, half_normal_shape(n), inverse_gamma_shape(n, shape)),
        GAMMA_TRIES,
        gamma_noise,
    )
    new = inverse_gamma_variance(ss, n, scale, gamma)
    if half_mask.any():
        drawn = half_normal_variance(current, ss, n, jnp.asarray(sd_scale), gamma, uniform)
        new = jnp.where(half_mask, drawn, new)
    out = {**state, "var": {t: new[k] for k, t in enumerate(names)}}
    if p:
        out["meas"] = {**state["meas"], "theta": new[len(names) : len(names) + p]}
    cov = dict(state["cov"])
    for k, b in enumerate(singles):
        cov[b.name] = new[len(names) + p + k].reshape(1, 1)
    out["cov"] = cov
    return out


def n_variance_units(lay: Layout) -> int:
    """How many variances :func:`_update_variances` draws."""
    p = lay.measurement.size if lay.measurement is not None else 0
    singles = sum(len(b.members) == 1 for b in lay.blocks)
    return len(lay.free_variances()) + p + singles


def _scale_factor(lay, state, data, move: FactorScale, sums, weights, priors, noise):
    """The scale move of one latent factor (:mod:`simstudy.spec.factor_moves`)."""
    coef = state["coef"]
    up, up_mean, up_sd = _coef_priors(lay, priors, coef, move.up)
    down, down_mean, down_sd = _coef_priors(lay, priors, coef, move.down)
    if any(down_mean):  # -(b/g - m)^2 / 2s^2 has a 1/g term: not this move's form
        return state
    kind, name, member = move.variance
    variance = state["var"][name] if kind == "equation" else state["cov"][name][member, member]
    a = (up**2 / up_sd**2).sum()
    b = (up * jnp.asarray(up_mean, dtype=float) / up_sd**2).sum()
    c = (down**2 / down_sd**2).sum() / 2
    if lay.measurement is not None:
        free = np.asarray(move.loadings_free)
        lam = state["meas"]["lam"]
        _, loading_sd = _indicator_priors(lay, priors)[1]
        targets = np.asarray(lay.measurement.targets)[free]
        if any(priors.coef_prior(t, (1,))[0][0] for t in targets):  # as for ``down``: no 1/g
            return state
        c = c + jnp.where(jnp.asarray(free), lam**2 / loading_sd**2, 0.0).sum() / 2
        a_m, b_m = meas.marker_terms(
            sums, state["meas"], np.asarray(move.loadings_fixed), lay.measurement.fixed_loading
        )
        a, b = a + a_m, b + b_m
    if move.fixed_terms:
        a_t, b_t = _fixed_term_stats(lay, state, data, move, weights)
        a, b = a + a_t, b + b_t
    latent_prior = kind == "equation" or lay.blocks[_block_index(lay, name)].level is None
    half_normal = (priors.resvar_prior if kind == "equation" else priors.cov_prior) == "half_normal"
    if half_normal:
        sd_scale = priors.sigma_scale_of(name) if kind == "equation" else priors.cov_scale_of(name)
        a = a + variance / sd_scale**2
        e = move.n_up - move.n_down
    else:
        shape, scale = priors.variance_ig(latent_prior)
        c = c + scale / variance
        e = move.n_up - move.n_down - 2 * shape - 1
    g = group_scale(None, a, b, c, jnp.asarray(e, dtype=float), noise=noise)
    real = data[ROW_REAL]
    nodes = {**state["nodes"], move.factor: jnp.where(real, g, 1.0) * state["nodes"][move.factor]}
    coef = dict(coef)
    for t in {t for t, _ in (*move.up, *move.down)}:
        power = np.zeros(coef[t].shape[0])  # per coefficient: g^power
        for k in (k for tt, k in move.up if tt == t):
            power[k] += 1
        for k in (k for tt, k in move.down if tt == t):
            power[k] -= 1
        coef[t] = coef[t] * jnp.where(power > 0, g, jnp.where(power < 0, 1 / g, 1.0))
    out = {**state, "nodes": nodes, "coef": coef}
    if lay.measurement is not None and any(move.loadings_free):
        lam = state["meas"]["lam"]
        out["meas"] = {
            **state["meas"],
            "lam": jnp.where(np.asarray(move.loadings_free), lam / g, lam),
        }
    if kind == "equation":
        out["var"] = {**state["var"], name: variance * g**2}
    else:
        out["cov"] = {**state["cov"], name: rescale_covariance(state["cov"][name], member, g)}
    return out


def _shift_factor(lay, state, data, move: FactorLocation, weights, priors, z):
    """The location move of one latent factor (:mod:`simstudy.spec.factor_moves`).

    ``log p(c) = -P c^2 / 2 + h c`` given the rest; each part below adds to ``P`` and ``h``.
    """
    base = full_values(lay, state, data)
    real = data[ROW_REAL].astype(float)
    precision, linear = jnp.asarray(0.0), jnp.asarray(0.0)
    if move.equations:  # residuals s0 + c * slope, exactly: the factor enters them linearly

        def residuals(c):
            vals = {**base, move.factor: base[move.factor] + c * real}
            return jnp.stack(
                [std_residual(lay, i, state, vals, weights[i]) for i in move.equations], -1
            )

        resid, slope = jax.jvp(residuals, (jnp.asarray(0.0),), (jnp.asarray(1.0),))
        precision, linear = (slope * slope).sum(), -(slope * resid).sum()
    if move.block is not None:
        name, member = move.block
        block = lay.blocks[_block_index(lay, name)]
        cov_inverse = jnp.linalg.inv(state["cov"][name])
        vectors = jnp.stack([base[m] for m in block.members], -1)
        precision = precision + real.sum() * cov_inverse[member, member]
        linear = linear - (real * (vectors @ cov_inverse[:, member])).sum()
    mask = jnp.asarray(move.indicators, dtype=float)
    lam, nu = state["meas"]["lam"], state["meas"]["nu"]
    (mean, sd), _ = _indicator_priors(lay, priors)
    precision = precision + (mask * lam**2 / sd**2).sum()
    linear = linear + (mask * lam * (nu - mean) / sd**2).sum()
    c = linear / precision + z / jnp.sqrt(precision)
    nodes = {**state["nodes"], move.factor: state["nodes"][move.factor] + c * real}
    return {**state, "nodes": nodes, "meas": {**state["meas"], "nu": nu - mask * lam * c}}


def _coef_priors(lay, priors: Priors, coef, which):
    """Values, prior means and SDs of the free coefficients ``(target, position)``."""
    if not which:
        return jnp.zeros(0), (), jnp.zeros(0)
    positions = {lay.equations[i].target: lay.free_coefs[i] for i in lay.general}
    means, sds = [], []
    for t, k in which:
        m, s = priors.coef_prior(t, (positions[t][k],))
        means.append(m[0])
        sds.append(s[0])
    return jnp.stack([coef[t][k] for t, k in which]), tuple(means), jnp.asarray(sds)


def _indicator_priors(lay: Layout, priors: Priors):
    """Per indicator: prior mean and SD of the intercept, and of the loading."""
    m = lay.measurement
    intercept, loading = [], []
    for t in m.targets:
        means, sds = priors.coef_prior(t, (0, 1))
        intercept.append((means[0], sds[0]))
        loading.append((means[1], sds[1]))
    return tuple(tuple(jnp.asarray(v) for v in zip(*x, strict=True)) for x in (intercept, loading))


def _block_index(lay: Layout, name: str) -> int:
    return next(k for k, b in enumerate(lay.blocks) if b.name == name)


def _fixed_term_stats(lay, state, data, move: FactorScale, weights):
    """``(A, B)`` of the general equations where the factor has a fixed coefficient.

    Along the move their standardised residuals are ``s0 - (g - 1) M k`` (``M``: the fixed
    terms holding the factor, ``k``: sqrt(weight / variance)), so ``A = sum (M k)^2`` and
    ``B = sum (s0 + M k) M k``.
    """
    vals = full_values(lay, state, data)
    a, b = jnp.asarray(0.0), jnp.asarray(0.0)
    for i in sorted({t[0] for t in move.fixed_terms}):
        terms = [(v, f) for j, v, f in move.fixed_terms if j == i]
        scale = jnp.sqrt(weights[i] / _variance(lay, state, i))
        mk = sum(v * _product(vals, f) for v, f in terms) * scale
        s0 = std_residual(lay, i, state, vals, weights[i])
        a = a + (mk**2).sum()
        b = b + ((s0 + mk) * mk).sum()
    return a, b


#: Scale of the flat inverse-Wishart prior behind the covariance proposal under half-normal
#: SDs: small, so that the proposal is close to the likelihood and the acceptance ratio is the
#: (slowly varying) ratio of the two priors.
PROPOSAL_SCALE = 1e-3


def _block_vectors(block: CovBlock, state, data, lay) -> tuple[jax.Array, jax.Array]:
    """The vectors of a covariance block (rows or clusters by members) and their 0/1 weights."""
    if block.level is None:
        vals = full_values(lay, state, data)
        vectors = jnp.stack([vals[m] for m in block.members], -1)
        return vectors, data[ROW_REAL].astype(float)
    return state["re"][block.name], data[cluster_key(block.level)].astype(float)


def _update_cov(block: CovBlock, state, data, lay, key, priors: Priors) -> jax.Array:
    vectors, w = _block_vectors(block, state, data, lay)
    scatter = jnp.einsum("ni,nj,n->ij", vectors, vectors, w)
    if priors.cov_prior == "half_normal":
        a, b, scale = priors.cov_scale_of(block.name), 0.0, PROPOSAL_SCALE
    else:
        a, b = priors.variance_ig(block.level is None)
        scale = b
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


def prepare(data: Mapping[str, Any], lay: Layout) -> dict[str, Any]:
    """The data with the constants every sweep reads (the indicators' sums, once per fit)."""
    if lay.measurement is None:
        return dict(data)
    return {**data, **meas.prepare(lay.measurement, data)}


def init(rng_key: jax.Array, data: Mapping[str, Any], lay: Layout, priors: Priors) -> dict:
    """A dispersed start: coefficients near 0, variances from the data, latents N(0, 1).

    Measured factors start at jittered mean scores of their indicators (signed by their
    correlation with the factor's first fixed-loading indicator), their loadings at that sign.
    """
    keys = iter(jax.random.split(rng_key, 4 + len(lay.equations) + len(lay.blocks)))
    rows = data[ROW_REAL].shape[0]
    real = data[ROW_REAL].astype(float)
    coef, var = {}, {}
    for i in lay.general:
        eq = lay.equations[i]
        p = len(lay.free_coefs[i])
        coef[eq.target] = 0.1 * jax.random.normal(next(keys), (p,))
        if lay.free_var[i]:
            var[eq.target] = _start_variance(eq.target, lay, data, real)
    nodes, start = {}, {}
    k_nodes = next(keys)
    state_meas = {}
    if lay.measurement is not None:
        state_meas, start = meas.start(lay.measurement, data, next(keys))
    for k, name in enumerate((*lay.latents, *lay.imputed)):
        z = jax.random.normal(jax.random.fold_in(k_nodes, k), (rows,))
        if name in start:
            nodes[name] = start[name] + 0.3 * jnp.std(start[name]) * z
        elif name in lay.imputed:
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
    return {"coef": coef, "var": var, "nodes": nodes, "re": re, "cov": cov, "meas": state_meas}


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
    if lay.measurement is not None:
        out |= meas.collect(lay.measurement, lay.equations, state["meas"])
    for i in lay.general:
        eq = lay.equations[i]
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
