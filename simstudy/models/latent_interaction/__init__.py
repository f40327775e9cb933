"""Latent interaction: a structural model among three factors with a latent × latent product.

DGM (three indicators per factor, loadings 1, lambda2, lambda3)::

    eta_x ~ N(0, 1)
    eta_m = a1 * eta_x + zeta_m                              Var(zeta_m) = 1 - a1^2
    eta_y = b1 * eta_x + b2 * eta_m + b3 * eta_x * eta_m + zeta_y
        with Var(zeta_y) = 1 - (b1^2 + b2^2 + 2 b1 b2 a1 + b3^2 (1 + a1^2))
    indicator_j = lambda_j * eta_f + e_j,   Var(e_j) = lambda_j^2 (1 - reliability) / reliability

Indicators of eta_m and eta_y are missing at ``missing_rate``: completely at random (MCAR), or
at random given the always-observed ``x1`` (MAR: probit selection of strength ``mar_strength``).

Variants (``model.structure``)::

    moderator: latent     # latent: eta_m measured by m1-m3 | observed: an observed moderator w
    nominal: false        # true: an incomplete 3-category nominal predictor d (codes 1, 2, 3)

- ``moderator: observed``: ``w`` takes eta_m's place, measured without error (it *is* the
  DGM's eta_m); there are no m indicators; ``w`` has a free intercept ``w~1`` and is missing
  like the indicators. Estimand names say ``w`` where they said ``eta_m``.
- ``nominal: true``: ``d`` is drawn first with probabilities ``(1 - d_prob2 - d_prob3,
  d_prob2, d_prob3)``; ``eta_x = d_on_x2 [d=2] + d_on_x3 [d=3] + zeta_x`` with
  ``Var(zeta_x) = 1 - Var(mean shift)`` (so eta_x keeps unit variance); ``eta_y`` gains
  ``d_on_y2 [d=2] + d_on_y3 [d=3]``; ``Var(zeta_y)`` is as above. ``d`` is missing like the
  indicators. Simple slopes are at the mean of the moderator ± 1 SD.

Identification (the latent locations are pinned, as a latent interaction model needs): the mean
of ``eta_x`` (in the first category of ``d``) and the structural intercepts of ``eta_m`` and
``eta_y`` are 0; each factor's first loading is 1; all indicator intercepts are free.

Priors (``model.priors``, defaults in ``conf/model/latent_interaction_handwritten.yaml``): loadings,
indicator intercepts, structural slopes and ``w~1`` ~ Normal(0, ``coef_sd``); indicator residual
variances ~ InverseGamma(``var_shape``, ``var_scale``), default (2, 0.5), which keeps them off
zero; latent (residual) variances ~ InverseGamma(``latent_var_shape``, ``latent_var_scale``),
default (-1, 0): flat on the variance, as Mplus's default. An InverseGamma(2, 0.5) on the latent
variances pulls them down by 3-4% at N = 250 and inflates the interaction by about 2.5 points
(``docs/latent_interaction_priors.md``). Simulation-based calibration needs proper priors.

Estimators:

- ``bayes``: the full model by a conditionally conjugate Gibbs sampler (Blimp-style factored
  regressions). Given the other two factors every latent score has a normal full conditional
  (the product term is linear in each factor given the other), so latent scores, missing
  indicators (marginalised: only observed indicators enter), a missing ``w`` (drawn like a
  latent score), loadings, intercepts and variances are all drawn exactly; a missing ``d`` is
  drawn from its discrete full conditional, its category probabilities from their Dirichlet
  conditional. A factor scale move per factor (Liu & Sabatti 2000, see
  :mod:`simstudy.models.latent_interaction.moves`) crosses the direction the plain
  updates cross slowly.
- ``fs_imputation``: M sets of latent scores (and missing ``w``, ``d``) drawn from that
  posterior; OLS of the structural regressions on each; pooled by Rubin's rules ("Imp"). The
  states are those of the ``bayes`` chains (same key), so a study fitting both runs one chain.
- ``sum_score_ols``: OLS on indicator means and their product (ignores measurement error:
  attenuated); persons with a missing ``w`` or ``d`` are left out.

Estimands: ``eta_m~eta_x``, ``eta_y~eta_x``, ``eta_y~eta_m``, ``eta_y~eta_x:eta_m``, simple
slopes of ``eta_x`` at the mean ± 1 SD of ``eta_m`` (``eta_y~eta_x@eta_m=-1SD`` / ``+1SD``),
with ``nominal`` the effects ``eta_y~d2``, ``eta_y~d3``; for ``bayes`` also the free loadings,
latent (residual) variances, indicator residual variances, ``w~1`` and with ``nominal``
``eta_x~d2``, ``eta_x~d3``, ``P(d=2)``, ``P(d=3)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.conjugate import inv_gamma
from simstudy.contract import (
    ClosedFormEstimator,
    Dataset,
    Estimate,
    Family,
    GibbsEstimator,
    ImputationEstimator,
)
from simstudy.errors import InputError
from simstudy.models.latent_interaction import gibbs as interaction_gibbs
from simstudy.models.latent_interaction.gibbs import State, mean_y
from simstudy.models.latent_interaction.layout import (
    FACTORS,
    Layout,
    check_structure,
    regressions,
    score_means,
)
from simstudy.spec import MISSINGNESS_FACTORS, FactorSpec, ModelInfo
from simstudy.spec.declare import check_inverse_gamma
from simstudy.userdata import Columns, model_data

__all__ = ["FACTORS", "Layout", "State", "check_structure", "make_estimators", "simulate"]

DEFAULT_LAYOUT = Layout(None)
INDICATORS = DEFAULT_LAYOUT.items
STRUCTURAL = DEFAULT_LAYOUT.structural
SLOPES = DEFAULT_LAYOUT.slopes
BAYES_PARAMETERS = DEFAULT_LAYOUT.bayes
REGRESSION_PARAMETERS = DEFAULT_LAYOUT.regression


def check_priors(priors: Mapping[str, Any], proper: bool) -> None:
    """The indicators' and the latent variances' inverse-gamma priors (``check_inverse_gamma``)."""
    check_inverse_gamma(priors, ("", "latent_"), proper)


def min_size(structure: Mapping[str, Any], estimators: Any) -> dict[str, tuple[float, str]]:
    """``N`` >= 10: fewer rows leave the indicators' regressions to their priors."""
    layout = Layout(structure)
    return {
        "N": (
            10,
            f"enough rows for the {len(layout.items)} indicators' intercepts, loadings and "
            "residual variances and eta_y's regression (4 slopes and a variance)",
        )
    }


def footprint(setting: Mapping[str, Any], estimators: Any) -> tuple[float, float]:
    """Indicators and masks per row, the 3 latent scores; draws of every estimand."""
    layout = Layout(setting.get("structure"))
    n = float(setting["N"])
    data = n * (2 * (len(layout.items) + len(layout.extra_columns)) + 3)
    if "fs_imputation" in estimators:
        data += 20 * 3 * n  # the M = 20 recorded draws of the scores
    sampled = {"bayes", "fs_imputation", "bayes_engine"} & set(estimators)
    return data, float(len(layout.bayes)) if sampled else 0.0


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
        "d_prob2": FactorSpec("float", low=0.01, high=0.98),
        "d_prob3": FactorSpec("float", low=0.01, high=0.98),
        "d_on_x2": FactorSpec("float"),
        "d_on_x3": FactorSpec("float"),
        "d_on_y2": FactorSpec("float"),
        "d_on_y3": FactorSpec("float"),
    },
    priors={
        "coef_sd": FactorSpec("float", low=1e-6),
        "var_shape": FactorSpec("float", low=-1.0),
        "var_scale": FactorSpec("float", low=0.0),
        "latent_var_shape": FactorSpec("float", low=-1.0),
        "latent_var_scale": FactorSpec("float", low=0.0),
    },
    estimators=("bayes", "fs_imputation", "sum_score_ols", "bayes_engine"),
    samplers={"bayes": "gibbs", "fs_imputation": "gibbs", "bayes_engine": "gibbs"},
    posteriors=("bayes",),
    check_structure=check_structure,
    check_priors=check_priors,
    min_size=min_size,
    footprint=footprint,
)


def _psi_y(s: Mapping[str, Any]) -> float:
    a1, b1, b2, b3 = (float(s[k]) for k in ("a1", "b1", "b2", "b3"))
    explained = b1**2 + b2**2 + 2 * b1 * b2 * a1 + b3**2 * (1 + a1**2)
    if explained >= 1:
        raise ValueError(f"structural slopes explain {explained:.3f} >= 1 of Var(eta_y)")
    return 1.0 - explained


def _nominal(s: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Category probabilities, eta_x shifts, eta_y effects and Var(zeta_x) of the DGM."""
    p = np.array([1.0 - float(s["d_prob2"]) - float(s["d_prob3"]), s["d_prob2"], s["d_prob3"]])
    if p[0] < 0.01:
        raise ValueError(f"d_prob2 + d_prob3 = {1 - p[0]:.3f} leaves no first category")
    shift = np.array([0.0, s["d_on_x2"], s["d_on_x3"]], dtype=float)
    effect = np.array([0.0, s["d_on_y2"], s["d_on_y3"]], dtype=float)
    var_shift = float(p @ shift**2 - (p @ shift) ** 2)
    if var_shift >= 1:
        raise ValueError(f"d explains {var_shift:.3f} >= 1 of Var(eta_x)")
    return p, shift, effect, 1.0 - var_shift


def _loadings(s: Mapping[str, Any], layout: Layout) -> np.ndarray:
    per = {"1": 1.0, "2": float(s["lambda2"]), "3": float(s["lambda3"])}
    return np.array([per[x[1]] for x in layout.items])


def truth(setting: Mapping[str, Any]) -> dict[str, float]:
    """True values of every estimand (eta_x and eta_m have unit variance)."""
    layout = Layout(setting.get("structure"))
    a1, b1, b3 = float(setting["a1"]), float(setting["b1"]), float(setting["b3"])
    lam = _loadings(setting, layout)
    r = float(setting["reliability"])
    m = layout.mod
    mean_m, phi_x = 0.0, 1.0
    if layout.nominal:
        p, shift, effect, phi_x = _nominal(setting)
        mean_m = a1 * float(p @ shift)
    out = {
        f"{m}~eta_x": a1,
        "eta_y~eta_x": b1,
        f"eta_y~{m}": float(setting["b2"]),
        f"eta_y~eta_x:{m}": b3,
        f"eta_y~eta_x@{m}=-1SD": b1 + b3 * (mean_m - 1),
        f"eta_y~eta_x@{m}=+1SD": b1 + b3 * (mean_m + 1),
        "eta_x~~eta_x": phi_x,
        f"{m}~~{m}": 1.0 - a1**2,
        "eta_y~~eta_y": _psi_y(setting),
    }
    if layout.observed_moderator:
        out["w~1"] = 0.0
    if layout.nominal:
        out |= {"eta_y~d2": effect[1], "eta_y~d3": effect[2]}
        out |= {"eta_x~d2": shift[1], "eta_x~d3": shift[2], "P(d=2)": p[1], "P(d=3)": p[2]}
    for j, name in enumerate(layout.items):
        if not layout.marker[j]:
            out[f"{FACTORS[layout.factor_of[j]]}=~{name}"] = float(lam[j])
        out[f"{name}~~{name}"] = float(lam[j] ** 2 * (1 - r) / r)
    return {k: float(v) for k, v in out.items()}


def _missing(key, first: jax.Array, setting: Mapping[str, Any], n: int, width: int):
    """Missingness of ``width`` variables; MAR given ``first`` (standardised here)."""
    rate = float(setting["missing_rate"])
    if setting["mechanism"] == "MAR":
        s = float(setting["mar_strength"])
        score = s * first[:, None] + math.sqrt(1 - s**2) * jax.random.normal(key, (n, width))
        return score > jax.scipy.stats.norm.ppf(1 - rate)
    return jax.random.uniform(key, (n, width)) < rate


def _dataset(layout: Layout, y, eta, d, missing) -> dict[str, jax.Array]:
    p = len(layout.items)
    observed = ~(missing[:, :p] & (jnp.arange(p) >= 3))  # x indicators always observed
    data = {"y": jnp.where(observed, y, 0.0), "observed": observed}
    column = p
    if layout.observed_moderator:
        w_obs = ~missing[:, column]
        data |= {"w": jnp.where(w_obs, eta[:, 1], 0.0), "w_observed": w_obs}
        column += 1
    if layout.nominal:
        d_obs = ~missing[:, column]
        data |= {"d": jnp.where(d_obs, d, 0), "d_observed": d_obs}
    return data


def simulate(rng_key: jax.Array, setting: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Simulate one data set: ``y`` (N × indicators, 0 where missing) and ``observed``.

    With an observed moderator also ``w`` and ``w_observed``; with a nominal predictor ``d``
    (codes 0, 1, 2 for categories 1, 2, 3) and ``d_observed``.
    """
    layout = Layout(setting.get("structure"))
    n, p = int(setting["N"]), len(layout.items)
    a1, b1, b2, b3 = (float(setting[k]) for k in ("a1", "b1", "b2", "b3"))
    psi_y = _psi_y(setting)
    lam = jnp.asarray(_loadings(setting, layout))
    r = float(setting["reliability"])
    k_x, k_m, k_y, k_e, k_r = jax.random.split(rng_key, 5)
    ex = jax.random.normal(k_x, (n,))
    d = jnp.zeros(n, dtype=jnp.int32)
    shift = effect = jnp.zeros(3)
    if layout.nominal:
        prob, shift, effect, phi_x = (jnp.asarray(v) for v in _nominal(setting))
        d = jax.random.choice(jax.random.fold_in(rng_key, 7), 3, (n,), p=prob)
        ex = shift[d] + jnp.sqrt(phi_x) * ex
    em = a1 * ex + math.sqrt(1 - a1**2) * jax.random.normal(k_m, (n,))
    ey = b1 * ex + b2 * em + b3 * ex * em + math.sqrt(psi_y) * jax.random.normal(k_y, (n,))
    ey = ey + effect[d]
    eta = jnp.stack([ex, em, ey], axis=1)
    sd_e = jnp.sqrt(lam**2 * (1 - r) / r)
    y = eta[:, layout.factor_of] * lam + sd_e * jax.random.normal(k_e, (n, p))
    width = p + len(layout.extra_columns)
    missing = _missing(k_r, y[:, 0] / jnp.sqrt(1.0 / r), setting, n, width)
    return _dataset(layout, y, eta, d, missing)


def columns(structure: Mapping[str, Any] | None = None) -> Columns:
    """The columns of a user's table the model reads: indicators, then ``w`` and ``d``."""
    layout = Layout(structure)
    wanted = layout.items + layout.extra_columns
    return Columns(
        numbers=tuple(wanted),
        allowed="columns " + ", ".join(wanted),
        predictors=tuple(layout.extra_columns),
    )


def from_frame(frame: Any, structure: Mapping[str, Any] | None = None) -> dict[str, jax.Array]:
    """A data set from a user's table (NaN where missing).

    Columns: the indicators (x1-x3, m1-m3, y1-y3; no m with an observed moderator), ``w`` for
    an observed moderator, ``d`` (codes 1, 2, 3) for the nominal predictor.

    Raises
    ------
    InputError
        Naming the columns that are absent, bad values
        (:func:`~simstudy.userdata.model_data`), or a ``d`` code other than 1, 2, 3.
    """
    layout = Layout(structure)
    values = model_data(frame, columns(structure))
    y = np.column_stack([values[c] for c in layout.items])
    observed = ~np.isnan(y)
    data = {"y": jnp.asarray(np.where(observed, y, 0.0)), "observed": jnp.asarray(observed)}
    if layout.observed_moderator:
        w = values["w"]
        data |= {"w": jnp.asarray(np.nan_to_num(w)), "w_observed": jnp.asarray(~np.isnan(w))}
    if layout.nominal:
        d = values["d"]
        seen = d[~np.isnan(d)]
        strange = seen[~np.isin(seen, (1, 2, 3))]
        if strange.size:
            raise InputError("data column d", strange[0], "codes 1, 2, 3 (NaN where missing)")
        d_obs = ~np.isnan(d)
        codes = np.where(d_obs, d - 1, 0).astype(np.int32)
        data |= {"d": jnp.asarray(codes), "d_observed": jnp.asarray(d_obs)}
    return data


# --- the Gibbs sampler -----------------------------------------------------------------------


def make_estimators(structure: Mapping[str, Any] | None) -> dict[str, Any]:
    """The estimators of one variant (their estimands and data shapes depend on it)."""
    layout = Layout(structure)
    parts = interaction_gibbs.sampler(layout)

    def sum_score_ols(dataset: Dataset, level: float, rng_key: Any = None) -> dict[str, Estimate]:
        """OLS on indicator means (observed indicators only) with t intervals.

        Raises
        ------
        ValueError
            When fewer than 8 persons have every score (and w, d).
        """
        scores = np.asarray(score_means(dataset, layout))
        count = np.asarray(dataset["observed"], float) @ layout.onehot
        keep = (count[:, [0, 2]] > 0).all(axis=1)
        if not layout.observed_moderator:
            keep &= count[:, 1] > 0
        else:
            keep &= np.asarray(dataset["w_observed"])
        dummies = None
        if layout.nominal:
            keep &= np.asarray(dataset["d_observed"])
            dummies = jnp.asarray(np.eye(3)[np.asarray(dataset["d"])][keep][:, 1:])
        if keep.sum() < 8:
            raise ValueError(
                f"sum_score_ols needs at least 8 persons with all scores, got {keep.sum()}"
            )
        ex, em, ey = (jnp.asarray(scores[keep, k]) for k in range(3))
        est, var = regressions(layout, ex, em, ey, dummies)
        dof = int(keep.sum()) - (6 if layout.nominal else 4)
        return {
            name: Estimate.t_interval(float(est[name]), math.sqrt(float(var[name])), dof, level)
            for name in layout.regression
        }

    bayes = GibbsEstimator(
        "bayes", parts.init, parts.step, parts.collect, layout.bayes, prepare=parts.prepare
    )
    out = {
        "bayes": bayes,
        "fs_imputation": ImputationEstimator(
            "fs_imputation", bayes, 20, parts.analyse_scores, layout.regression
        ),
        "sum_score_ols": ClosedFormEstimator("sum_score_ols", sum_score_ols, layout.regression),
    }
    if not layout.observed_moderator and not layout.nominal:
        out["bayes_engine"] = engine_estimator(layout)
    return out


#: The model in the syntax (simstudy.spec), fitted by the compiled sweep as ``bayes_engine``.
SYNTAX = """
eta_x =~ x1 + x2 + x3
eta_m =~ m1 + m2 + m3
eta_y =~ y1 + y2 + y3
eta_m ~ a1*eta_x
eta_y ~ b1*eta_x + b2*eta_m + b3*eta_x:eta_m
eta_x ~~ phi_x*eta_x
eta_m ~~ psi_m*eta_m
slope_lo := b1 - b3 * (a1^2 * phi_x + psi_m)^0.5
slope_hi := b1 + b3 * (a1^2 * phi_x + psi_m)^0.5
"""
#: The syntax's derived simple slopes (at the moderator's mean -/+ 1 SD) by this family's names.
ENGINE_NAMES = {"slope_lo": "eta_y~eta_x@eta_m=-1SD", "slope_hi": "eta_y~eta_x@eta_m=+1SD"}


def engine_estimator(layout: Layout) -> GibbsEstimator:
    """``bayes``'s model compiled from :data:`SYNTAX` by the engine, on this family's data.

    Its priors are ``bayes``'s: indicator residual variances InverseGamma(var_shape,
    var_scale), latent (residual) variances InverseGamma(latent_var_shape, latent_var_scale),
    so the two estimators have the same posterior (benchmarks/compare_engine.py). It reports
    every estimand of ``bayes``, the simple slopes as derived quantities of the syntax.
    """
    from simstudy.spec import dgm
    from simstudy.spec.family import family
    from simstudy.spec.info import normalise

    structure = normalise(
        {
            "syntax": SYNTAX,
            "prior_families": {"residual": "inverse_gamma", "covariance": "inverse_gamma"},
        }
    )
    compiled = family("latent_interaction_syntax", structure).estimators_for(structure)["bayes"]
    items = layout.items

    def as_spec(data):
        n = data["y"].shape[0]
        out = {dgm.ROW_REAL: jnp.ones(n, dtype=bool)}
        for j, v in enumerate(items):
            out[v], out[dgm.observed_key(v)] = data["y"][:, j], data["observed"][:, j]
        return out

    def spec_priors(priors):
        keep = ("coef_sd", "var_shape", "var_scale", "latent_var_shape", "latent_var_scale")
        return {k: priors[k] for k in keep}

    renamed = {n: ENGINE_NAMES.get(n, n) for n in compiled.parameters}
    names = tuple(v for v in renamed.values() if v in set(layout.bayes))

    def collect(state, data):
        values = compiled.collect(state, data)
        return {renamed[k]: v for k, v in values.items() if renamed[k] in names}

    return GibbsEstimator(
        "bayes_engine",
        lambda key, data, priors: compiled.init(key, data, spec_priors(priors)),
        lambda key, s, data, priors: compiled.step(key, s, data, spec_priors(priors)),
        collect,
        names,
        prepare=lambda data: compiled.prepare(as_spec(data)),
    )


def simulate_prior(
    rng_key: jax.Array, setting: Mapping[str, Any], priors: Mapping[str, float]
) -> tuple[dict[str, jax.Array], dict[str, float]]:
    """Draw every parameter from the Gibbs sampler's priors, then a data set (for SBC).

    The data follow the estimation model exactly (free latent variances, loadings and
    intercepts; markers fixed at 1; structural intercepts 0 but ``w~1``; ``d`` with
    Dirichlet(1, 1, 1) probabilities), with missingness as in :func:`simulate` (ignorable
    given the always-observed x indicators).

    Returns
    -------
    dataset, truth
    """
    layout = Layout(setting.get("structure"))
    n, p = int(setting["N"]), len(layout.items)
    c = float(priors["coef_sd"])
    a0, b0 = float(priors["var_shape"]), float(priors["var_scale"])
    la0, lb0 = float(priors["latent_var_shape"]), float(priors["latent_var_scale"])
    keys = jax.random.split(rng_key, 10)
    nu = c * jax.random.normal(keys[0], (p,))
    lam = jnp.where(jnp.asarray(layout.marker), 1.0, c * jax.random.normal(keys[1], (p,)))
    theta = inv_gamma(keys[2], a0, jnp.full((p,), b0))
    phi_x, psi_m, psi_y = inv_gamma(keys[3], la0, jnp.full((3,), lb0))
    a1 = c * jax.random.normal(keys[4], ())
    b = c * jax.random.normal(keys[5], (5 if layout.nominal else 3,))
    extra = jax.random.split(keys[9], 4)
    alpha_m = c * jax.random.normal(extra[0], ()) if layout.observed_moderator else 0.0
    prob, shift = jnp.full(3, 1 / 3), jnp.zeros(3)
    d = jnp.zeros(n, dtype=jnp.int32)
    if layout.nominal:
        prob = jax.random.dirichlet(extra[1], jnp.ones(3))
        shift = jnp.concatenate([jnp.zeros(1), c * jax.random.normal(extra[2], (2,))])
        d = jax.random.choice(extra[3], 3, (n,), p=prob).astype(jnp.int32)
    noise = jax.random.normal(keys[6], (n, 3))
    ex = shift[d] + jnp.sqrt(phi_x) * noise[:, 0]
    em = alpha_m + a1 * ex + jnp.sqrt(psi_m) * noise[:, 1]
    state = State(
        jnp.stack([ex, em, jnp.zeros(n)]), nu, lam, theta, phi_x, a1, psi_m, b, psi_y,
        jnp.asarray(alpha_m), d, prob, shift,
    )  # fmt: skip
    ey = mean_y(state, ex, em) + jnp.sqrt(psi_y) * noise[:, 2]
    eta = jnp.stack([ex, em, ey], axis=1)
    y = nu + lam * eta[:, layout.factor_of] + jnp.sqrt(theta) * jax.random.normal(keys[7], (n, p))
    x1 = (y[:, 0] - y[:, 0].mean()) / y[:, 0].std()
    missing = _missing(keys[8], x1, setting, n, p + len(layout.extra_columns))
    data = _dataset(layout, y, eta, d, missing)
    collect = make_estimators(setting.get("structure"))["bayes"].collect
    truth = {k: float(v) for k, v in collect(state._replace(eta=eta.T), data).items()}
    return data, truth


ESTIMATORS = make_estimators(None)
BAYES = ESTIMATORS["bayes"]


FAMILY = Family(
    info=INFO,
    simulate=simulate,
    truth=truth,
    make_estimators=lambda structure: make_estimators(structure) if structure else ESTIMATORS,
    simulate_prior=simulate_prior,
    from_frame=from_frame,
    columns=columns,
)
