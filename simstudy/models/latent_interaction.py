"""Latent interaction: a structural model among three factors with a latent × latent product.

DGM (every factor has unit variance; three indicators each, loadings 1, lambda2, lambda3)::

    eta_x ~ N(0, 1)
    eta_m = a1 * eta_x + zeta_m                              Var(zeta_m) = 1 - a1^2
    eta_y = b1 * eta_x + b2 * eta_m + b3 * eta_x * eta_m + zeta_y
        with Var(zeta_y) = 1 - (b1^2 + b2^2 + 2 b1 b2 a1 + b3^2 (1 + a1^2))
    indicator_j = lambda_j * eta_f + e_j,   Var(e_j) = lambda_j^2 (1 - reliability) / reliability

Indicators of eta_m and eta_y are missing at ``missing_rate``: completely at random (MCAR), or
at random given the always-observed ``x1`` (MAR: probit selection of strength ``mar_strength``).

Identification (the latent locations are pinned, as a latent interaction model needs): the mean
of ``eta_x`` and the structural intercepts of ``eta_m`` and ``eta_y`` are 0; each factor's first
loading is 1; all indicator intercepts are free.

Estimators:

- ``bayes``: the full model by a conditionally conjugate Gibbs sampler (Blimp-style factored
  regressions). Given the other two factors every latent score has a normal full conditional
  (the product term is linear in each factor given the other), so latent scores, missing
  indicators (marginalised: only observed indicators enter), loadings, intercepts and variances
  are all drawn exactly; no Metropolis step is needed.
- ``fs_imputation``: M sets of latent scores drawn from that posterior; OLS of the structural
  regressions on each; pooled by Rubin's rules (the "Imp" method).
- ``sum_score_ols``: OLS on indicator means and their product (ignores measurement error:
  attenuated).

Estimands: ``eta_m~eta_x``, ``eta_y~eta_x``, ``eta_y~eta_m``, ``eta_y~eta_x:eta_m``, simple
slopes of ``eta_x`` at ±1 SD of ``eta_m`` (``eta_y~eta_x@eta_m=-1SD`` / ``+1SD``), and for
``bayes`` also the free loadings, latent (residual) variances and indicator residual variances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from simstudy.errors import InputError
from simstudy.models.base import (
    ClosedFormEstimator,
    Dataset,
    Estimate,
    GibbsEstimator,
    ImputationEstimator,
)
from simstudy.models.conjugate import inv_gamma, measurement_draw, normal_from_precision
from simstudy.spec import MISSINGNESS_FACTORS, FactorSpec, ModelInfo

FACTORS = ("eta_x", "eta_m", "eta_y")
INDICATORS = ("x1", "x2", "x3", "m1", "m2", "m3", "y1", "y2", "y3")
FACTOR_OF = np.repeat(np.arange(3), 3)  # factor index of each indicator
MARKER = np.array([j % 3 == 0 for j in range(9)])
ONEHOT = np.eye(3)[FACTOR_OF]  # (9, 3)
STRUCTURAL = ("eta_m~eta_x", "eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m")
SLOPES = ("eta_y~eta_x@eta_m=-1SD", "eta_y~eta_x@eta_m=+1SD")
LOADINGS = tuple(f"{FACTORS[FACTOR_OF[j]]}=~{INDICATORS[j]}" for j in range(9) if not MARKER[j])
VARIANCES = ("eta_x~~eta_x", "eta_m~~eta_m", "eta_y~~eta_y")
RESIDUALS = tuple(f"{name}~~{name}" for name in INDICATORS)
BAYES_PARAMETERS = STRUCTURAL + SLOPES + LOADINGS + VARIANCES + RESIDUALS
REGRESSION_PARAMETERS = STRUCTURAL + SLOPES

INFO = ModelInfo(
    name="latent_interaction",
    factors={
        "N": FactorSpec("int", low=10),
        **MISSINGNESS_FACTORS,
    },
    params={
        "a1": FactorSpec("float", low=-0.9, high=0.9),
        "b1": FactorSpec("float"),
        "b2": FactorSpec("float"),
        "b3": FactorSpec("float"),
        "lambda2": FactorSpec("float", low=0.05),
        "lambda3": FactorSpec("float", low=0.05),
        "reliability": FactorSpec("float", low=0.05, high=0.99),
        "mar_strength": FactorSpec("float", low=0.0, high=1.0),
    },
    priors={
        "coef_sd": FactorSpec("float", low=1e-6),
        "var_shape": FactorSpec("float", low=1e-6),
        "var_scale": FactorSpec("float", low=1e-6),
    },
    estimators=("bayes", "fs_imputation", "sum_score_ols"),
    samplers={"bayes": "gibbs", "fs_imputation": "gibbs"},
    posteriors=("bayes",),
)


def _psi_y(s: Mapping[str, Any]) -> float:
    a1, b1, b2, b3 = (float(s[k]) for k in ("a1", "b1", "b2", "b3"))
    explained = b1**2 + b2**2 + 2 * b1 * b2 * a1 + b3**2 * (1 + a1**2)
    if explained >= 1:
        raise ValueError(f"structural slopes explain {explained:.3f} >= 1 of Var(eta_y)")
    return 1.0 - explained


def _loadings(s: Mapping[str, Any]) -> np.ndarray:
    return np.tile([1.0, float(s["lambda2"]), float(s["lambda3"])], 3)


def truth(setting: Mapping[str, Any]) -> dict[str, float]:
    """True values of every estimand (unit-variance factors, so 1 SD of eta_m is 1)."""
    a1, b1, b3 = float(setting["a1"]), float(setting["b1"]), float(setting["b3"])
    lam = _loadings(setting)
    r = float(setting["reliability"])
    out = {
        "eta_m~eta_x": a1,
        "eta_y~eta_x": b1,
        "eta_y~eta_m": float(setting["b2"]),
        "eta_y~eta_x:eta_m": b3,
        "eta_y~eta_x@eta_m=-1SD": b1 - b3,
        "eta_y~eta_x@eta_m=+1SD": b1 + b3,
        "eta_x~~eta_x": 1.0,
        "eta_m~~eta_m": 1.0 - a1**2,
        "eta_y~~eta_y": _psi_y(setting),
    }
    for j, name in enumerate(INDICATORS):
        if not MARKER[j]:
            out[f"{FACTORS[FACTOR_OF[j]]}=~{name}"] = float(lam[j])
        out[f"{name}~~{name}"] = float(lam[j] ** 2 * (1 - r) / r)
    return out


def simulate(rng_key: jax.Array, setting: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Simulate one data set: ``y`` (N × 9 indicators, 0 where missing) and ``observed``."""
    n = int(setting["N"])
    a1, b1, b2, b3 = (float(setting[k]) for k in ("a1", "b1", "b2", "b3"))
    psi_y = _psi_y(setting)
    lam = jnp.asarray(_loadings(setting))
    r = float(setting["reliability"])
    k_x, k_m, k_y, k_e, k_r = jax.random.split(rng_key, 5)
    ex = jax.random.normal(k_x, (n,))
    em = a1 * ex + math.sqrt(1 - a1**2) * jax.random.normal(k_m, (n,))
    ey = b1 * ex + b2 * em + b3 * ex * em + math.sqrt(psi_y) * jax.random.normal(k_y, (n,))
    eta = jnp.stack([ex, em, ey], axis=1)
    sd_e = jnp.sqrt(lam**2 * (1 - r) / r)
    y = eta[:, FACTOR_OF] * lam + sd_e * jax.random.normal(k_e, (n, 9))
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        x1 = y[:, 0] / jnp.sqrt(1.0 / r)  # x1 standardised: Var(x1) = 1 / reliability
        score = s * x1[:, None] + math.sqrt(1 - s**2) * jax.random.normal(k_r, (n, 9))
        missing = score > jax.scipy.stats.norm.ppf(1 - rate)
    else:
        missing = jax.random.uniform(k_r, (n, 9)) < rate
    missing = missing & (jnp.arange(9) >= 3)  # x indicators always observed
    observed = ~missing
    return {"y": jnp.where(observed, y, 0.0), "observed": observed}


def from_frame(frame: Any, structure: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    """A data set from a user's table with columns x1-x3, m1-m3, y1-y3 (NaN where missing).

    Raises
    ------
    InputError
        Naming the indicator columns that are absent.
    """
    absent = [c for c in INDICATORS if c not in frame.columns]
    if absent:
        raise InputError(
            "data columns", ", ".join(absent), "indicator columns " + ", ".join(INDICATORS)
        )
    y = np.asarray(frame[list(INDICATORS)], dtype=float)
    observed = ~np.isnan(y)
    return {"y": jnp.asarray(np.where(observed, y, 0.0)), "observed": jnp.asarray(observed)}


# --- the Gibbs sampler -----------------------------------------------------------------------


class State(NamedTuple):
    """One state of the chain."""

    eta: jax.Array  # (N, 3) latent scores
    nu: jax.Array  # (9,) indicator intercepts
    lam: jax.Array  # (9,) loadings (markers fixed at 1)
    theta: jax.Array  # (9,) indicator residual variances
    phi_x: jax.Array  # Var(eta_x)
    a1: jax.Array
    psi_m: jax.Array
    b: jax.Array  # (3,) slopes of eta_y on eta_x, eta_m, eta_x * eta_m
    psi_y: jax.Array


def _score_means(data: Mapping[str, Any]) -> jax.Array:
    """Per-person mean of the observed indicators of each factor (sum-score scale)."""
    obs = data["observed"].astype(float)
    total = (data["y"] * obs) @ ONEHOT
    count = obs @ ONEHOT
    return total / jnp.maximum(count, 1.0)


def gibbs_init(rng_key: jax.Array, data: Mapping[str, Any], priors: Mapping[str, float]) -> State:
    """A dispersed start: jittered sum scores and parameters near their data-based values."""
    k_eta, k_lam, k_b, k_a = jax.random.split(rng_key, 4)
    scores = _score_means(data)
    scores = scores - scores.mean(axis=0)
    eta = scores + 0.3 * jnp.std(scores, axis=0) * jax.random.normal(k_eta, scores.shape)
    obs = data["observed"].astype(float)
    n_obs = jnp.maximum(obs.sum(axis=0), 1.0)
    mean_y = (data["y"] * obs).sum(axis=0) / n_obs
    var_y = (((data["y"] - mean_y) * obs) ** 2).sum(axis=0) / n_obs
    lam = jnp.where(MARKER, 1.0, 1.0 + 0.3 * jax.random.uniform(k_lam, (9,), minval=-1, maxval=1))
    return State(
        eta=eta,
        nu=mean_y,
        lam=lam,
        theta=0.5 * var_y,
        phi_x=jnp.var(eta[:, 0]),
        a1=jax.random.uniform(k_a, (), minval=-0.5, maxval=0.5),
        psi_m=jnp.asarray(1.0),
        b=jax.random.uniform(k_b, (3,), minval=-0.5, maxval=0.5),
        psi_y=jnp.asarray(1.0),
    )


def _update_eta(key, s: State, data, obs) -> jax.Array:
    # Measurement information per person and factor from the observed indicators.
    a = obs * s.lam**2 / s.theta
    r = obs * s.lam * (data["y"] - s.nu) / s.theta
    prec_meas = a @ ONEHOT
    rhs_meas = r @ ONEHOT
    b1, b2, b3 = s.b
    ex, em, ey = s.eta[:, 0], s.eta[:, 1], s.eta[:, 2]
    kx, km, ky = jax.random.split(key, 3)
    # eta_x | eta_m, eta_y: prior N(0, phi_x); eta_m = a1 eta_x + ...; eta_y linear in eta_x.
    d = b1 + b3 * em
    prec = 1 / s.phi_x + prec_meas[:, 0] + s.a1**2 / s.psi_m + d**2 / s.psi_y
    rhs = rhs_meas[:, 0] + s.a1 * em / s.psi_m + d * (ey - b2 * em) / s.psi_y
    ex = rhs / prec + jax.random.normal(kx, ex.shape) / jnp.sqrt(prec)
    # eta_m | eta_x, eta_y: prior N(a1 eta_x, psi_m); eta_y linear in eta_m given eta_x.
    c = b2 + b3 * ex
    prec = 1 / s.psi_m + prec_meas[:, 1] + c**2 / s.psi_y
    rhs = s.a1 * ex / s.psi_m + rhs_meas[:, 1] + c * (ey - b1 * ex) / s.psi_y
    em = rhs / prec + jax.random.normal(km, em.shape) / jnp.sqrt(prec)
    # eta_y | eta_x, eta_m: prior from the structural equation.
    prec = 1 / s.psi_y + prec_meas[:, 2]
    rhs = (b1 * ex + b2 * em + b3 * ex * em) / s.psi_y + rhs_meas[:, 2]
    ey = rhs / prec + jax.random.normal(ky, ey.shape) / jnp.sqrt(prec)
    return jnp.stack([ex, em, ey], axis=1)


def gibbs_step(
    rng_key: jax.Array, s: State, data: Mapping[str, Any], priors: Mapping[str, float]
) -> State:
    """One sweep: latent scores, then measurement parameters, then structural parameters."""
    c2 = priors["coef_sd"] ** 2
    a0, b0 = priors["var_shape"], priors["var_scale"]
    keys = jax.random.split(rng_key, 9)
    obs = data["observed"].astype(float)
    y = data["y"]
    eta = _update_eta(keys[0], s, data, obs)

    # Measurement: (nu, lambda) | theta per indicator (markers keep lambda = 1), then theta.
    nu, lam, theta = measurement_draw(
        (keys[1], keys[2], keys[3]),
        y,
        data["observed"],
        eta[:, FACTOR_OF],
        jnp.asarray(MARKER),
        s.theta,
        c2,
        a0,
        b0,
    )

    # Structural parameters given the latent scores.
    n = eta.shape[0]
    ex, em, ey = eta[:, 0], eta[:, 1], eta[:, 2]
    phi_x = inv_gamma(keys[4], a0 + n / 2, b0 + (ex**2).sum() / 2)
    prec_a = (ex**2).sum() / s.psi_m + 1 / c2
    a1 = (ex * em).sum() / s.psi_m / prec_a + jax.random.normal(keys[5], ()) / jnp.sqrt(prec_a)
    psi_m = inv_gamma(keys[6], a0 + n / 2, b0 + ((em - a1 * ex) ** 2).sum() / 2)
    z = jnp.stack([ex, em, ex * em], axis=1)
    prec_b = z.T @ z / s.psi_y + jnp.eye(3) / c2
    b = normal_from_precision(keys[7], prec_b, z.T @ ey / s.psi_y)
    psi_y = inv_gamma(keys[8], a0 + n / 2, b0 + ((ey - z @ b) ** 2).sum() / 2)
    return State(eta, nu, lam, theta, phi_x, a1, psi_m, b, psi_y)


def gibbs_collect(s: State, data: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The estimands of one state, derived quantities included."""
    sd_m = jnp.sqrt(s.a1**2 * s.phi_x + s.psi_m)  # model-implied SD of eta_m
    out = {
        "eta_m~eta_x": s.a1,
        "eta_y~eta_x": s.b[0],
        "eta_y~eta_m": s.b[1],
        "eta_y~eta_x:eta_m": s.b[2],
        "eta_y~eta_x@eta_m=-1SD": s.b[0] - s.b[2] * sd_m,
        "eta_y~eta_x@eta_m=+1SD": s.b[0] + s.b[2] * sd_m,
        "eta_x~~eta_x": s.phi_x,
        "eta_m~~eta_m": s.psi_m,
        "eta_y~~eta_y": s.psi_y,
    }
    for j, name in enumerate(INDICATORS):
        if not MARKER[j]:
            out[f"{FACTORS[FACTOR_OF[j]]}=~{name}"] = s.lam[j]
        out[f"{name}~~{name}"] = s.theta[j]
    return out


def simulate_prior(
    rng_key: jax.Array, setting: Mapping[str, Any], priors: Mapping[str, float]
) -> tuple[dict[str, jax.Array], dict[str, float]]:
    """Draw every parameter from the Gibbs sampler's priors, then a data set (for SBC).

    The data follow the estimation model exactly (free latent variances, loadings and
    intercepts; markers fixed at 1; structural intercepts 0), with missingness as in
    :func:`simulate` (ignorable given the always-observed x indicators).

    Returns
    -------
    dataset, truth
    """
    c = float(priors["coef_sd"])
    a0, b0 = float(priors["var_shape"]), float(priors["var_scale"])
    keys = jax.random.split(rng_key, 10)
    nu = c * jax.random.normal(keys[0], (9,))
    lam = jnp.where(MARKER, 1.0, c * jax.random.normal(keys[1], (9,)))
    theta = inv_gamma(keys[2], a0, jnp.full((9,), b0))
    phi_x, psi_m, psi_y = inv_gamma(keys[3], a0, jnp.full((3,), b0))
    a1 = c * jax.random.normal(keys[4], ())
    b = c * jax.random.normal(keys[5], (3,))
    n = int(setting["N"])
    noise = jax.random.normal(keys[6], (n, 3))
    ex = jnp.sqrt(phi_x) * noise[:, 0]
    em = a1 * ex + jnp.sqrt(psi_m) * noise[:, 1]
    ey = b[0] * ex + b[1] * em + b[2] * ex * em + jnp.sqrt(psi_y) * noise[:, 2]
    eta = jnp.stack([ex, em, ey], axis=1)
    y = nu + lam * eta[:, FACTOR_OF] + jnp.sqrt(theta) * jax.random.normal(keys[7], (n, 9))
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        x1 = (y[:, 0] - y[:, 0].mean()) / y[:, 0].std()
        score = s * x1[:, None] + math.sqrt(1 - s**2) * jax.random.normal(keys[8], (n, 9))
        missing = score > jax.scipy.stats.norm.ppf(1 - rate)
    else:
        missing = jax.random.uniform(keys[8], (n, 9)) < rate
    observed = ~(missing & (jnp.arange(9) >= 3))
    state = State(eta, nu, lam, theta, phi_x, a1, psi_m, b, psi_y)
    truth = {k: float(v) for k, v in gibbs_collect(state, {}).items()}
    return {"y": jnp.where(observed, y, 0.0), "observed": observed}, truth


# --- complete-data analyses: of imputed latent scores, and of sum scores ---------------------


def _ols(design: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    xtx = design.T @ design
    beta = jnp.linalg.solve(xtx, design.T @ target)
    dof = design.shape[0] - design.shape[1]
    s2 = ((target - design @ beta) ** 2).sum() / dof
    return beta, s2 * jnp.linalg.inv(xtx)


def _regressions(ex, em, ey) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    ones = jnp.ones_like(ex)
    beta_m, v_m = _ols(jnp.stack([ones, ex], 1), em)
    beta, v = _ols(jnp.stack([ones, ex, em, ex * em], 1), ey)
    sd_m = jnp.std(em, ddof=1)
    est = {
        "eta_m~eta_x": beta_m[1],
        "eta_y~eta_x": beta[1],
        "eta_y~eta_m": beta[2],
        "eta_y~eta_x:eta_m": beta[3],
        "eta_y~eta_x@eta_m=-1SD": beta[1] - sd_m * beta[3],
        "eta_y~eta_x@eta_m=+1SD": beta[1] + sd_m * beta[3],
    }
    var = {
        "eta_m~eta_x": v_m[1, 1],
        "eta_y~eta_x": v[1, 1],
        "eta_y~eta_m": v[2, 2],
        "eta_y~eta_x:eta_m": v[3, 3],
        "eta_y~eta_x@eta_m=-1SD": v[1, 1] + sd_m**2 * v[3, 3] - 2 * sd_m * v[1, 3],
        "eta_y~eta_x@eta_m=+1SD": v[1, 1] + sd_m**2 * v[3, 3] + 2 * sd_m * v[1, 3],
    }
    return est, var


def analyse_scores(s: State, data: Mapping[str, Any]) -> tuple[dict, dict]:
    """OLS of the structural regressions on one draw of the latent scores."""
    return _regressions(s.eta[:, 0], s.eta[:, 1], s.eta[:, 2])


def sum_score_ols(dataset: Dataset, level: float, rng_key: Any = None) -> dict[str, Estimate]:
    """OLS on indicator means (observed indicators only) with t intervals.

    Raises
    ------
    ValueError
        When fewer than 6 persons have every factor's score.
    """
    scores = np.asarray(_score_means(dataset))
    count = np.asarray(dataset["observed"], float) @ ONEHOT
    keep = (count > 0).all(axis=1)
    if keep.sum() < 6:
        raise ValueError(
            f"sum_score_ols needs at least 6 persons with all scores, got {keep.sum()}"
        )
    ex, em, ey = (jnp.asarray(scores[keep, k]) for k in range(3))
    est, var = _regressions(ex, em, ey)
    dof = int(keep.sum()) - 4
    tq = float(stats.t.ppf(0.5 + level / 2, dof))
    out = {}
    for name in REGRESSION_PARAMETERS:
        e, se = float(est[name]), math.sqrt(float(var[name]))
        out[name] = Estimate(e, se, e - tq * se, e + tq * se)
    return out


_DEFAULT_PRIORS = {"coef_sd": 10.0, "var_shape": 2.0, "var_scale": 0.5}
BAYES = GibbsEstimator("bayes", gibbs_init, gibbs_step, gibbs_collect, BAYES_PARAMETERS)

ESTIMATORS = {
    "bayes": BAYES,
    "fs_imputation": ImputationEstimator(
        "fs_imputation", BAYES, 20, analyse_scores, REGRESSION_PARAMETERS
    ),
    "sum_score_ols": ClosedFormEstimator("sum_score_ols", sum_score_ols, REGRESSION_PARAMETERS),
}
