"""Linear regression with a missing predictor: the textbook missing-data case.

DGM::

    z ~ N(0, 1)
    x = rho * z + sqrt(1 - rho^2) * u,           u ~ N(0, 1)
    y = b0 + b1 * x + b2 * z + sigma * e,        e ~ N(0, 1)

``x`` is missing at rate ``missing_rate``: completely at random (``MCAR``), or at random given
``y`` (``MAR``) through a probit selection ``r = s * y_std + sqrt(1 - s^2) * v``, ``x`` missing
when ``r > Phi^-1(1 - missing_rate)``; ``y_std`` standardises ``y`` by its population moments,
so the expected rate is exactly ``missing_rate`` and ``s = mar_strength`` sets how strongly
missingness depends on ``y``. Selection on the outcome biases complete-case slopes; modelling
``x`` given ``z`` and sampling the missing ``x`` (``bayes_fiml``) does not; nor does the same
model with each missing ``x`` integrated out (``bayes_fiml_marginal``: ``y | z`` is normal
there, so 7 parameters are sampled instead of N + 7).

Estimands: ``y~1`` (b0), ``y~x`` (b1), ``y~z`` (b2), ``y~~y`` (sigma^2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy import stats

from simstudy.errors import InputError
from simstudy.models.base import ClosedFormEstimator, Dataset, Estimate, SampledEstimator
from simstudy.models.family import Family
from simstudy.spec import MISSINGNESS_FACTORS, FactorSpec, ModelInfo
from simstudy.userdata import Columns, model_data

PARAMETERS = ("y~1", "y~x", "y~z", "y~~y")

#: Parameters each estimator estimates: y's 3 coefficients and its variance, and the model
#: of x given z (2 coefficients and a variance) where x's missing values are handled.
N_PARAMETERS = {"ols_cc": 4, "bayes_cc": 4, "bayes_fiml": 7, "bayes_fiml_marginal": 7}


def min_size(structure: Mapping[str, Any], estimators: Any) -> dict[str, tuple[float, str]]:
    """``N`` above the parameters each estimator estimates (fewer rows cannot identify them)."""
    est = max(estimators, key=lambda e: N_PARAMETERS.get(e, 4))  # the first of the largest
    p = N_PARAMETERS.get(est, 4)
    return {"N": (p + 1, f"more rows than the {p} parameters {est} estimates")}


def footprint(setting: Mapping[str, Any], estimators: Any) -> tuple[float, float]:
    """4 values per row (y, z, x, its mask); bayes_fiml samples each row's x (N + 7)."""
    n = float(setting["N"])
    per_draw = {"bayes_fiml": n + 7, "bayes_cc": 4, "bayes_fiml_marginal": 7}
    return 4 * n, max((per_draw.get(e, 0) for e in estimators), default=0)


INFO = ModelInfo(
    name="regression_missing",
    factors={
        "N": FactorSpec("int", low=1),
        **MISSINGNESS_FACTORS,
    },
    params={
        "b0": FactorSpec("float"),
        "b1": FactorSpec("float"),
        "b2": FactorSpec("float"),
        "sigma": FactorSpec("float", low=1e-6),
        "rho": FactorSpec("float", low=-0.99, high=0.99),
        "mar_strength": FactorSpec("float", low=0.0, high=1.0),
    },
    priors={"coef_sd": FactorSpec("float", low=1e-6), "sigma_scale": FactorSpec("float", low=1e-6)},
    estimators=("bayes_fiml", "bayes_cc", "ols_cc", "bayes_fiml_marginal"),
    samplers={"bayes_fiml": "nuts", "bayes_cc": "nuts", "bayes_fiml_marginal": "nuts"},
    posteriors=("bayes_fiml", "bayes_cc", "bayes_fiml_marginal"),
    min_size=min_size,
    footprint=footprint,
)


def truth(setting: Mapping[str, Any]) -> dict[str, float]:
    """True values of the estimands under ``setting`` (model parameters merged with a condition)."""
    return {
        "y~1": float(setting["b0"]),
        "y~x": float(setting["b1"]),
        "y~z": float(setting["b2"]),
        "y~~y": float(setting["sigma"]) ** 2,
    }


def simulate(rng_key: jax.Array, setting: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Simulate one data set.

    Parameters
    ----------
    rng_key
        JAX PRNG key.
    setting
        Model parameters merged with the condition's factor levels (``N``, ``missing_rate``,
        ``mechanism`` and any parameter varied as a factor).

    Returns
    -------
    dict
        ``y``, ``z``, ``x`` (0 where missing) and ``x_observed`` (bool mask), each of length N.
    """
    n = int(setting["N"])
    b0, b1, b2 = setting["b0"], setting["b1"], setting["b2"]
    sigma, rho, rate = setting["sigma"], setting["rho"], setting["missing_rate"]
    kz, ku, ke, kr = jax.random.split(rng_key, 4)
    z = jax.random.normal(kz, (n,))
    x = rho * z + jnp.sqrt(1.0 - rho**2) * jax.random.normal(ku, (n,))
    y = b0 + b1 * x + b2 * z + sigma * jax.random.normal(ke, (n,))
    if setting["mechanism"] == "MAR":
        s = setting["mar_strength"]
        sd_y = jnp.sqrt(b1**2 + b2**2 + 2 * b1 * b2 * rho + sigma**2)
        r = s * (y - b0) / sd_y + jnp.sqrt(1.0 - s**2) * jax.random.normal(kr, (n,))
        missing = r > jax.scipy.stats.norm.ppf(1.0 - rate)
    else:
        missing = jax.random.uniform(kr, (n,)) < rate
    observed = ~missing
    return {"y": y, "z": z, "x": jnp.where(observed, x, 0.0), "x_observed": observed}


def simulate_prior(
    rng_key: jax.Array, setting: Mapping[str, Any], priors: Mapping[str, float]
) -> tuple[dict[str, jax.Array], dict[str, float]]:
    """Draw parameters from the estimators' priors, then a data set (for SBC).

    The data follow the model that ``bayes_fiml`` fits: ``x | z ~ N(g0 + g1 z, tau)`` and
    ``y | x, z ~ N(b0 + b1 x + b2 z, sigma)``, with coefficients ~ N(0, coef_sd) and scales
    ~ HalfNormal(sigma_scale); ``z ~ N(0, 1)`` is conditioned on, missingness as in
    :func:`simulate` (ignorable: MCAR, or MAR given the always-observed ``y``).

    Returns
    -------
    dataset, truth
    """
    k_par, k_z, k_x, k_y, k_r = jax.random.split(rng_key, 5)
    c, scale = float(priors["coef_sd"]), float(priors["sigma_scale"])
    coef = c * np.asarray(jax.random.normal(k_par, (7,)))
    b0, b1, b2, g0, g1 = (float(v) for v in coef[:5])
    sigma, tau = (abs(float(v)) * scale / c for v in coef[5:])
    n = int(setting["N"])
    z = jax.random.normal(k_z, (n,))
    x = g0 + g1 * z + tau * jax.random.normal(k_x, (n,))
    y = b0 + b1 * x + b2 * z + sigma * jax.random.normal(k_y, (n,))
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        y_std = (y - y.mean()) / y.std()
        r = s * y_std + jnp.sqrt(1.0 - s**2) * jax.random.normal(k_r, (n,))
        missing = r > jax.scipy.stats.norm.ppf(1.0 - rate)
    else:
        missing = jax.random.uniform(k_r, (n,)) < rate
    observed = ~missing
    dataset = {"y": y, "z": z, "x": jnp.where(observed, x, 0.0), "x_observed": observed}
    return dataset, {"y~1": b0, "y~x": b1, "y~z": b2, "y~~y": sigma**2}


#: The columns of a user's table the model reads (``simstudy fit``).
COLUMNS = Columns(
    numbers=("y", "x", "z"),
    allowed="columns y, x and z (x may have NaN)",
    predictors=("x", "z"),
)


def columns(structure: Mapping[str, Any] | None = None) -> Columns:
    """The columns of a user's table the model reads."""
    return COLUMNS


def from_frame(frame: Any, structure: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    """A data set from a user's table: columns ``y``, ``x`` (may be missing, NaN) and ``z``.

    Raises
    ------
    InputError
        Naming missing columns, bad values (:func:`~simstudy.userdata.model_data`), or
        missing values where the model allows none (``y``, ``z``).
    """
    values = model_data(frame, COLUMNS)
    y, x, z = (values[c] for c in COLUMNS.numbers)
    for col in ("y", "z"):
        n_missing = int(np.isnan(values[col]).sum())
        if n_missing:
            raise InputError(
                f"data column {col}", f"{n_missing} missing values", "complete y and z"
            )
    observed = ~np.isnan(x)
    return {
        "y": jnp.asarray(y),
        "z": jnp.asarray(z),
        "x": jnp.asarray(np.where(observed, x, 0.0)),
        "x_observed": jnp.asarray(observed),
    }


def _regression_priors(coef_sd: float, sigma_scale: float) -> tuple[Any, ...]:
    b0 = numpyro.sample("b0", dist.Normal(0.0, coef_sd))
    b1 = numpyro.sample("b1", dist.Normal(0.0, coef_sd))
    b2 = numpyro.sample("b2", dist.Normal(0.0, coef_sd))
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    return b0, b1, b2, sigma


def fiml_model(y, z, x, x_observed, coef_sd, sigma_scale) -> None:
    """Model-based handling of missing ``x``: a model for ``x | z``, missing ``x`` sampled.

    Every position gets a standard-normal ``x_raw`` (non-centred); where ``x`` is observed it is
    ignored by the likelihood and stays a proper N(0, 1) dimension, so the shapes are those of
    the full data set whatever the missingness pattern.
    """
    b0, b1, b2, sigma = _regression_priors(coef_sd, sigma_scale)
    mu_x, tau = _x_model(z, coef_sd, sigma_scale)
    x_raw = numpyro.sample("x_raw", dist.Normal(0.0, 1.0).expand(y.shape).to_event(1))
    x_full = jnp.where(x_observed, x, mu_x + tau * x_raw)
    with numpyro.handlers.mask(mask=x_observed):
        numpyro.sample("x_obs", dist.Normal(mu_x, tau), obs=x)
    numpyro.sample("y_obs", dist.Normal(b0 + b1 * x_full + b2 * z, sigma), obs=y)


def _x_model(z, coef_sd: float, sigma_scale: float) -> tuple[Any, Any]:
    g0 = numpyro.sample("g0", dist.Normal(0.0, coef_sd))
    g1 = numpyro.sample("g1", dist.Normal(0.0, coef_sd))
    tau = numpyro.sample("tau", dist.HalfNormal(sigma_scale))
    return g0 + g1 * z, tau


def fiml_marginal_model(y, z, x, x_observed, coef_sd, sigma_scale) -> None:
    """:func:`fiml_model` with each missing ``x`` integrated out instead of sampled.

    ``x | z`` and ``y | x, z`` are normal, so where ``x`` is missing
    ``y | z ~ N(b0 + b1 (g0 + g1 z) + b2 z, sqrt(sigma^2 + b1^2 tau^2))``: the same posterior
    of the 7 parameters as :func:`fiml_model` (the formulation blavaan uses for linear SEM),
    with no latent dimension per missing value.
    """
    b0, b1, b2, sigma = _regression_priors(coef_sd, sigma_scale)
    mu_x, tau = _x_model(z, coef_sd, sigma_scale)
    with numpyro.handlers.mask(mask=x_observed):
        numpyro.sample("x_obs", dist.Normal(mu_x, tau), obs=x)
        numpyro.sample("y_obs", dist.Normal(b0 + b1 * x + b2 * z, sigma), obs=y)
    with numpyro.handlers.mask(mask=~x_observed):
        marginal_sd = jnp.sqrt(sigma**2 + (b1 * tau) ** 2)
        numpyro.sample("y_mis", dist.Normal(b0 + b1 * mu_x + b2 * z, marginal_sd), obs=y)


def cc_model(y, z, x, x_observed, coef_sd, sigma_scale) -> None:
    """Complete-case regression: rows with missing ``x`` are masked out of the likelihood."""
    b0, b1, b2, sigma = _regression_priors(coef_sd, sigma_scale)
    with numpyro.handlers.mask(mask=x_observed):
        numpyro.sample("y_obs", dist.Normal(b0 + b1 * x + b2 * z, sigma), obs=y)


def _model_data(dataset: Dataset, priors: Mapping[str, float]) -> dict[str, Any]:
    return {
        "y": dataset["y"],
        "z": dataset["z"],
        "x": dataset["x"],
        "x_observed": dataset["x_observed"],
        "coef_sd": float(priors["coef_sd"]),
        "sigma_scale": float(priors["sigma_scale"]),
    }


def _derive(samples: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "y~1": samples["b0"],
        "y~x": samples["b1"],
        "y~z": samples["b2"],
        "y~~y": samples["sigma"] ** 2,
    }


def ols_complete_cases(dataset: Dataset, level: float) -> dict[str, Estimate]:
    """OLS on complete cases with classical standard errors and t (chi-square) intervals.

    Raises
    ------
    ValueError
        When there are fewer than 4 complete cases (3 coefficients and a variance).
    """
    keep = np.asarray(dataset["x_observed"], dtype=bool)
    n = int(keep.sum())
    p = 3
    if n <= p:
        raise ValueError(f"ols_cc needs more than {p} complete cases, got {n}")
    y = np.asarray(dataset["y"], dtype=float)[keep]
    design = np.column_stack(
        [np.ones(n), np.asarray(dataset["x"], float)[keep], np.asarray(dataset["z"], float)[keep]]
    )
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = n - p
    s2 = float(np.sum((y - design @ beta) ** 2) / df)
    cov = s2 * np.linalg.inv(design.T @ design)
    tq = stats.t.ppf(0.5 + level / 2, df)
    out = {}
    for name, b, v in zip(("y~1", "y~x", "y~z"), beta, np.diag(cov), strict=True):
        se = float(np.sqrt(v))
        out[name] = Estimate(float(b), se, float(b - tq * se), float(b + tq * se))
    alpha = 1.0 - level
    out["y~~y"] = Estimate(
        s2,
        s2 * float(np.sqrt(2.0 / df)),
        df * s2 / float(stats.chi2.ppf(1 - alpha / 2, df)),
        df * s2 / float(stats.chi2.ppf(alpha / 2, df)),
    )
    return out


ESTIMATORS = {
    "bayes_fiml": SampledEstimator("bayes_fiml", fiml_model, _model_data, _derive, PARAMETERS),
    "bayes_cc": SampledEstimator("bayes_cc", cc_model, _model_data, _derive, PARAMETERS),
    "bayes_fiml_marginal": SampledEstimator(
        "bayes_fiml_marginal", fiml_marginal_model, _model_data, _derive, PARAMETERS
    ),
    "ols_cc": ClosedFormEstimator("ols_cc", ols_complete_cases, PARAMETERS),
}


FAMILY = Family(
    info=INFO,
    simulate=simulate,
    truth=truth,
    make_estimators=lambda structure: ESTIMATORS,
    simulate_prior=simulate_prior,
    from_frame=from_frame,
    columns=columns,
)
