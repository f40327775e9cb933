"""The latent interaction model as spec configs: priors, truth, and the seeds' three estimators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import latent_interaction, ols
from scipy import stats

from simstudy.cli import compose_raw, main
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.engine.gibbs import imputation_program, pool
from simstudy.models import family_of, model_infos
from simstudy.spec import analyses, builtin_kinds, dgm
from simstudy.spec.info import spec_of


def _plan(*overrides):
    return plan_from_dict(compose_raw(["study=latent_interaction", *overrides]), model_infos())


# --- priors ------------------------------------------------------------------------------


def test_the_spec_takes_the_flat_latent_variance_prior_to_the_sweep():
    plan = _plan()
    assert plan.model.priors["latent_var_shape"] == -1.0
    assert plan.model.priors["latent_var_scale"] == 0.0
    families = plan.model.structure["prior_families"]
    priors = builtin_kinds.priors_of(families, plan.model.priors)
    assert priors.variance_ig(True) == (-1.0, 0.0)
    assert priors.variance_ig(False) == (2.0, 0.5)


def test_an_unset_latent_variance_prior_takes_the_residual_class_numbers():
    overrides = ["~model.priors.latent_var_shape", "~model.priors.latent_var_scale"]
    plan = _plan(*overrides, "model.priors.var_shape=3", "model.priors.var_scale=0.25")
    assert plan.model.priors["latent_var_shape"] == 3.0
    assert plan.model.priors["latent_var_scale"] == 0.25


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["model.priors.latent_var_shape=0"], "model.priors.latent_var_shape = 0"),
        (["model.priors.latent_var_shape=-2"], "model.priors.latent_var_shape = -2"),
        (["model.priors.latent_var_scale=-1"], "model.priors.latent_var_scale = -1"),
        (["study=sbc", "model=latent_interaction"], "model.priors.latent_var_shape = -1.0"),
    ],
)
def test_a_bad_latent_variance_prior_exits_2_naming_it(overrides, said, capsys):
    rc = main(["show", "study=latent_interaction", *overrides])
    err = capsys.readouterr().err
    assert rc == 2
    assert said in err


# --- population values -------------------------------------------------------------------


#: The seeds' population values worked out by hand: a1 = b1 = b2 = 0.3, b3 = 0.2, loadings
#: 1, 0.8, 0.7, reliability 0.7, unit variances of eta_x, the moderator and eta_y.
HAND_TRUTH = {
    "eta_m~eta_x": 0.3,
    "eta_y~eta_x": 0.3,
    "eta_y~eta_m": 0.3,
    "eta_y~eta_x:eta_m": 0.2,
    "eta_x=~x2": 0.8,
    "eta_y=~y3": 0.7,
    "eta_x~~eta_x": 1.0,
    "eta_m~~eta_m": 1 - 0.09,
    # 1 - (b1^2 + b2^2 + 2 b1 b2 a1 + b3^2 (1 + a1^2))
    "eta_y~~eta_y": 1 - (0.09 + 0.09 + 2 * 0.09 * 0.3 + 0.04 * 1.09),
    # theta = lambda^2 (1 - r) / r
    "x1~~x1": 0.3 / 0.7,
    "y2~~y2": 0.64 * 0.3 / 0.7,
    "m3~~m3": 0.49 * 0.3 / 0.7,
    "x1~1": 0.0,
    # b1 -/+ b3 x the moderator's SD, 1
    "slope_lo": 0.1,
    "slope_hi": 0.5,
}


@pytest.mark.parametrize("model", ["latent_interaction", "latent_interaction_w"])
def test_spec_truth_is_the_dgm_worked_out_by_hand(model):
    """Every estimand of the seeds' design at the value computed by hand."""
    m = latent_interaction(model)
    truth = m.family.truth(m.setting)
    moderator = "w" if model.endswith("_w") else "eta_m"
    expected = {k.replace("eta_m", moderator): v for k, v in HAND_TRUTH.items()}
    if moderator == "w":  # no m indicators; w's free intercept is 0
        expected = {k: v for k, v in expected.items() if not k.startswith("m3")}
        expected["w~1"] = 0.0
    for name, value in expected.items():
        assert truth[name] == pytest.approx(value, abs=1e-12), name


def test_spec_simulator_has_the_dgms_moments_at_large_n():
    """Unit variances of eta_x and eta_y (the product term included), reliability 0.7."""
    m = latent_interaction(N=200_000)
    data = m.family.simulate(jax.random.key(1), m.setting)
    x1, m1, y1 = (np.asarray(data[v], float) for v in ("x1", "m1", "y1"))
    assert np.var(x1) == pytest.approx(1 / 0.7, rel=0.02)  # Var(x1) = 1 + theta_1
    assert np.var(y1) == pytest.approx(1 / 0.7, rel=0.02)  # eta_y has unit variance too
    assert np.corrcoef(x1, m1)[0, 1] == pytest.approx(0.3 * 0.7, abs=0.01)


def test_spec_simulator_drops_indicators_at_random_given_x1():
    m = latent_interaction(N=20_000, missing_rate=0.3, mechanism="MAR")
    data = m.family.simulate(jax.random.key(2), m.setting)
    assert np.asarray(data[dgm.observed_key("x1")]).all()  # the x indicators always observed
    seen = np.asarray(data[dgm.observed_key("m1")])
    assert seen.mean() == pytest.approx(0.7, abs=0.02)
    x1 = np.asarray(data["x1"])
    assert x1[~seen].mean() > x1[seen].mean() + 0.3


# --- the analyses of fs_imputation and sum_score_ols ------------------------------------


def _fixed_dataset(missing_rate: float = 0.2):
    """One data set of the spec's simulator, N = 500, indicators missing at random given x1."""
    m = latent_interaction(N=500, missing_rate=missing_rate, mechanism="MAR")
    return m.family.simulate(jax.random.key(3), m.setting)


def _sum_scores(data):
    """Each factor's mean of its observed indicators, and the rows with every score."""
    scores, keep = {}, np.ones(500, dtype=bool)
    for f in ("x", "m", "y"):
        seen = np.stack([np.asarray(data[dgm.observed_key(f"{f}{j}")]) for j in (1, 2, 3)], 1)
        values = np.stack([np.asarray(data[f"{f}{j}"], float) for j in (1, 2, 3)], 1)
        scores[f] = (values * seen).sum(1) / np.maximum(seen.sum(1), 1)
        keep &= seen.any(1)
    return scores, keep


def test_sum_score_ols_is_ols_on_the_indicator_means():
    """Coefficients, SEs and t intervals of numpy's OLS on the means of observed indicators."""
    plan = _plan()
    spec = spec_of(plan.model.structure)
    data = _fixed_dataset()
    new = family_of(plan.model).estimators_for(plan.model.structure)["sum_score_ols"]
    new = new.fit(data, 0.95)
    assert set(new) == set(analyses.estimands(spec))
    scores, keep = _sum_scores(data)
    assert (~keep).sum() > 5  # rows with no observed m or y indicator are left out
    x, m, y = (scores[f][keep] for f in ("x", "m", "y"))
    ones = np.ones(keep.sum())
    a, cov_a = ols(np.column_stack([ones, x]), m)
    b, cov_b = ols(np.column_stack([ones, x, m, x * m]), y)
    assert new["eta_m~eta_x"].estimate == pytest.approx(a[1], rel=1e-4)
    assert new["eta_m~eta_x"].se == pytest.approx(np.sqrt(cov_a[1, 1]), rel=1e-4)
    for k, name in enumerate(("eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"), start=1):
        assert new[name].estimate == pytest.approx(b[k], rel=1e-4), name
        assert new[name].se == pytest.approx(np.sqrt(cov_b[k, k]), rel=1e-4), name
        half = stats.t.ppf(0.975, keep.sum() - 4) * np.sqrt(cov_b[k, k])
        assert new[name].lower == pytest.approx(b[k] - half, rel=1e-4), name
    # the simple slopes at the moderator's model mean 0 -/+ sqrt(a1^2 var(x) + psi_m)
    psi_m = ((m - a[0] - a[1] * x) ** 2).sum() / (keep.sum() - 2)
    sd = np.sqrt(a[1] ** 2 * x.var(ddof=1) + psi_m)
    assert new["slope_lo"].estimate == pytest.approx(b[1] - b[3] * sd, rel=1e-4)
    assert new["slope_hi"].estimate == pytest.approx(b[1] + b[3] * sd, rel=1e-4)


def test_sum_scores_are_attenuated():
    m = latent_interaction(N=50_000)
    data = m.family.simulate(jax.random.key(3), m.setting)
    est = m.estimators["sum_score_ols"].fit(data, 0.95)["eta_y~eta_x"]
    assert est.estimate < 0.3 - 5 * est.se
    assert est.lower < est.estimate < est.upper


def test_ols_on_scores_is_numpys_ols_and_the_delta_method():
    """fs_imputation's analysis of one state, on known scores: OLS and delta-method numbers."""
    plan = _plan()
    spec = spec_of(plan.model.structure)
    rng = np.random.default_rng(0)
    ex, em = rng.normal(size=300), rng.normal(size=300)
    ey = 0.3 * ex + 0.3 * em + 0.2 * ex * em + rng.normal(size=300)
    vals = {"eta_x": jnp.asarray(ex), "eta_m": jnp.asarray(0.3 * ex + em), "eta_y": jnp.asarray(ey)}
    ones = jnp.ones(300)
    est, var, _ = analyses.analyse(spec, vals, {"moments": ones, "eta_m": ones, "eta_y": ones})
    # slope_lo = b1 - b3 s, s = sqrt(a1^2 var(eta_x) + psi_m) at the plug-ins: the delta
    # method over the coefficients (b1, b3 and a1, whose equations' covariances are
    # independent), var(eta_x) and psi_m held fixed
    x, m, y = (np.asarray(vals[k]) for k in ("eta_x", "eta_m", "eta_y"))
    design_m = np.column_stack([np.ones(300), x])
    a, cov_a = ols(design_m, m)
    psi_m = ((m - design_m @ a) ** 2).sum() / 298
    var_a1 = cov_a[1, 1]
    design = np.column_stack([np.ones(300), x, m, x * m])
    b, c = ols(design, y)
    assert float(est["eta_m~eta_x"]) == pytest.approx(a[1], rel=1e-5)
    assert float(var["eta_m~eta_x"]) == pytest.approx(var_a1, rel=1e-5)
    for k, name in enumerate(("eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"), start=1):
        assert float(est[name]) == pytest.approx(b[k], rel=1e-5), name
        assert float(var[name]) == pytest.approx(c[k, k], rel=1e-5), name
    s = np.sqrt(a[1] ** 2 * x.var(ddof=1) + psi_m)
    ds_da1 = a[1] * x.var(ddof=1) / s
    for name, sign in (("slope_lo", -1), ("slope_hi", 1)):
        assert float(est[name]) == pytest.approx(b[1] + sign * b[3] * s, rel=1e-5)
        expected = c[1, 1] + s**2 * c[3, 3] + 2 * sign * s * c[1, 3] + (b[3] * ds_da1) ** 2 * var_a1
        assert float(var[name]) == pytest.approx(expected, rel=1e-5)


# slow tier: a Gibbs chain of the latent interaction spec; by default the analysis of one state
# is checked exactly above, and Rubin's rules in tests/test_engine.py
@pytest.mark.slow
def test_fs_imputation_pools_finite_estimates_with_between_imputation_variance():
    plan = _plan()
    fs = family_of(plan.model).estimators_for(plan.model.structure)["fs_imputation"]
    assert fs.sampler.name == "bayes"
    spec_data = _fixed_dataset()
    settings = SamplerSettings(name="gibbs", chains=2, warmup=100, draws=100)
    prepared = fs.sampler.prepare(spec_data)
    compiled = imputation_program(fs, settings, plan.model.priors, prepared)
    estimates, variances = compiled(jax.random.key(0), prepared)
    pooled = pool(fs, estimates, variances, 0.95)
    assert set(pooled) == set(fs.parameters)
    for name, e in pooled.items():
        within = float(np.asarray(variances[name]).reshape(-1)[: fs.imputations].mean())
        assert np.isfinite(e.estimate) and np.isfinite(e.se), name
        assert e.se**2 > within, name


# --- configs of the kinds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (
            ["model.estimators.fs_imputation.of=sum_score_ols"],
            "model.estimators.fs_imputation.of = 'sum_score_ols'",
        ),
        (["model.estimators.fs_imputation.imputations=1"], "imputations = 1"),
    ],
)
def test_a_bad_kind_option_exits_2_naming_it(overrides, said, capsys):
    rc = main(["show", "study=latent_interaction", *overrides])
    assert rc == 2
    assert said in capsys.readouterr().err


def test_ols_kinds_refuse_a_two_level_model(capsys):
    rc = main(
        [
            "show",
            "study=glmm",
            "+model.estimators={bayes: {kind: gibbs}, sso: {kind: sum_score_ols}}",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "model.estimators.sso.kind" in err and "single-level" in err


def test_an_imputation_estimator_shares_the_chain_of_one_named_after_it():
    """Built after the estimator it analyses, whatever the order of their names."""
    plan = _plan(
        "~model.estimators",
        "+model.estimators={zz_bayes: {kind: gibbs}, fs: {kind: fs_imputation, of: zz_bayes}}",
        "study.estimators=[zz_bayes,fs]",
    )
    built = family_of(plan.model).estimators_for(plan.model.structure)
    assert built["fs"].sampler is built["zz_bayes"]
