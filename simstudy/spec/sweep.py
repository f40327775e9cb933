"""The Gibbs back end: a :class:`~simstudy.spec.ir.ModelSpec` compiled into a sweep of steps.

:func:`layout` reads a spec's static facts once and lists its steps
(:func:`simstudy.spec.steps.build`), each one kind of block in one module of
:mod:`simstudy.spec.steps`: nominal predictors, level-1 node groups, random effects with their
scale and location moves, the indicators from sums, coefficients, variances, covariance
blocks, the factors' scale and location moves. :func:`sweep` runs them in order; :func:`init`
and :func:`collect` gather their parts of the start state and of the recorded estimands.

Every statistic is weighted by ``row_real`` × observed (a target with missing values and no
children is left out of its equation where missing, not drawn). Each sweep's normal noise
comes from one RNG call, its uniform noise from one more (gamma variates are built from both),
laid out by the steps' declared sizes (:mod:`simstudy.spec.steps.base`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jax

from simstudy.spec import evaluate as ev
from simstudy.spec import steps as kinds
from simstudy.spec.ir import LATENT, CovBlock, Equation, ModelSpec, Nominal, Ordered, with_derived
from simstudy.spec.standardized import reported
from simstudy.spec.steps.base import (
    GAMMA_TRIES,
    STATE_PARTS,
    Context,
    Noise,
    NoiseSizes,
    State,
    Step,
)
from simstudy.spec.steps.measurement import Measurement, measurement_of
from simstudy.spec.steps.measurement import prepare as prepare_measurement
from simstudy.spec.steps.nodes import node_groups


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
    #: Normal prior of a loading (``f=~y``), the loadings' own class (blavaan's ``lambda``);
    #: None: N(0, coef_sd^2) as every other coefficient.
    loading_mean: float = 0.0
    loading_sd: float | None = None
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
        self, target: str, positions: tuple[int, ...], loadings: tuple[int, ...] = ()
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Prior means and SDs of an equation's coefficients at ``positions``.

        ``loadings``: the positions that hold loadings (the loading class's numbers, unless
        the equation has numbers of its own).
        """
        means, sds = dict(self.coef_means).get(target), dict(self.coef_sds).get(target)
        loading_sd = self.coef_sd if self.loading_sd is None else self.loading_sd
        return (
            tuple(
                means[i] if means else (self.loading_mean if i in loadings else 0.0)
                for i in positions
            ),
            tuple(
                sds[i] if sds else (loading_sd if i in loadings else self.coef_sd)
                for i in positions
            ),
        )

    def equation_prior(
        self, eq: Equation, positions: tuple[int, ...]
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """:meth:`coef_prior` of equation ``eq``'s coefficients at ``positions``."""
        loadings = tuple(i for i in positions if eq.coefficients[i].parameter.is_loading)
        return self.coef_prior(eq.target, positions, loadings)

    def sigma_scale_of(self, target: str) -> float:
        """Scale of the half-normal prior on the residual SD of ``target``'s equation."""
        return dict(self.sigma_scales).get(target, self.sigma_scale)

    def cov_scale_of(self, block: str) -> float:
        """Scale of the half-normal prior on the SDs of covariance block ``block``."""
        return dict(self.cov_scales).get(block, self.cov_scale)

    def block_variance_prior(self, block: CovBlock) -> tuple[float, float]:
        """``(a, b)`` of a covariance block's variance prior (``lkj_log_prior``'s numbers).

        Half-normal SDs: ``(scale, 0)``; inverse-gamma variances: ``(shape, scale)``, the
        latent class's for a block of level-1 variables; inverse-Wishart: ``(0, var_scale)``,
        its scale matrix's diagonal.
        """
        if self.cov_prior == "half_normal":
            return self.cov_scale_of(block.name), 0.0
        if self.cov_prior == "inverse_wishart":
            return 0.0, self.var_scale
        return self.variance_ig(block.level is None)


def _frozen(value: Any) -> Any:
    """A prior setting as a hashable value: mappings as sorted pairs, lists as tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Layout:
    """Static facts of a compiled spec, and the steps the sweep runs."""

    equations: tuple[Equation, ...]
    free_coefs: tuple[tuple[int, ...], ...]  # per equation: positions of its free coefficients
    free_var: tuple[bool, ...]
    node_groups: tuple[tuple[str, ...], ...]
    imputed: tuple[str, ...]
    latents: tuple[str, ...]
    blocks: tuple[CovBlock, ...]
    measurement: Measurement | None = None  # indicator equations updated from sums
    general: tuple[int, ...] = ()  # the other equations (positions), linearised
    nominals: tuple[Nominal, ...] = ()  # nominal predictors (categories drawn where missing)
    ordered: tuple[Ordered, ...] = ()  # ordered variables (latent responses drawn per row)
    steps: tuple[Step, ...] = ()  # in sweep order

    def free_variances(self) -> tuple[int, ...]:
        """Positions of the general equations with a free residual variance."""
        return tuple(i for i in self.general if self.free_var[i])

    def steps_of(self, kind: type) -> tuple[Any, ...]:
        """The steps of one kind, in sweep order."""
        return tuple(s for s in self.steps if isinstance(s, kind))


def layout(spec: ModelSpec) -> Layout:
    """The :class:`Layout` of a spec, with its steps."""
    eqs = spec.order()
    latents = tuple(v.name for v in spec.variables if v.kind == LATENT)
    unknown = spec.unknown_nodes()
    imputed = tuple(n for n in unknown if n not in latents)
    m = measurement_of(eqs, latents, imputed, spec.ordered)
    lay = Layout(
        equations=eqs,
        free_coefs=tuple(
            tuple(i for i, c in enumerate(e.coefficients) if c.parameter.free) for e in eqs
        ),
        free_var=tuple(e.variance.free for e in eqs),
        node_groups=node_groups(spec),
        imputed=imputed,
        latents=latents,
        blocks=spec.blocks,
        measurement=m,
        general=tuple(i for i in range(len(eqs)) if m is None or i not in m.equations),
        nominals=spec.nominal,
        ordered=spec.ordered,
    )
    return replace(lay, steps=kinds.build(lay))


# ---------------------------------------------------------------------------------------
# The sweep


def noise_sizes(lay: Layout, data: Mapping[str, Any]) -> tuple[NoiseSizes, ...]:
    """The noise each step takes per sweep, in sweep order."""
    return tuple(step.noise(lay, data) for step in lay.steps)


def draw_noise(rng_key: jax.Array, lay: Layout, data: Mapping[str, Any]) -> tuple[Noise, ...]:
    """One sweep's noise, each step's share (see :mod:`simstudy.spec.steps.base`).

    Normals: every step's plain normals in sweep order, then every gamma variate's candidates;
    uniforms: per step, its plain ones, then its gamma variates' boost and candidates' ones.
    """
    sizes = noise_sizes(lay, data)
    k_norm, k_gamma, k_unif, k_keys = jax.random.split(rng_key, 4)
    n_plain = sum(sum(s.normal.values()) for s in sizes)
    n_gamma = sum(s.gamma for s in sizes)
    z = jax.random.normal(k_norm, (max(1, n_plain + GAMMA_TRIES * n_gamma),))
    u = jax.random.uniform(k_unif, (sum(s.n_uniform for s in sizes),))
    keys = iter(jax.random.split(k_keys, max(1, sum(s.keys for s in sizes))))
    gamma_steps = sum(s.gamma > 0 for s in sizes)
    # one gamma batch (today's case) keeps the sweep's gamma key; several get one each
    gamma_keys = iter([k_gamma] if gamma_steps == 1 else jax.random.split(k_gamma, gamma_steps))
    out, normal_at, candidate_at, uniform_at = [], 0, n_plain, 0
    for s in sizes:
        normal, normal_at = _take(z, normal_at, s.normal)
        uniform, uniform_at = _take(u, uniform_at, s.uniform)
        gamma = None
        if s.gamma:
            n = s.gamma
            boost = u[uniform_at : uniform_at + n]
            candidates = u[uniform_at + n : uniform_at + (1 + GAMMA_TRIES) * n]
            gamma_z = z[candidate_at : candidate_at + GAMMA_TRIES * n]
            uniform_at, candidate_at = (
                uniform_at + (1 + GAMMA_TRIES) * n,
                candidate_at + GAMMA_TRIES * n,
            )
            shape = (GAMMA_TRIES, n)
            gamma = (next(gamma_keys), (gamma_z.reshape(shape), candidates.reshape(shape), boost))
        own_keys = tuple(next(keys) for _ in range(s.keys))
        out.append(Noise(normal, uniform, gamma, own_keys))
    return tuple(out)


def _take(
    noise: jax.Array, start: int, sizes: Mapping[str, int]
) -> tuple[dict[str, jax.Array], int]:
    """Consecutive slices of ``noise`` from ``start``, by name, and where they end."""
    out = {}
    for name, size in sizes.items():
        out[name] = noise[start : start + size]
        start += size
    return out, start


def sweep(
    rng_key: jax.Array,
    state: Mapping[str, Any],
    data: Mapping[str, Any],
    lay: Layout,
    priors: Priors,
    adapt: bool = False,
) -> State:
    """One sweep: every step of the layout, in order (``adapt``: a warm-up sweep)."""
    weights = {i: ev.weight(lay.equations[i], lay, data) for i in lay.general}
    with jax.named_scope("draw_noise"):
        noise = draw_noise(rng_key, lay, data)
    state = dict(state)
    ctx = Context(lay, priors, weights, adapt=adapt)
    runs = kinds.active(lay, priors)
    for step, run in zip(lay.steps, runs, strict=True):
        if run:
            ctx = step.begin(state, data, ctx)
    for step, own, run in zip(lay.steps, noise, runs, strict=True):
        if not run:  # its noise is drawn all the same: the other steps' stays as it was
            continue
        with jax.named_scope(type(step).__name__):
            ctx = step.share(state, data, ctx)
            state = step.update(state, data, own, ctx)
            ctx = step.after(state, data, ctx)
    return state


# ---------------------------------------------------------------------------------------
# Start values and recorded quantities


def prepare(data: Mapping[str, Any], lay: Layout) -> dict[str, Any]:
    """The data with the constants every sweep reads (the indicators' sums, once per fit)."""
    if lay.measurement is None:
        return dict(data)
    return {**data, **prepare_measurement(lay.measurement, data)}


def init(rng_key: jax.Array, data: Mapping[str, Any], lay: Layout, priors: Priors) -> State:
    """A dispersed start, each step's part.

    Coefficients near 0, variances from the data, latents N(0, 1); measured factors at
    jittered mean scores of their indicators (signed by their correlation with the factor's
    first fixed-loading indicator), their loadings at that sign.
    """
    keys = jax.random.split(rng_key, kinds.n_start_keys(lay))
    state: State = {part: {} for part in STATE_PARTS}
    for step in lay.steps:
        key = keys[step.start_key] if step.start_key is not None else None
        for part, entries in step.init(key, data, lay).items():
            state[part] = {**state[part], **entries}
    return state


def collect(state: Mapping[str, Any], lay: Layout, spec: ModelSpec) -> dict[str, jax.Array]:
    """The estimands of one state, by lavaan name (and derived quantities)."""
    out: dict[str, jax.Array] = {}
    for step in lay.steps:
        out |= step.collect(state, lay)
    return reported(spec, with_derived(spec, out))
