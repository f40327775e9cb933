"""The latent interaction model as spec configs: priors, truth, and the seeds' three estimators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import LATENT_PARAMS

from simstudy.cli import compose_raw, main
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.engine.gibbs import imputation_program, pool
from simstudy.models import family_of, model_infos
from simstudy.models import latent_interaction as handwritten
from simstudy.models.latent_interaction.layout import Layout, regressions
from simstudy.spec import analyses, dgm
from simstudy.spec import estimators as kinds
from simstudy.spec.info import spec_of

#: Spec estimand names of today's simple slopes.
SLOPES = {"slope_lo": "@{m}=-1SD", "slope_hi": "@{m}=+1SD"}


def _plan(*overrides):
    return plan_from_dict(compose_raw(["study=latent_interaction", *overrides]), model_infos())


def _handwritten_name(name: str, moderator: str) -> str:
    return f"eta_y~eta_x{SLOPES[name].format(m=moderator)}" if name in SLOPES else name


# --- priors ------------------------------------------------------------------------------


def test_the_spec_takes_the_flat_latent_variance_prior_to_the_sweep():
    plan = _plan()
    assert plan.model.priors["latent_var_shape"] == -1.0
    assert plan.model.priors["latent_var_scale"] == 0.0
    families = plan.model.structure["prior_families"]
    priors = kinds._priors_of(families, plan.model.priors)
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


@pytest.mark.parametrize(
    ("model", "structure"),
    [("latent_interaction", {}), ("latent_interaction_w", {"moderator": "observed"})],
)
def test_spec_truth_equals_the_handwritten_truth(model, structure):
    """Every estimand both name has the same true value, computed two ways."""
    plan = _plan(f"model={model}")
    family = family_of(plan.model)
    setting = {**plan.model.params, "N": 250, "missing_rate": 0.0, "mechanism": "MCAR"}
    spec_truth = family.truth({**setting, "structure": plan.model.structure})
    old = handwritten.truth({**LATENT_PARAMS, "structure": structure})
    moderator = "w" if structure else "eta_m"
    shared = {k: _handwritten_name(k, moderator) for k in spec_truth}
    shared = {k: v for k, v in shared.items() if v in old}
    assert len(shared) >= 20
    for name, old_name in shared.items():
        assert spec_truth[name] == pytest.approx(old[old_name], abs=1e-12), name


# --- the analyses of fs_imputation and sum_score_ols ------------------------------------


def _fixed_dataset(missing_rate: float = 0.2):
    """One data set of today's simulator, and the same data as the spec reads it."""
    setting = {**LATENT_PARAMS, "N": 500, "missing_rate": missing_rate, "mechanism": "MAR"}
    data = handwritten.simulate(jax.random.key(3), setting)
    items = Layout(None).items
    spec_data = {dgm.ROW_REAL: jnp.ones(500, dtype=bool)}
    for j, v in enumerate(items):
        spec_data[v] = data["y"][:, j]
        spec_data[dgm.observed_key(v)] = data["observed"][:, j]
    return data, spec_data


def test_sum_score_ols_equals_the_handwritten_one():
    """Same coefficients and SEs; simple slopes at the model's moderator mean differ a little."""
    plan = _plan()
    spec = spec_of(plan.model.structure)
    data, spec_data = _fixed_dataset()
    old = handwritten.ESTIMATORS["sum_score_ols"].fit(data, 0.95)
    new = family_of(plan.model).estimators_for(plan.model.structure)["sum_score_ols"]
    new = new.fit(spec_data, 0.95)
    assert set(new) == set(analyses.estimands(spec))
    for name in ("eta_m~eta_x", "eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"):
        assert new[name].estimate == pytest.approx(old[name].estimate, rel=1e-5), name
        assert new[name].se == pytest.approx(old[name].se, rel=1e-5), name
    for name in ("eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"):
        # today's t intervals use eta_y's residual dof for eta_m~eta_x too, the kind its own
        assert new[name].lower == pytest.approx(old[name].lower, rel=1e-5), name
    for name in SLOPES:
        # today's slopes sit at the moderator's sample mean -/+ its sample SD, the plug-in at
        # its model mean 0 -/+ sqrt(a1^2 var(eta_x) + psi_m): 0.00003 and 0.0003 apart here
        gap = abs(new[name].estimate - old[_handwritten_name(name, "eta_m")].estimate)
        assert 0 < gap < 0.02, (name, gap)


def test_ols_on_scores_equals_the_handwritten_regressions():
    """fs_imputation's analysis of one state, on known scores: today's OLS numbers."""
    plan = _plan()
    spec = spec_of(plan.model.structure)
    rng = np.random.default_rng(0)
    ex, em = rng.normal(size=300), rng.normal(size=300)
    ey = 0.3 * ex + 0.3 * em + 0.2 * ex * em + rng.normal(size=300)
    vals = {"eta_x": jnp.asarray(ex), "eta_m": jnp.asarray(0.3 * ex + em), "eta_y": jnp.asarray(ey)}
    ones = jnp.ones(300)
    est, var, _ = analyses.analyse(spec, vals, {"moments": ones, "eta_m": ones, "eta_y": ones})
    old_est, old_var = regressions(Layout(None), vals["eta_x"], vals["eta_m"], vals["eta_y"])
    for name in ("eta_m~eta_x", "eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"):
        assert float(est[name]) == pytest.approx(float(old_est[name]), rel=1e-5)
        assert float(var[name]) == pytest.approx(float(old_var[name]), rel=1e-5)
    # slope_lo = b1 - b3 s, s = sqrt(a1^2 var(eta_x) + psi_m) at the plug-ins: the delta
    # method over the coefficients (b1, b3 and a1, whose equations' covariances are
    # independent), var(eta_x) and psi_m held fixed
    x, m, y = (np.asarray(vals[k]) for k in ("eta_x", "eta_m", "eta_y"))
    design_m = np.column_stack([np.ones(300), x])
    a = np.linalg.lstsq(design_m, m, rcond=None)[0]
    psi_m = ((m - design_m @ a) ** 2).sum() / 298
    var_a1 = psi_m * np.linalg.inv(design_m.T @ design_m)[1, 1]
    design = np.column_stack([np.ones(300), x, m, x * m])
    b = np.linalg.lstsq(design, y, rcond=None)[0]
    c = ((y - design @ b) ** 2).sum() / 296 * np.linalg.inv(design.T @ design)
    s = np.sqrt(a[1] ** 2 * x.var(ddof=1) + psi_m)
    ds_da1 = a[1] * x.var(ddof=1) / s
    for name, sign in (("slope_lo", -1), ("slope_hi", 1)):
        assert float(est[name]) == pytest.approx(b[1] + sign * b[3] * s, rel=1e-5)
        expected = c[1, 1] + s**2 * c[3, 3] + 2 * sign * s * c[1, 3] + (b[3] * ds_da1) ** 2 * var_a1
        assert float(var[name]) == pytest.approx(expected, rel=1e-5)


# slow tier: a Gibbs chain of the latent interaction spec; by default the analysis of one state
# is checked exactly above, and Rubin's rules in tests/models/test_models_latent_interaction.py
@pytest.mark.slow
def test_fs_imputation_pools_finite_estimates_with_between_imputation_variance():
    plan = _plan()
    fs = family_of(plan.model).estimators_for(plan.model.structure)["fs_imputation"]
    assert fs.sampler.name == "bayes"
    _, spec_data = _fixed_dataset()
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
