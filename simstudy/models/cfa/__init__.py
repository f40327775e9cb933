"""Confirmatory factor analysis: correlated factors, continuous, binary or ordinal indicators.

Structure (``model.structure`` in config)::

    factors: {visual: [x1, x2, x3], textual: [x4, x5, x6]}   # factor -> its indicators
    identification: marker        # marker | standardized
    ordinal: []                   # indicators that are ordinal: a list of names, or all
    categories: 5                 # categories of every ordinal indicator (2 = binary)
    link: probit                  # probit | logit, for the ordinal indicators

DGM: standardized factors with a common correlation ``factor_corr``; every indicator has the
standardized loading ``loading`` on a latent response of unit variance
(``y* = loading * f + sqrt(1 - loading^2) * e``, ``e`` standard normal, or for ordinal items
under the logit link a standardized logistic). Continuous indicators are ``y*``; ordinal ones
cut ``y*`` at the standard normal quantiles of ``1/K, ..., (K-1)/K``. Every indicator but the
first is missing at ``missing_rate``: MCAR, or MAR given the (always observed) first indicator
(probit selection of strength ``mar_strength``).

Estimator ``bayes``: a Gibbs-type sampler in the marker parameterisation (first loading of each
factor 1, factor covariance matrix free): latent scores from their multivariate normal full
conditional, intercepts and loadings per indicator from normal conditionals, residual variances
inverse-gamma, the factor covariance under LKJ correlations and inverse-gamma variances
(independence Metropolis from the inverse-Wishart conditional; ``factor_cov:
inverse_wishart`` makes it conjugate). Ordinal indicators (theta
parameterisation: intercept 0, residual variance 1 under probit, pi^2/3 under logit) are
augmented with latent responses, their thresholds drawn by Metropolis with the latent responses
integrated out; under the logit link the score and loading updates are Metropolis-corrected
(see :mod:`simstudy.blocks.ordinal`). Missing indicators are left out of the likelihood
(masks), which is exact under MAR.

Estimands (lavaan names): loadings ``f=~x``, factor (co)variances ``f~~g``, residual variances
``x~~x`` of continuous indicators, thresholds ``x|t1`` ... of ordinal ones. Under ``marker``
they are the marker parameterisation's (free loadings only); under ``standardized`` the
completely standardized solution of the same posterior, draw by draw (lavaan's ``std.all``:
loadings and thresholds divided by the SD of the indicator or latent response, factor
correlations, residual variances as proportions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from simstudy.blocks import ordinal as ordm
from simstudy.blocks.conjugate import (
    inv_gamma,
    loading_draw,
    marker_signs,
    measurement_draw,
    normal_from_precision,
)
from simstudy.contract import Family, GibbsEstimator
from simstudy.errors import InputError
from simstudy.models.cfa.moves import (
    FACTOR_COV_PRIORS,
    factor_cov_draw,
    factor_cov_prior_draw,
    item_scale_move,
    location_move,
    scale_move,
)
from simstudy.spec import MISSINGNESS_FACTORS, FactorSpec, ModelInfo, with_defaults
from simstudy.userdata import Columns, model_data

DEFAULT_STRUCTURE: dict[str, Any] = {
    "factors": {
        "visual": ["x1", "x2", "x3"],
        "textual": ["x4", "x5", "x6"],
        "speed": ["x7", "x8", "x9"],
    },
    "identification": "marker",
    "ordinal": [],
    "categories": 5,
    "link": "probit",
}
MAX_CATEGORIES = 10


def check_structure(raw: Any) -> dict[str, Any]:
    """Validate ``model.structure``; returns it with defaults filled in."""
    s = with_defaults(raw, DEFAULT_STRUCTURE)
    factors = s["factors"]
    if not isinstance(factors, Mapping) or not factors:
        raise InputError("model.structure.factors", factors, "a mapping factor -> indicators")
    seen: list[str] = []
    for f, items in factors.items():
        if isinstance(items, str) or not isinstance(items, (list, tuple)) or len(items) < 2:
            raise InputError(f"model.structure.factors.{f}", items, "at least 2 indicator names")
        for item in items:
            if not isinstance(item, str) or item in seen:
                raise InputError(
                    f"model.structure.factors.{f}", list(items), "distinct names, one factor each"
                )
            seen.append(item)
    if s["identification"] not in ("marker", "standardized"):
        raise InputError(
            "model.structure.identification", s["identification"], "marker or standardized"
        )
    ordinal = s["ordinal"]
    if ordinal == "all":
        ordinal = list(seen)
    if isinstance(ordinal, str) or not isinstance(ordinal, (list, tuple)):
        raise InputError("model.structure.ordinal", ordinal, "a list of indicator names, or all")
    strange = [x for x in ordinal if x not in seen]
    if strange:
        raise InputError("model.structure.ordinal", strange[0], "indicator names of the factors")
    k = s["categories"]
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_CATEGORIES:
        raise InputError("model.structure.categories", k, f"an integer in 2..{MAX_CATEGORIES}")
    if s["link"] not in ordm.LINKS:
        raise InputError("model.structure.link", s["link"], " or ".join(ordm.LINKS))
    return {
        "factors": {f: list(v) for f, v in factors.items()},
        "identification": s["identification"],
        "ordinal": [x for x in seen if x in set(ordinal)],
        "categories": k,
        "link": s["link"],
    }


def min_size(structure: Mapping[str, Any], estimators: Any) -> dict[str, tuple[float, str]]:
    """``N`` >= 10 and above the number of factors plus 1 (their covariance matrix)."""
    k = len(check_structure(structure)["factors"])
    return {
        "N": (
            max(10, k + 2),
            f"enough rows for each indicator's intercept, loading and residual variance and "
            f"the {k} x {k} factor covariance matrix",
        )
    }


def footprint(setting: Mapping[str, Any], estimators: Any) -> tuple[float, float]:
    """Indicators and masks (and latent responses) per row, the scores; draws of estimands."""
    layout = Layout(check_structure(setting.get("structure")))
    n, p, k = float(setting["N"]), len(layout.items), len(layout.factors)
    return n * (3 * p + k), float(len(layout.parameters()))


INFO = ModelInfo(
    name="cfa",
    factors={
        "N": FactorSpec("int", low=10),
        **MISSINGNESS_FACTORS,
    },
    params={
        "loading": FactorSpec("float", low=0.05, high=0.95),
        "factor_corr": FactorSpec("float", low=-0.9, high=0.9),
        "mar_strength": FactorSpec("float", low=0.0, high=1.0),
    },
    priors={
        "coef_sd": FactorSpec("float", low=1e-6),
        "var_shape": FactorSpec("float", low=1e-6),
        "var_scale": FactorSpec("float", low=1e-6),
        "factor_cov": FactorSpec("str", choices=FACTOR_COV_PRIORS),
        "lkj_eta": FactorSpec("float", low=1e-6),
    },
    estimators=("bayes",),
    samplers={"bayes": "gibbs"},
    posteriors=("bayes",),
    check_structure=check_structure,
    min_size=min_size,
    footprint=footprint,
)


class Layout:
    """Indicator order, factors, markers and ordinal items of a structure.

    All static: shapes and estimand names follow from the structure alone.
    """

    def __init__(self, structure: Mapping[str, Any]) -> None:
        groups = structure["factors"]
        self.factors = list(groups)
        self.items = [x for f in self.factors for x in groups[f]]
        self.factor_of = np.array([i for i, f in enumerate(self.factors) for _ in groups[f]])
        self.marker = np.array(
            [
                groups[self.factors[f]][0] == x
                for x, f in zip(self.items, self.factor_of, strict=True)
            ]
        )
        self.marker_of = np.array([self.items.index(groups[f][0]) for f in self.factors])
        self.onehot = np.eye(len(self.factors))[self.factor_of]
        self.standardized = structure["identification"] == "standardized"
        ordinal = set(structure.get("ordinal", []))
        self.ordinal = np.array([x in ordinal for x in self.items])
        self.categories = int(structure.get("categories", DEFAULT_STRUCTURE["categories"]))
        self.link = structure.get("link", "probit")
        # Residual variance of each indicator's latent response where it is fixed, else nan.
        self.fixed_var = np.where(self.ordinal, ordm.RESIDUAL_VAR[self.link], np.nan)
        n_cuts = max(self.categories - 1, 1)
        self.cut_mask = self.ordinal[:, None] & (np.arange(n_cuts) < self.categories - 1)

    @property
    def any_ordinal(self) -> bool:
        """Whether any indicator is ordinal."""
        return bool(self.ordinal.any())

    def parameters(self) -> tuple[str, ...]:
        """Estimand names, in order."""
        names = [
            f"{self.factors[f]}=~{x}"
            for x, f, m in zip(self.items, self.factor_of, self.marker, strict=True)
            if self.standardized or not m
        ]
        for a, fa in enumerate(self.factors):
            for fb in self.factors[a:]:
                if fa != fb or not self.standardized:
                    names.append(f"{fa}~~{fb}")
        names += [f"{x}~~{x}" for x, o in zip(self.items, self.ordinal, strict=True) if not o]
        names += [
            f"{x}|t{k + 1}"
            for x, o in zip(self.items, self.ordinal, strict=True)
            if o
            for k in range(self.categories - 1)
        ]
        return tuple(names)


def standard_thresholds(categories: int) -> np.ndarray:
    """The DGM's thresholds on the standardized latent response: equiprobable categories."""
    return stats.norm.ppf(np.arange(1, categories) / categories)


def truth(setting: Mapping[str, Any]) -> dict[str, float]:
    """True values on the scale the identification reports."""
    layout = Layout(setting["structure"])
    lam, rho = float(setting["loading"]), float(setting["factor_corr"])
    # Each indicator's latent response in the estimation metric is c_j times the DGM's
    # standardized one: 1 for continuous items, sd(e) / sqrt(1 - lam^2) for ordinal ones.
    scale = np.where(
        layout.ordinal, np.sqrt(np.nan_to_num(layout.fixed_var, nan=1.0) / (1 - lam**2)), 1.0
    )
    marker_scale = scale[layout.marker_of]
    cuts = standard_thresholds(layout.categories)
    out = {}
    for name in layout.parameters():
        if "|t" in name:
            item, _, k = name.partition("|t")
            j = layout.items.index(item)
            out[name] = float(cuts[int(k) - 1] * (1.0 if layout.standardized else scale[j]))
            continue
        left, op, right = name.partition("=~") if "=~" in name else name.partition("~~")
        if op == "=~":
            j, f = layout.items.index(right), layout.factors.index(left)
            out[name] = lam if layout.standardized else float(scale[j] / marker_scale[f])
        elif left in layout.factors:
            a, b = layout.factors.index(left), layout.factors.index(right)
            corr = 1.0 if a == b else rho
            out[name] = (
                corr
                if layout.standardized
                else corr * lam**2 * float(marker_scale[a] * marker_scale[b])
            )
        else:
            out[name] = 1 - lam**2
    return out


def _missing(key, first, setting, shape):
    n, p = shape
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        first = (first - first.mean()) / jnp.maximum(first.std(), 1e-12)
        score = s * first[:, None] + math.sqrt(1 - s**2) * jax.random.normal(key, (n, p))
        missing = score > jax.scipy.stats.norm.ppf(1 - rate)
    else:
        missing = jax.random.uniform(key, (n, p)) < rate
    return ~(missing & (jnp.arange(p) > 0))


def _dataset(layout: Layout, y, observed) -> dict[str, jax.Array]:
    return {
        "y": jnp.where(observed, y, 0.0),
        "observed": observed,
        "onehot": jnp.asarray(layout.onehot),
        "marker": jnp.asarray(layout.marker),
    }


def _responses(key, layout: Layout, mean, lam: float):
    """Indicators from latent response means (N × p) in the DGM's standardized metric."""
    n, p = mean.shape
    k_c, k_o = jax.random.split(key)
    y = mean + math.sqrt(1 - lam**2) * jax.random.normal(k_c, (n, p))
    if not layout.any_ordinal:
        return y
    scale = math.sqrt(ordm.RESIDUAL_VAR[layout.link] / (1 - lam**2))
    tau = jnp.where(
        jnp.asarray(layout.cut_mask), scale * standard_thresholds(layout.categories), jnp.inf
    )
    cats, _ = ordm.sample_categories(k_o, layout.link, scale * mean, tau)
    return jnp.where(jnp.asarray(layout.ordinal), cats, y)


def simulate(rng_key: jax.Array, setting: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Simulate ``y`` (N × p, 0 where missing), ``observed`` and the layout arrays.

    Ordinal items are category codes 0..K-1.
    """
    layout = Layout(setting["structure"])
    n, k, p = int(setting["N"]), len(layout.factors), len(layout.items)
    lam, rho = float(setting["loading"]), float(setting["factor_corr"])
    corr = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    k_eta, k_e, k_r = jax.random.split(rng_key, 3)
    eta = jax.random.normal(k_eta, (n, k)) @ jnp.asarray(np.linalg.cholesky(corr)).T
    y = _responses(k_e, layout, lam * eta[:, layout.factor_of], lam)
    return _dataset(layout, y, _missing(k_r, y[:, 0], setting, (n, p)))


def columns(structure: Mapping[str, Any] | None = None) -> Columns:
    """The columns of a user's table the model reads: the structure's indicators."""
    items = Layout(check_structure(structure)).items
    return Columns(numbers=tuple(items), allowed="the indicators of model.structure")


def from_frame(frame: Any, structure: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    """A data set from a user's table with the structure's indicator columns (NaN = missing).

    Ordinal columns hold integer codes ``0..K-1`` or ``1..K`` (``K`` = ``categories``; codes
    ``1..K`` in every ordinal column are shifted down by one).
    """
    layout = Layout(check_structure(structure))
    values = model_data(frame, columns(structure))
    y = np.column_stack([values[c] for c in layout.items])
    observed = ~np.isnan(y)
    if layout.any_ordinal:
        codes = y[:, layout.ordinal]
        seen = codes[~np.isnan(codes)]
        k = layout.categories
        if seen.size and seen.min() >= 1 and seen.max() <= k:
            y[:, layout.ordinal] = codes - 1
        for j in np.flatnonzero(layout.ordinal):
            col = y[observed[:, j], j]
            bad = col[(col != np.round(col)) | (col < 0) | (col > k - 1)]
            if bad.size:
                allowed = f"integer codes 0..{k - 1} or 1..{k} (model.structure.categories={k})"
                raise InputError(f"data column {layout.items[j]}", float(bad[0]), allowed)
    return _dataset(layout, jnp.asarray(np.where(observed, y, 0.0)), jnp.asarray(observed))


class State(NamedTuple):
    """One state of the chain (marker parameterisation)."""

    eta: jax.Array  # (N, k)
    nu: jax.Array  # (p,)
    lam: jax.Array  # (p,)
    theta: jax.Array  # (p,) residual variances (fixed for ordinal items)
    phi: jax.Array  # (k, k)
    cuts: ordm.ThresholdState  # thresholds (p, K-1), unused for continuous items


def _score_draw(key, y, weight, s: State, onehot):
    """Latent scores from N(.) with precision Phi^-1 + diag(sum_j w_ij lambda_j^2) per person."""
    a = (weight * s.lam**2) @ onehot  # (N, k)
    r = (weight * s.lam * (y - s.nu)) @ onehot
    prec = jnp.linalg.inv(s.phi)[None] + jax.vmap(jnp.diag)(a)
    return normal_from_precision(key, prec, r)


def make_estimators(structure: Mapping[str, Any]) -> dict[str, GibbsEstimator]:
    """The estimators for one structure (names and shapes of the estimands depend on it)."""
    layout = Layout(structure)
    names = layout.parameters()
    ordinal = jnp.asarray(layout.ordinal)
    cut_mask = jnp.asarray(layout.cut_mask)
    fixed_var = jnp.asarray(np.nan_to_num(layout.fixed_var, nan=1.0))
    link, logit = layout.link, layout.any_ordinal and layout.link == "logit"

    def init(rng_key, data, priors) -> State:
        """Jittered indicator means as scores; parameters near their data-based values."""
        k_eta, k_lam = jax.random.split(rng_key)
        obs = data["observed"].astype(float)
        onehot, y = data["onehot"], data["y"]
        n_obs = jnp.maximum(obs.sum(0), 1.0)
        mean_y = (y * obs).sum(0) / n_obs
        var_y = (((y - mean_y) * obs) ** 2).sum(0) / n_obs
        sign = marker_signs(y, data["observed"], layout.marker_of[layout.factor_of])
        y = y - mean_y
        if layout.any_ordinal:  # category codes enter the start scores standardized
            y = jnp.where(ordinal, y / jnp.sqrt(jnp.maximum(var_y, 1e-6)), y)
        scores = ((y * sign * obs) @ onehot) / jnp.maximum(obs @ onehot, 1.0)
        scores = scores - scores.mean(0)
        eta = scores + 0.3 * scores.std(0) * jax.random.normal(k_eta, scores.shape)
        p = mean_y.shape[0]
        jitter = 1.0 + 0.3 * jax.random.uniform(k_lam, (p,), minval=-1, maxval=1)
        lam = jnp.where(data["marker"], 1.0, sign * jitter)
        k = onehot.shape[1]
        phi = jnp.cov(eta.T).reshape(k, k) + 0.01 * jnp.eye(k)
        cuts = ordm.threshold_start(_start_thresholds(data, obs))
        nu = jnp.where(ordinal, 0.0, mean_y)
        theta = jnp.where(ordinal, fixed_var, 0.5 * var_y)
        return State(eta, nu, lam, theta, phi, cuts)

    def _start_thresholds(data, obs):
        """Link quantiles of the observed cumulative proportions, gaps at least 0.05."""
        if not layout.any_ordinal:
            return jnp.zeros(layout.cut_mask.shape)
        levels = jnp.arange(layout.cut_mask.shape[1])
        below = ((data["y"][:, :, None] <= levels) * obs[:, :, None]).sum(0)
        prop = jnp.clip(below / jnp.maximum(obs.sum(0), 1.0)[:, None], 0.02, 0.98)
        if link == "probit":
            tau = jax.scipy.special.ndtri(prop) * math.sqrt(2.0)
        else:
            tau = jnp.log(prop) - jnp.log1p(-prop)
        tau = jax.lax.cummax(tau, axis=1) + 0.05 * levels
        return ordm.unconstrain(tau)

    def step(rng_key, s: State, data, priors, adapt: bool = False) -> State:
        """One sweep: scores, intercepts and loadings, residual variances, factor covariance.

        With ordinal items: first a location move, thresholds and latent responses; after the
        loadings an item scale move; last the factor scale move.
        """
        c2 = priors["coef_sd"] ** 2
        a0, b0 = priors["var_shape"], priors["var_scale"]
        keys = jax.random.split(rng_key, 5)
        y, onehot, marker = data["y"], data["onehot"], data["marker"]
        observed = data["observed"]
        obs = observed.astype(float)
        if not layout.any_ordinal:
            eta = _score_draw(keys[0], y, obs / s.theta, s, onehot)
            nu, lam, theta = measurement_draw(
                (keys[1], keys[2], keys[3]), y, observed, eta @ onehot.T, marker, s.theta,
                c2, a0, b0,
            )  # fmt: skip
            phi = factor_cov_draw(keys[4], s.phi, eta, priors)
            s = State(eta, nu, lam, theta, phi, s.cuts)
            return scale_move(jax.random.fold_in(rng_key, 2), s, y, obs / theta, layout, priors)
        extra = jax.random.split(jax.random.fold_in(rng_key, 1), 7)
        s = location_move(extra[6], s, layout, cut_mask, priors["coef_sd"])
        weight_ord = obs * ordinal
        mean = s.nu + s.lam * (s.eta @ onehot.T)
        cuts = ordm.threshold_step(
            extra[0], s.cuts, link, y, weight_ord, mean, cut_mask, priors["coef_sd"], adapt
        )
        ystar = ordm.latent_responses(extra[1], link, y, ordm.thresholds(cuts.u, cut_mask), mean)
        y = jnp.where(ordinal, ystar, y)
        weight = obs / s.theta
        eta = _score_draw(keys[0], y, weight, s, onehot)
        if logit:  # independence Metropolis: the normal update as proposal, per person

            def excess(e):
                return (weight_ord * ordm.logit_correction(y - s.nu - s.lam * (e @ onehot.T))).sum(
                    1
                )

            u = jax.random.uniform(extra[2], (eta.shape[0],))
            eta = jnp.where((jnp.log(u) < excess(eta) - excess(s.eta))[:, None], eta, s.eta)
        scores = eta @ onehot.T
        nu, lam = loading_draw((keys[1], keys[2]), y, weight, scores, marker, ~ordinal, c2)
        if logit:  # the same correction per ordinal item's loading

            def excess_item(nu_, lam_):
                return (weight_ord * ordm.logit_correction(y - nu_ - lam_ * scores)).sum(0)

            u = jax.random.uniform(extra[3], lam.shape)
            keep = jnp.log(u) < excess_item(nu, lam) - excess_item(s.nu, s.lam)
            keep = keep | ~ordinal
            nu, lam = jnp.where(keep, nu, s.nu), jnp.where(keep, lam, s.lam)
        item_correction = None
        if logit:

            def item_correction(r):
                return weight_ord * ordm.logit_correction(r)

        s, y = item_scale_move(
            extra[5], s._replace(nu=nu, lam=lam, eta=eta, cuts=cuts), y, weight, scores, layout,
            cut_mask, priors["coef_sd"], item_correction,
        )  # fmt: skip
        cuts, lam = s.cuts, s.lam
        ssr = (obs * (y - nu - lam * scores) ** 2).sum(0)
        theta = inv_gamma(keys[3], a0 + obs.sum(0) / 2, b0 + ssr / 2)
        theta = jnp.where(ordinal, fixed_var, theta)
        phi = factor_cov_draw(keys[4], s.phi, eta, priors)
        s = State(eta, nu, lam, theta, phi, cuts)
        mk = layout.marker_of
        correction = None
        if logit and layout.ordinal[mk].any():

            def correction(r):
                return weight_ord[:, mk] * ordm.logit_correction(r)

        return scale_move(extra[4], s, y, obs / theta, layout, priors, correction)

    def warmup_step(rng_key, s: State, data, priors) -> State:
        return step(rng_key, s, data, priors, adapt=True)

    def collect(s: State, data) -> dict[str, jax.Array]:
        var_f = jnp.diag(s.phi)
        sd_f = jnp.sqrt(var_f)
        fo = jnp.asarray(layout.factor_of)
        # SD of each indicator (or latent response) implied by the state, for std.all.
        sd_y = jnp.sqrt(s.lam**2 * var_f[fo] + s.theta)
        tau = ordm.thresholds(s.cuts.u, cut_mask)
        out = {}
        for j, (x, f) in enumerate(zip(layout.items, layout.factor_of, strict=True)):
            name = f"{layout.factors[f]}=~{x}"
            if layout.standardized:
                out[name] = s.lam[j] * sd_f[f] / sd_y[j]
            elif not layout.marker[j]:
                out[name] = s.lam[j]
            if layout.ordinal[j]:
                for c in range(layout.categories - 1):
                    scale = sd_y[j] if layout.standardized else 1.0
                    out[f"{x}|t{c + 1}"] = tau[j, c] / scale
            else:
                out[f"{x}~~{x}"] = s.theta[j] / (sd_y[j] ** 2 if layout.standardized else 1.0)
        for a, fa in enumerate(layout.factors):
            for b in range(a, len(layout.factors)):
                if layout.standardized and a == b:
                    continue
                value = s.phi[a, b] / (sd_f[a] * sd_f[b]) if layout.standardized else s.phi[a, b]
                out[f"{fa}~~{layout.factors[b]}"] = value
        return {n: out[n] for n in names}

    estimator = GibbsEstimator(
        "bayes",
        init,
        step,
        collect,
        names,
        warmup_step=warmup_step if layout.any_ordinal else None,
    )
    return {"bayes": estimator}


def simulate_prior(
    rng_key: jax.Array, setting: Mapping[str, Any], priors: Mapping[str, float]
) -> tuple[dict[str, jax.Array], dict[str, float]]:
    """Parameters from the sampler's priors, then data from them (for SBC)."""
    layout = Layout(setting["structure"])
    n, k, p = int(setting["N"]), len(layout.factors), len(layout.items)
    c, a0, b0 = float(priors["coef_sd"]), float(priors["var_shape"]), float(priors["var_scale"])
    keys = jax.random.split(rng_key, 7)
    ordinal = jnp.asarray(layout.ordinal)
    nu = jnp.where(ordinal, 0.0, c * jax.random.normal(keys[0], (p,)))
    lam = jnp.where(jnp.asarray(layout.marker), 1.0, c * jax.random.normal(keys[1], (p,)))
    theta = inv_gamma(keys[2], a0, jnp.full((p,), b0))
    phi = factor_cov_prior_draw(keys[3], k, priors)
    eta = jax.random.normal(keys[4], (n, k)) @ jnp.linalg.cholesky(phi).T
    mean = nu + lam * eta[:, layout.factor_of]
    y = mean + jnp.sqrt(theta) * jax.random.normal(keys[5], (n, p))
    cuts = jnp.zeros(layout.cut_mask.shape)
    if layout.any_ordinal:
        k_tau, k_y = jax.random.split(jax.random.fold_in(keys[5], 1))
        # Increasing thresholds: sorted iid N(0, c^2), i.e. the ordered-restricted prior.
        cuts = jnp.sort(c * jax.random.normal(k_tau, cuts.shape), axis=1)
        tau = jnp.where(jnp.asarray(layout.cut_mask), cuts, jnp.inf)
        cats, _ = ordm.sample_categories(k_y, layout.link, mean, tau)
        y = jnp.where(ordinal, cats, y)
        theta = jnp.where(ordinal, jnp.asarray(np.nan_to_num(layout.fixed_var, nan=1.0)), theta)
    data = _dataset(layout, y, _missing(keys[6], y[:, 0], setting, (n, p)))
    state = State(eta, nu, lam, theta, phi, ordm.threshold_start(ordm.unconstrain(cuts)))
    collect = make_estimators(setting["structure"])["bayes"].collect
    truth = {name: float(v) for name, v in collect(state, data).items()}
    return data, truth


ESTIMATORS = make_estimators(check_structure(None))


FAMILY = Family(
    info=INFO,
    simulate=simulate,
    truth=truth,
    make_estimators=lambda structure: make_estimators(structure) if structure else ESTIMATORS,
    simulate_prior=simulate_prior,
    from_frame=from_frame,
    columns=columns,
)
