"""Confirmatory factor analysis: any number of correlated factors, continuous indicators.

Structure (``model.structure`` in config)::

    factors: {visual: [x1, x2, x3], textual: [x4, x5, x6]}   # factor -> its indicators
    identification: marker        # marker | standardized

DGM: standardized factors with a common correlation ``factor_corr``; every indicator has the
standardized loading ``loading`` and unit variance (``Var(e) = 1 - loading^2``). Every
indicator but the first is missing at ``missing_rate``: MCAR, or MAR given the first indicator
(probit selection of strength ``mar_strength``).

Estimator ``bayes``: a conditionally conjugate Gibbs sampler in the marker parameterisation
(first loading of each factor 1, factor covariance matrix free): latent scores from their
multivariate normal full conditional, intercepts and loadings per indicator from normal
conditionals, residual variances inverse-gamma, the factor covariance inverse-Wishart.
Missing indicators are left out of the likelihood (masks), which is exact under MAR.
The ``standardized`` identification reports the standardized solution of the same posterior,
draw by draw: loadings ``lambda_j * sd(f)`` and factor correlations (LKJ-free: the
correlation prior is the one the inverse-Wishart implies).

Estimands: loadings ``f=~x`` (free ones under marker, all when standardized), factor
(co)variances ``f~~g`` (correlations when standardized), residual variances ``x~~x``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.errors import InputError
from simstudy.models.base import GibbsEstimator
from simstudy.models.conjugate import (
    inv_gamma,
    inverse_wishart,
    measurement_draw,
    normal_from_precision,
)
from simstudy.spec import MISSINGNESS_FACTORS, FactorSpec, ModelInfo

DEFAULT_STRUCTURE: dict[str, Any] = {
    "factors": {
        "visual": ["x1", "x2", "x3"],
        "textual": ["x4", "x5", "x6"],
        "speed": ["x7", "x8", "x9"],
    },
    "identification": "marker",
}


def check_structure(raw: Any) -> dict[str, Any]:
    """Validate ``model.structure``; returns it with defaults filled in."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(DEFAULT_STRUCTURE))
    if unknown:
        allowed = "known keys are factors, identification (ordinal indicators: not yet)"
        raise InputError(f"model.structure.{unknown[0]}", raw[unknown[0]], allowed)
    s = {**DEFAULT_STRUCTURE, **raw}
    factors = s["factors"]
    if not isinstance(factors, Mapping) or not factors:
        raise InputError("model.structure.factors", factors, "a mapping factor -> indicators")
    seen: set[str] = set()
    for f, items in factors.items():
        if isinstance(items, str) or not isinstance(items, (list, tuple)) or len(items) < 2:
            raise InputError(f"model.structure.factors.{f}", items, "at least 2 indicator names")
        for item in items:
            if not isinstance(item, str) or item in seen:
                raise InputError(
                    f"model.structure.factors.{f}", list(items), "distinct names, one factor each"
                )
            seen.add(item)
    if s["identification"] not in ("marker", "standardized"):
        raise InputError(
            "model.structure.identification", s["identification"], "marker or standardized"
        )
    return {
        "factors": {f: list(v) for f, v in factors.items()},
        "identification": s["identification"],
    }


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
    },
    estimators=("bayes",),
    samplers={"bayes": "gibbs"},
    posteriors=("bayes",),
    check_structure=check_structure,
)


class Layout:
    """Indicator order, the factor of each indicator and the markers, from a structure."""

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
        self.onehot = np.eye(len(self.factors))[self.factor_of]
        self.standardized = structure["identification"] == "standardized"

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
        return (*names, *(f"{x}~~{x}" for x in self.items))


def truth(setting: Mapping[str, Any]) -> dict[str, float]:
    """True values on the scale the identification reports."""
    layout = Layout(setting["structure"])
    lam, rho = float(setting["loading"]), float(setting["factor_corr"])
    out = {}
    for name in layout.parameters():
        left, op, right = name.partition("=~") if "=~" in name else name.partition("~~")
        if op == "=~":
            out[name] = lam if layout.standardized else 1.0
        elif left in layout.factors:
            var = 1.0 if layout.standardized else lam**2
            out[name] = var if left == right else rho * var
        else:
            out[name] = 1 - lam**2
    return out


def _missing(key, ystar_first, setting, shape):
    n, p = shape
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        first = (ystar_first - ystar_first.mean()) / ystar_first.std()
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


def simulate(rng_key: jax.Array, setting: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Simulate ``y`` (N × p, 0 where missing), ``observed`` and the layout arrays."""
    layout = Layout(setting["structure"])
    n, k, p = int(setting["N"]), len(layout.factors), len(layout.items)
    lam, rho = float(setting["loading"]), float(setting["factor_corr"])
    corr = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    k_eta, k_e, k_r = jax.random.split(rng_key, 3)
    eta = jax.random.normal(k_eta, (n, k)) @ jnp.asarray(np.linalg.cholesky(corr)).T
    y = lam * eta[:, layout.factor_of] + math.sqrt(1 - lam**2) * jax.random.normal(k_e, (n, p))
    return _dataset(layout, y, _missing(k_r, y[:, 0], setting, (n, p)))


def from_frame(frame: Any, structure: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    """A data set from a user's table with the structure's indicator columns (NaN = missing)."""
    layout = Layout(check_structure(structure))
    absent = [c for c in layout.items if c not in frame.columns]
    if absent:
        raise InputError("data columns", ", ".join(absent), "the indicators of model.structure")
    y = np.asarray(frame[layout.items], dtype=float)
    observed = ~np.isnan(y)
    return _dataset(layout, jnp.asarray(np.where(observed, y, 0.0)), jnp.asarray(observed))


class State(NamedTuple):
    """One state of the chain (marker parameterisation)."""

    eta: jax.Array  # (N, k)
    nu: jax.Array  # (p,)
    lam: jax.Array  # (p,)
    theta: jax.Array  # (p,)
    phi: jax.Array  # (k, k)


def gibbs_init(rng_key, data, priors) -> State:
    """Jittered indicator means as scores; parameters near their data-based values."""
    k_eta, k_lam = jax.random.split(rng_key)
    obs = data["observed"].astype(float)
    onehot = data["onehot"]
    scores = ((data["y"] * obs) @ onehot) / jnp.maximum(obs @ onehot, 1.0)
    scores = scores - scores.mean(0)
    eta = scores + 0.3 * scores.std(0) * jax.random.normal(k_eta, scores.shape)
    n_obs = jnp.maximum(obs.sum(0), 1.0)
    mean_y = (data["y"] * obs).sum(0) / n_obs
    var_y = (((data["y"] - mean_y) * obs) ** 2).sum(0) / n_obs
    p = mean_y.shape[0]
    lam = jnp.where(
        data["marker"], 1.0, 1.0 + 0.3 * jax.random.uniform(k_lam, (p,), minval=-1, maxval=1)
    )
    k = onehot.shape[1]
    return State(eta, mean_y, lam, 0.5 * var_y, jnp.cov(eta.T).reshape(k, k) + 0.01 * jnp.eye(k))


def gibbs_step(rng_key, s: State, data, priors) -> State:
    """Scores, then intercepts and loadings, residual variances, factor covariance."""
    c2 = priors["coef_sd"] ** 2
    a0, b0 = priors["var_shape"], priors["var_scale"]
    keys = jax.random.split(rng_key, 5)
    obs = data["observed"].astype(float)
    y, onehot, marker = data["y"], data["onehot"], data["marker"]
    k = onehot.shape[1]
    # Scores: precision Phi^-1 + diag(sum_j m_ij lambda_j^2 / theta_j) per person.
    a = (obs * s.lam**2 / s.theta) @ onehot  # (N, k)
    r = (obs * s.lam * (y - s.nu) / s.theta) @ onehot
    prec = jnp.linalg.inv(s.phi)[None] + jax.vmap(jnp.diag)(a)
    eta = normal_from_precision(keys[0], prec, r)
    # Measurement: (nu, lambda) | theta per indicator (markers keep lambda = 1), then theta.
    nu, lam, theta = measurement_draw(
        (keys[1], keys[2], keys[3]),
        y,
        data["observed"],
        eta @ onehot.T,
        marker,
        s.theta,
        c2,
        a0,
        b0,
    )
    # Factor covariance: inverse-Wishart(k + 2 + N, var_scale * I + eta' eta).
    phi = inverse_wishart(keys[4], k + 2 + eta.shape[0], b0 * jnp.eye(k) + eta.T @ eta)
    return State(eta, nu, lam, theta, phi)


def make_estimators(structure: Mapping[str, Any]) -> dict[str, GibbsEstimator]:
    """The estimators for one structure (names of the estimands depend on it)."""
    layout = Layout(structure)
    names = layout.parameters()

    def collect(s: State, data) -> dict[str, jax.Array]:
        sd = jnp.sqrt(jnp.diag(s.phi))
        out = {}
        for j, (x, f) in enumerate(zip(layout.items, layout.factor_of, strict=True)):
            name = f"{layout.factors[f]}=~{x}"
            if layout.standardized:
                out[name] = s.lam[j] * sd[f]
            elif not layout.marker[j]:
                out[name] = s.lam[j]
        for a, fa in enumerate(layout.factors):
            for b in range(a, len(layout.factors)):
                if layout.standardized and a == b:
                    continue
                value = s.phi[a, b] / (sd[a] * sd[b]) if layout.standardized else s.phi[a, b]
                out[f"{fa}~~{layout.factors[b]}"] = value
        for j, x in enumerate(layout.items):
            out[f"{x}~~{x}"] = s.theta[j]
        return {n: out[n] for n in names}

    return {"bayes": GibbsEstimator("bayes", gibbs_init, gibbs_step, collect, names)}


def simulate_prior(
    rng_key: jax.Array, setting: Mapping[str, Any], priors: Mapping[str, float]
) -> tuple[dict[str, jax.Array], dict[str, float]]:
    """Parameters from the sampler's priors, then data from them (for SBC)."""
    layout = Layout(setting["structure"])
    n, k, p = int(setting["N"]), len(layout.factors), len(layout.items)
    c, a0, b0 = float(priors["coef_sd"]), float(priors["var_shape"]), float(priors["var_scale"])
    keys = jax.random.split(rng_key, 7)
    nu = c * jax.random.normal(keys[0], (p,))
    lam = jnp.where(jnp.asarray(layout.marker), 1.0, c * jax.random.normal(keys[1], (p,)))
    theta = inv_gamma(keys[2], a0, jnp.full((p,), b0))
    phi = inverse_wishart(keys[3], k + 2, b0 * jnp.eye(k))
    eta = jax.random.normal(keys[4], (n, k)) @ jnp.linalg.cholesky(phi).T
    y = nu + lam * eta[:, layout.factor_of] + jnp.sqrt(theta) * jax.random.normal(keys[5], (n, p))
    data = _dataset(layout, y, _missing(keys[6], y[:, 0], setting, (n, p)))
    collect = make_estimators(setting["structure"])["bayes"].collect
    truth = {name: float(v) for name, v in collect(State(eta, nu, lam, theta, phi), data).items()}
    return data, truth


ESTIMATORS = make_estimators(check_structure(None))
