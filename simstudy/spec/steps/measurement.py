"""Measurement equations updated together from sums over rows (no linearisation).

An indicator equation ``y_j = nu_j + lambda_j f + e_j`` (an observed target, a free intercept,
one loading on a latent factor, free or fixed, no random term, a free residual variance) is the
bulk of every latent-variable model. Its conditionals need only per-indicator sums over the
rows: of the data (computed once per fit by :func:`prepare`) and of the factor's scores and
their products with the data (two small matrix products per sweep, :func:`sums`: in a study's
program the chains of a replication share its data, and a product reads them once for both,
where an elementwise product first copies them to each chain). So the sweep updates every
indicator at once — intercepts and loadings jointly per indicator (this step), then the
residual variances with the other variances (:mod:`.variances`) — and reads each factor
score's measurement information from the indicators' rows (:func:`node_terms`), where the
general path linearises every equation over every row in each sweep.

A probit ordered indicator is one too, with a fixed intercept and residual variance (the step
keeps a fixed value per indicator where one is fixed): its value is its latent response ``u*``
(drawn by :mod:`.ordered` each sweep, on every real row), its intercept fixed at 0 (lavaan's theta
parameterisation; free where the equation writes it and ``u|t1`` is 0) and its residual
variance at 1. Its sums over rows are taken at the current responses (:func:`current`), the
rest as for a continuous indicator. (A logit item's responses carry a Pólya–Gamma precision per
row, a weight these sums do not take: it stays on the general path.)

The step owns the state's ``meas`` part: ``nu``, ``lam`` and ``theta``, one entry per
indicator (a fixed intercept or variance holds its value). Indicators are stored indicators
by rows (``(p, N)``): XLA's CPU code reduces over the minor axis several times faster than over
the major one.

The scores' information from the indicators (``Context.terms``) is computed by the first node
group that needs it (:meth:`Measurement.terms`), after the ordered items' responses are drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.conjugate import IndicatorSums, normal_from_precision
from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.evaluate import STATS
from simstudy.spec.ir import Equation, Ordered
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, StepDefaults

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout, Priors


@dataclass(frozen=True)
class Measurement(StepDefaults):
    """The indicator equations of a spec, updated together: the step and its facts."""

    equations: tuple[int, ...]  # positions in the layout's equations
    targets: tuple[str, ...]
    factors: tuple[str, ...]  # the latent factors measured, in order of first appearance
    factor_of: tuple[int, ...]  # per indicator: position of its factor in ``factors``
    fixed: tuple[float | None, ...]  # per indicator: the fixed loading, None where free
    start_key: int | None = None
    intercepts: tuple[float | None, ...] = ()  # per indicator: a fixed intercept (() all free)
    variances: tuple[float | None, ...] = ()  # per indicator: a fixed residual variance
    ordered: tuple[bool, ...] = ()  # per indicator: its value is an ordered item's response

    @property
    def size(self) -> int:
        """Number of indicators."""
        return len(self.targets)

    @property
    def marker(self) -> np.ndarray:
        """Boolean per indicator: the loading is fixed."""
        return np.array([f is not None for f in self.fixed])

    def _each(self, values: tuple[float | None, ...]) -> tuple[float | None, ...]:
        """A per-indicator tuple of fixed values (an empty one: all free)."""
        return values or (None,) * self.size

    @property
    def fixed_intercept(self) -> np.ndarray:
        """Boolean per indicator: the intercept is fixed."""
        return np.array([f is not None for f in self._each(self.intercepts)])

    @property
    def intercept_value(self) -> np.ndarray:
        """Per indicator: the fixed intercept (0 where free, unused there)."""
        return np.array([0.0 if f is None else f for f in self._each(self.intercepts)])

    @property
    def free_variance(self) -> np.ndarray:
        """Boolean per indicator: the residual variance is drawn."""
        return np.array([f is None for f in self._each(self.variances)])

    @property
    def variance_value(self) -> np.ndarray:
        """Per indicator: the fixed residual variance (1 where free, unused there)."""
        return np.array([1.0 if f is None else f for f in self._each(self.variances)])

    @property
    def responses(self) -> np.ndarray:
        """Boolean per indicator: its value is an ordered item's latent response."""
        return np.array(self.ordered or (False,) * self.size, dtype=bool)

    @property
    def fixed_loading(self) -> np.ndarray:
        """Per indicator: the fixed loading (1 where free, unused there)."""
        return np.array([1.0 if f is None else f for f in self.fixed])

    def onehot(self) -> np.ndarray:
        """``(p, F)``: 1 where indicator ``j`` measures factor ``k``."""
        out = np.zeros((self.size, len(self.factors)))
        out[np.arange(self.size), self.factor_of] = 1.0
        return out

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """Normals for each indicator's (intercept, loading) pair and for a marker's intercept."""
        return NoiseSizes(normal={"meas:coef": 2 * self.size, "meas:nu": self.size})

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """The indicators' start values (:func:`start`)."""
        return {"meas": start(self, data, key)}

    def share(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """The indicators' sums at the drawn scores (for this step, variances and scale moves)."""
        at = current(self, state, data)
        return ctx.with_(sums=sums(self, scores(self, state["nodes"]), at))

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """Every indicator's free intercept and loading from their joint normal conditional."""
        z = (noise.normal["meas:coef"].reshape(self.size, 2), noise.normal["meas:nu"])
        prior = indicator_priors(self, ctx.priors)
        nu, lam = draw_coefficients(self, ctx.sums, state["meas"], z, prior)
        return {**state, "meas": {**state["meas"], "nu": nu, "lam": lam}}

    def terms(self, state: State, data: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The indicators' information on the scores at this state (:func:`node_terms`)."""
        return node_terms(self, state["meas"], current(self, state, data))

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """The indicators' reported parameters by lavaan name."""
        return collect(self, lay.equations, state["meas"])

    def start_scores(self, data: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Each factor's mean signed indicator score, centred (its scores' start)."""
        obs, yc = data[f"{STATS}obs"], data[f"{STATS}yc"]
        onehot = jnp.asarray(self.onehot())  # (p, F)
        signed = onehot * _signs(self, data)[:, None]
        answered = onehot.T @ obs  # (F, N)
        mean = (signed.T @ yc) / jnp.maximum(answered, 1.0)
        return {f: mean[k] - mean[k].mean() for k, f in enumerate(self.factors)}


def indicator_priors(m: Measurement, priors: Priors) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Per indicator: prior means and SDs of the intercept, and of the loading."""
    intercept, loading = [], []
    for t in m.targets:
        means, sds = priors.coef_prior(t, (0, 1), loadings=(1,))  # (intercept, loading)
        intercept.append((means[0], sds[0]))
        loading.append((means[1], sds[1]))
    return tuple(tuple(jnp.asarray(v) for v in zip(*x, strict=True)) for x in (intercept, loading))


def loading_factor(
    eq: Equation,
    latents: Sequence[str],
    imputed: Sequence[str],
    responses: Mapping[str, Ordered] | None = None,
) -> str | None:
    """The factor an indicator equation loads on, or None when ``eq`` is not one.

    An indicator equation: an observed, complete-or-dropped target (not drawn) or a probit
    ordered variable's response (``responses``, by name), an intercept, one more term that is a
    single latent factor, no random term. A continuous target's intercept and variance are
    free; an ordered one's variance is fixed, and its intercept fixed only where every
    threshold is free (a shift of its factor then moves them, :mod:`.factor_location`).
    """
    ordered = (responses or {}).get(eq.target)
    if eq.target in latents or eq.target in imputed or eq.random:
        return None
    if ordered is not None and ordered.link != "probit":
        return None
    if len(eq.coefficients) != 2:
        return None
    intercept, loading = eq.coefficients
    if intercept.factors or len(loading.factors) != 1 or loading.factors[0] not in latents:
        return None
    if loading.parameter.fixed == 0.0:
        return None
    if ordered is None and not (intercept.parameter.free and eq.variance.free):
        return None
    if ordered is not None and (eq.variance.free or intercept.parameter.free != ordered.intercept):
        return None
    return loading.factors[0]


def measurement_of(
    equations: Sequence[Equation],
    latents: Sequence[str],
    imputed: Sequence[str],
    ordered: Sequence[Ordered] = (),
) -> Measurement | None:
    """The :class:`Measurement` of a spec's equations (None without indicator equations).

    ``ordered``: the spec's ordered variables (their probit indicators are updated from sums).
    """
    responses = {o.name: o for o in ordered}
    picked = [(i, loading_factor(e, latents, imputed, responses)) for i, e in enumerate(equations)]
    picked = [(i, f) for i, f in picked if f is not None]
    if not picked:
        return None
    factors = tuple(dict.fromkeys(f for _, f in picked))
    eqs = [equations[i] for i, _ in picked]
    return Measurement(
        equations=tuple(i for i, _ in picked),
        targets=tuple(e.target for e in eqs),
        factors=factors,
        factor_of=tuple(factors.index(f) for _, f in picked),
        fixed=tuple(e.coefficients[1].parameter.fixed for e in eqs),
        intercepts=tuple(e.coefficients[0].parameter.fixed for e in eqs),
        variances=tuple(e.variance.fixed for e in eqs),
        ordered=tuple(e.target in responses for e in eqs),
    )


def prepare(m: Measurement, data: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Constants of a data set every sweep uses: the indicators centred, their mask and sums.

    An ordered indicator's entries are those of its category codes (the start values read
    them); each sweep takes its responses' instead (:func:`current`).
    """
    real = data[ROW_REAL].astype(float)
    obs = jnp.stack([data[observed_key(t)].astype(float) * real for t in m.targets])
    y = jnp.stack([data[t] for t in m.targets])
    n = obs.sum(axis=1)
    ybar = (y * obs).sum(axis=1) / jnp.maximum(n, 1.0)
    yc = jnp.where(obs > 0, y - ybar[:, None], 0.0)
    return {
        f"{STATS}obs": obs,
        f"{STATS}yc": yc,
        f"{STATS}ybar": ybar,
        f"{STATS}n": n,
        f"{STATS}ysum": yc.sum(axis=1),
        f"{STATS}yss": (yc**2).sum(axis=1),
    }


def current(m: Measurement, state: State, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The indicators' data at this state: ordered items' rows from their latent responses.

    A response is drawn on every real row (uncut where its category is missing), so each
    enters on every real row, as the general path's weight has it. Without ordered items,
    the data's constants (:func:`prepare`).
    """
    which = np.flatnonzero(m.responses)
    if not which.size:
        return data
    real = data[ROW_REAL].astype(float)
    ystar = jnp.stack([state["nodes"][m.targets[j]] for j in which])  # (q, N)
    n = real.sum()
    ybar = (ystar * real).sum(axis=1) / jnp.maximum(n, 1.0)
    yc = (ystar - ybar[:, None]) * real
    out = dict(data)
    parts = {
        "obs": jnp.broadcast_to(real, yc.shape),
        "yc": yc,
        "ybar": ybar,
        "n": jnp.full(which.size, n),
        "ysum": yc.sum(axis=1),
        "yss": (yc**2).sum(axis=1),
    }
    for name, value in parts.items():
        key = f"{STATS}{name}"
        out[key] = value if which.size == m.size else data[key].at[which].set(value)
    return out


def scores(m: Measurement, nodes: Mapping[str, jax.Array]) -> jax.Array:
    """``(F, N)``: the current scores of the measured factors."""
    return jnp.stack([nodes[f] for f in m.factors])


def sums(m: Measurement, eta: jax.Array, data: Mapping[str, Any]) -> IndicatorSums:
    """Per indicator, sums over its answered rows of its factor's scores and their products."""
    obs, yc = data[f"{STATS}obs"], data[f"{STATS}yc"]
    # two (p, N) x (N, F) products and a pick of each indicator's own factor: in a study's
    # program the data are shared by the chains, and a dot reads them once for all of them
    # (an elementwise product broadcasts them to every chain first)
    own = (np.arange(m.size), np.asarray(m.factor_of))
    f = len(m.factors)
    mask_sums = obs @ jnp.concatenate([eta, eta**2]).T  # (p, 2F)
    return IndicatorSums(
        n=data[f"{STATS}n"],
        e=mask_sums[:, :f][own],
        ee=mask_sums[:, f:][own],
        y=data[f"{STATS}ysum"],
        yy=data[f"{STATS}yss"],
        ye=(yc @ eta.T)[own],
        ybar=data[f"{STATS}ybar"],
    )


def node_terms(
    m: Measurement, params: Mapping[str, jax.Array], data: Mapping[str, Any]
) -> tuple[jax.Array, jax.Array]:
    """Each factor's measurement information per row: precision and the linear term.

    Returns ``(F, N)`` arrays ``P`` and ``h`` with ``log p(f_n | indicators) = -P f^2 / 2 + h f``
    (up to a constant): ``P = sum_j o_jn lambda_j^2 / theta_j``, ``h = sum_j o_jn lambda_j
    (y_jn - nu_j) / theta_j`` over the indicators of each factor.
    """
    lam_w = params["lam"] / params["theta"]
    centre = params["nu"] - data[f"{STATS}ybar"]
    to_factor = jnp.asarray(m.onehot()) * lam_w[:, None]  # (p, F)
    f = len(m.factors)
    # (F, p) x (p, N) products: the data are read once for every chain sharing them
    weights = jnp.concatenate([to_factor * params["lam"][:, None], to_factor * centre[:, None]], 1)
    from_mask = weights.T @ data[f"{STATS}obs"]  # (2F, N)
    return from_mask[:f], to_factor.T @ data[f"{STATS}yc"] - from_mask[f:]


def draw_coefficients(
    m: Measurement,
    s: IndicatorSums,
    params: Mapping[str, jax.Array],
    noise: tuple[jax.Array, jax.Array],
    prior: tuple[tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
) -> tuple[jax.Array, jax.Array]:
    """Free intercepts and loadings of every indicator from their joint normal conditional.

    ``params``: the indicators' ``nu``, ``lam``, ``theta`` (a fixed intercept or loading keeps
    its value); ``prior``: per indicator, the normal prior's means and SDs of the intercept,
    then of the loading; ``noise``: ``(p, 2)`` standard normals for the pairs (the second
    draws a loading alone under a fixed intercept), ``(p,)`` for the intercepts of
    fixed-loading indicators.
    """
    (m0, s0), (m1, s1) = prior
    w = 1 / params["theta"]
    n_w, s_e, s_ee = s.n * w, s.e * w, s.ee * w
    s_y = (s.y + s.n * s.ybar) * w  # sums of the uncentred indicator
    s_ye = (s.ye + s.ybar * s.e) * w
    p0, p1 = 1 / s0**2, 1 / s1**2
    prec = jnp.stack(
        [jnp.stack([n_w + p0, s_e], -1), jnp.stack([s_e, s_ee + p1], -1)],
        -2,
    )
    rhs = jnp.stack([s_y + m0 * p0, s_ye + m1 * p1], -1)
    pair = normal_from_precision(None, prec, rhs, noise[0])
    fixed = jnp.asarray(m.fixed_loading)
    prec_nu = n_w + p0  # fixed loading: the intercept of y - loading * score
    nu_fixed = (s_y - fixed * s_e + m0 * p0) / prec_nu + noise[1] / jnp.sqrt(prec_nu)
    marker = jnp.asarray(m.marker)
    nu = jnp.where(marker, nu_fixed, pair[:, 0])
    lam = jnp.where(marker, fixed, pair[:, 1])
    pinned = m.fixed_intercept
    if pinned.any():  # fixed intercept: the loading of y - intercept alone
        at = jnp.asarray(m.intercept_value)
        prec_lam = s_ee + p1
        lam_alone = (s_ye - at * s_e + m1 * p1) / prec_lam + noise[0][:, 1] / jnp.sqrt(prec_lam)
        nu = jnp.where(pinned, at, nu)
        lam = jnp.where(pinned & ~m.marker, lam_alone, lam)
    return nu, lam


def marker_terms(
    s: IndicatorSums, params: Mapping[str, jax.Array], which: np.ndarray, loading: np.ndarray
) -> tuple[jax.Array, jax.Array]:
    """``(A, B)`` of ``-A g^2 / 2 + B g``: indicators ``which`` with their factor's scores × g.

    The log likelihood of fixed-loading indicators when their factor's scores are scaled by
    ``g`` (free loadings are scaled by ``1 / g`` with them and do not move).
    """
    if not which.any():
        return jnp.asarray(0.0), jnp.asarray(0.0)
    theta = params["theta"]
    c = jnp.asarray(np.where(which, loading, 0.0))
    a = (c**2 * s.ee / theta).sum()
    b = (c * (s.ye + (s.ybar - params["nu"]) * s.e) / theta).sum()
    return a, b


def start(m: Measurement, data: Mapping[str, Any], key: jax.Array) -> dict[str, jax.Array]:
    """Start values of the indicators' parameters.

    Loadings start at ``±(1 + jitter)``, the sign of the indicator's covariance with the first
    fixed-loading indicator of its factor (+ without one); intercepts at the observed means,
    residual variances at half the observed variances.
    """
    n = jnp.maximum(data[f"{STATS}n"], 1.0)
    jitter = 1.0 + 0.3 * jax.random.uniform(key, (m.size,), minval=-1, maxval=1)
    lam = jnp.where(jnp.asarray(m.marker), jnp.asarray(m.fixed_loading), _signs(m, data) * jitter)
    spread = data[f"{STATS}yss"] / n
    theta = jnp.where(spread > 0, 0.5 * spread, 1.0)  # 1: an indicator with no variation
    theta = jnp.where(m.free_variance, theta, m.variance_value)
    # an ordered item's free intercept starts at 0, as its thresholds' start assumes
    nu = jnp.where(m.responses, 0.0, data[f"{STATS}ybar"])
    nu = jnp.where(m.fixed_intercept, m.intercept_value, nu)
    return {"nu": nu, "lam": lam, "theta": theta}


def _signs(m: Measurement, data: Mapping[str, Any]) -> jax.Array:
    """Per indicator: the sign of its covariance with its factor's first marker (+1 without)."""
    yc = data[f"{STATS}yc"]
    anchor = []
    for j in range(m.size):
        same = [k for k in range(m.size) if m.factor_of[k] == m.factor_of[j] and m.marker[k]]
        anchor.append(same[0] if same else j)
    return jnp.where((yc * yc[np.asarray(anchor)]).sum(axis=1) < 0, -1.0, 1.0)


def collect(
    m: Measurement, equations: Sequence[Equation], params: Mapping[str, jax.Array]
) -> dict[str, jax.Array]:
    """The indicators' reported parameters by lavaan name (intercept, free loading, variance)."""
    out = {}
    for j, i in enumerate(m.equations):
        eq = equations[i]
        intercept, loading = eq.coefficients
        if intercept.parameter.free and not intercept.parameter.nuisance:
            out[intercept.parameter.name] = params["nu"][j]
        if loading.parameter.free and not loading.parameter.nuisance:
            out[loading.parameter.name] = params["lam"][j]
        if eq.variance.free and not eq.variance.nuisance:
            out[eq.variance.name] = params["theta"][j]
    return out
