"""Per-equation priors: on the data's scale for `simstudy fit`, the same in both back ends."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from numpyro.infer.util import log_density

from simstudy.cli import compose_raw, main
from simstudy.config import fit_plan_from_dict, plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import (
    chain_name,
    estimator_key,
    fit_estimator,
    key_from_seed,
    setting_of,
)
from simstudy.errors import InputError
from simstudy.fitcheck import named_priors, prior_conflicts, sign_disagreements
from simstudy.models import family_of, model_infos
from simstudy.spec import dgm
from simstudy.spec import info as spec_info
from simstudy.spec.ir import from_syntax
from simstudy.spec.scaled import COEF_WIDTH, data_scaled, parameter_priors
from simstudy.spec.sweep import Priors

# prior means and SDs per coefficient of y (intercept, slope), and the residual SD's scale
OVERRIDES = {
    "coef_means": (("y", (5.0, -3.0)),),
    "coef_sds": (("y", (2.0, 0.5)),),
    "sigma_scales": (("y", 3.0),),
}


def _plan(syntax, estimator, *more):
    raw = compose_raw(["model=spec", f"model.syntax={syntax}", *more], [estimator])
    return fit_plan_from_dict(raw, model_infos(), estimator)


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, n)  # far from 0: the intercept is far from y's mean
    return pd.DataFrame({"x": x, "y": 500.0 + 40.0 * x + rng.normal(0.0, 30.0, n)})


def _unobserved(family, structure):
    """A data set of ``_frame``'s x with no y observed: a fit samples its prior."""
    data = dict(family.from_frame(_frame(), structure))
    data[dgm.observed_key("y")] = jnp.zeros_like(data[dgm.observed_key("y")])
    return data


def test_accessors_fall_back_to_the_scalar_settings():
    p = Priors.of({"coef_sd": 7.0, "sigma_scale": 2.0, "cov_scale": 4.0, **OVERRIDES})
    assert p.coef_prior("y", (1,)) == ((-3.0,), (0.5,))
    assert p.coef_prior("z", (0, 2)) == ((0.0, 0.0), (7.0, 7.0))
    assert (p.sigma_scale_of("y"), p.sigma_scale_of("z")) == (3.0, 2.0)
    assert p.cov_scale_of("g") == 4.0
    # from JSON (mappings and lists) the same hashable settings
    as_json = json.loads(json.dumps({k: dict(v) for k, v in OVERRIDES.items()}))
    assert Priors.of(as_json) == Priors.of(OVERRIDES)


def test_loadings_have_a_prior_class_of_their_own():
    eq = from_syntax("f =~ y1 + y2\nz ~ f").equations
    y2 = next(e for e in eq if e.target == "y2")
    z = next(e for e in eq if e.target == "z")
    p = Priors.of({"coef_sd": 7.0, "loading_mean": 1.0, "loading_sd": 0.5})
    assert [c.parameter.is_loading for c in y2.coefficients] == [False, True]
    assert p.equation_prior(y2, (0, 1)) == ((0.0, 1.0), (7.0, 0.5))  # intercept, loading
    assert p.equation_prior(z, (1,)) == ((0.0,), (7.0,))  # a path is no loading
    # unset: N(0, coef_sd^2) as every coefficient; an equation's own numbers win
    assert Priors.of({"coef_sd": 7.0}).equation_prior(y2, (1,)) == ((0.0,), (7.0,))
    own = Priors.of({"loading_mean": 1.0, "coef_means": {"y2": [3.0, -2.0]}})
    assert own.equation_prior(y2, (1,))[0] == (-2.0,)


def test_loading_prior_reaches_the_numpyro_model_and_the_prior_draws():
    more = ("+model.priors.loading_mean=1.5", "+model.priors.loading_sd=0.25")
    plan = _plan("f =~ y1 + y2 + y3", "bayes_hmc", *more)
    family = family_of(plan.model)
    estimator = family.estimators_for(plan.model.structure)["bayes_hmc"]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["y1", "y2", "y3"])
    data = estimator.data(family.from_frame(frame), plan.model.priors)
    assert np.asarray(data["prior:coef_mean:y2"]).tolist() == [0.0, 1.5]
    assert np.asarray(data["prior:coef_sd:y2"]).tolist() == [10.0, 0.25]
    # SBC's prior draws: the latent interaction model's loadings from the same class
    proper = ("model.priors.latent_var_shape=2", "model.priors.latent_var_scale=0.5")
    raw = compose_raw(["study=sbc", "model=latent_interaction", *proper, *more])
    study = plan_from_dict(raw, model_infos())
    setting = setting_of(study, expand_grid(study.factors)[0])
    li = family_of(study.model)
    keys = jax.random.split(jax.random.key(0), 40)
    draws = [li.simulate_prior(k, setting, study.model.priors)[1]["eta_x=~x2"] for k in keys]
    assert abs(np.mean(draws) - 1.5) < 4 * 0.25 / np.sqrt(40)  # N(0, 10^2) would miss
    assert 0.15 < np.std(draws) < 0.35


def test_a_loading_sd_must_be_positive():
    with pytest.raises(InputError, match=r"model.priors.loading_sd.*-1"):
        _plan("f =~ y1 + y2 + y3", "bayes", "+model.priors.loading_sd=-1")


def test_sweep_samples_the_per_equation_priors_when_nothing_is_observed():
    plan = _plan("y ~ 1 + x", "bayes", "sampler.warmup=200", "sampler.draws=3000")
    family = family_of(plan.model)
    data = _unobserved(family, plan.model.structure)
    estimator = family.estimators_for(plan.model.structure)["bayes"]
    key = estimator_key(key_from_seed(0), chain_name(estimator))
    priors = {**plan.model.priors, **OVERRIDES}
    s, _, _ = fit_estimator(estimator, data, key, plan.sampler, priors, 0.95)
    assert abs(s["y~1"].estimate - 5.0) < 0.3 and abs(s["y~1"].se - 2.0) < 0.3
    assert abs(s["y~x"].estimate + 3.0) < 0.08 and abs(s["y~x"].se - 0.5) < 0.08
    # sigma ~ HalfNormal(3): E[sigma^2] = 9
    assert 7.0 < s["y~~y"].estimate < 11.0


def test_numpyro_model_reads_the_same_per_equation_priors():
    plan = _plan("y ~ 1 + x", "bayes_hmc")
    family = family_of(plan.model)
    estimator = family.estimators_for(plan.model.structure)["bayes_hmc"]
    dataset = _unobserved(family, plan.model.structure)
    data = estimator.data(dataset, {**plan.model.priors, **OVERRIDES})

    def at(coef, sd):
        params = {"coef:y": jnp.asarray(coef), "sd:y": jnp.asarray(sd)}
        return log_density(estimator.model, (), data, params)[0]

    # nothing observed: differences of the log density are differences of the priors
    a, b = np.array([5.0, -3.0]), np.array([7.0, -2.0])
    expected = jax.scipy.stats.norm.logpdf(b, a, np.array([2.0, 0.5])).sum() - (
        jax.scipy.stats.norm.logpdf(a, a, np.array([2.0, 0.5])).sum()
    )
    assert float(at(b, 1.0) - at(a, 1.0)) == pytest.approx(float(expected), rel=1e-5)
    half = jax.scipy.stats.norm.logpdf(4.0, 0, 3.0) - jax.scipy.stats.norm.logpdf(1.0, 0, 3.0)
    assert float(at(a, 4.0) - at(a, 1.0)) == pytest.approx(float(half), rel=1e-5)


def test_data_scaled_priors_follow_each_variables_location_and_spread():
    spec = spec_info.spec_of(spec_info.normalise({"syntax": "y ~ 1 + x + (1 + x | g)"}))
    frame = _frame()
    frame["g"] = np.arange(len(frame)) % 6
    data = family_of(_plan("y ~ 1 + x + (1 + x | g)", "bayes").model).from_frame(
        frame, _plan("y ~ 1 + x + (1 + x | g)", "bayes").model.structure
    )
    out = {k: dict(v) for k, v in data_scaled(spec, data).items()}
    my, sy = frame.y.mean(), frame.y.std()
    mx, sx = frame.x.mean(), frame.x.std()
    assert out["coef_means"]["y"] == pytest.approx((my, 0.0))
    widened = COEF_WIDTH * sy * np.sqrt(1 + (mx / sx) ** 2)
    assert out["coef_sds"]["y"] == pytest.approx((widened, COEF_WIDTH * sy / sx))
    assert out["sigma_scales"]["y"] == pytest.approx(sy)
    assert list(out["cov_scales"].values()) == pytest.approx([sy])
    # a setting the user names keeps its part
    assert set(data_scaled(spec, data, {"coef_sd", "cov_scale"})) == {"sigma_scales"}


def test_a_latent_factor_takes_its_marker_indicators_scale():
    spec = spec_info.spec_of(spec_info.normalise({"syntax": "f =~ y1 + y2 + y3"}))
    rng = np.random.default_rng(1)
    f = rng.normal(0, 20.0, 300)
    frame = pd.DataFrame({f"y{k}": 3.0 * f + rng.normal(0, 5.0, 300) for k in (1, 2, 3)})
    plan = _plan("f =~ y1 + y2 + y3", "bayes")
    data = family_of(plan.model).from_frame(frame, plan.model.structure)
    out = {k: dict(v) for k, v in data_scaled(spec, data).items()}
    # the loading of y2 on f is ~1: its prior SD is 2.5 sd(y2) / sd(y1), not 2.5 sd(y2)
    assert out["coef_sds"]["y2"][1] == pytest.approx(COEF_WIDTH * frame.y2.std() / frame.y1.std())
    assert out["cov_scales"][spec.blocks[0].name] == pytest.approx(frame.y1.std())
    # a loading class the user names replaces the data's scale on the loadings only
    named = {k: dict(v) for k, v in data_scaled(spec, data, {"loading_mean"}, (1.0, 0.5)).items()}
    assert named["coef_means"]["y2"] == pytest.approx((out["coef_means"]["y2"][0], 1.0))
    assert named["coef_sds"]["y2"] == pytest.approx((out["coef_sds"]["y2"][0], 0.5))
    assert parameter_priors(spec, {**spec_info.PRIOR_DEFAULTS, **named}, {})["f=~y2"] == (
        "normal",
        1.0,
        0.5,
        "loading_sd",
    )


def test_prior_conflict_names_the_parameter_and_the_setting():
    priors = {"y~1": ("normal", 0.0, 10.0, "coef_sd"), "y~~y": ("half_normal_sd", 0, 5.0, "x")}
    table = pd.DataFrame(
        {"parameter": ["y~1", "y~x", "y~~y"], "mean": [251.0, 3.0, 400.0], "sd": [7.0, 1, 1]}
    )
    (first, second) = prior_conflicts(table, priors, {"coef_sd": 10.0})
    assert first.startswith("prior-data conflict for y~1: its posterior mean 251 is 25.1 prior")
    assert "model.priors.coef_sd (now 10)" in first
    assert second.startswith("prior-data conflict for y~~y") and "model.priors.x" in second
    # a posterior SD near the prior's: the prior decides
    near = pd.DataFrame({"parameter": ["y~1"], "mean": [1.0], "sd": [6.0]})
    assert "60% of its prior" in prior_conflicts(near, priors, {})[0]
    assert "the prior, not the data, decides it" in prior_conflicts(near, priors, {})[0]
    assert "the prior pulls it away from what the data say" in first
    fine = pd.DataFrame({"parameter": ["y~1", "y~~y"], "mean": [3.0, 30.0], "sd": [1.0, 1.0]})
    assert prior_conflicts(fine, priors, {}) == []


def test_sign_disagreement_needs_clearly_signed_chains_of_both_signs():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 200))
    draws = {
        "flipped": np.stack([0.8 + 0.1 * z[0], -0.8 + 0.1 * z[1], 0.8 + 0.1 * z[2]]),
        "near_zero": np.stack([0.1 + z[0], -0.1 + z[1], z[2]]),
        "same_sign": 2.0 + 0.1 * z,
    }
    (line,) = sign_disagreements(draws, list(draws))
    assert line.startswith("chains disagree in sign for flipped (chain means +0.8")
    assert "near_zero" not in line and "same_sign" not in line


def test_named_priors_are_those_on_the_command_line():
    given = ["model=spec", "model.priors.coef_sd=5", "+model.priors.cov_scale=2", "x=1"]
    assert named_priors(given, {"coef_sd": 5, "sigma_scale": 5}) == {"coef_sd", "cov_scale"}
    assert named_priors(["model.priors={coef_sd: 1}"], {"coef_sd": 1}) == {"coef_sd"}


def test_fit_defaults_are_on_the_data_scale_and_a_unit_prior_is_warned_about(tmp_path, capsys):
    frame = _frame(n=200)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    common = ["fit", "model=spec", "model.syntax=y ~ 1 + x", f"data={path}"]
    common += ["sampler.warmup=200", "sampler.draws=500", "sampler.vectorize=1"]
    X = np.column_stack([np.ones(len(frame)), frame.x])
    ols, res = np.linalg.lstsq(X, frame.y, rcond=None)[:2]
    se = np.sqrt(res[0] / (len(frame) - 2) * np.diag(np.linalg.inv(X.T @ X)))

    out = tmp_path / "default.parquet"
    assert main([*common, f"out={out}"]) == 0
    captured = capsys.readouterr()
    table = pd.read_parquet(out).set_index("parameter")
    assert abs(table.loc["y~1", "mean"] - ols[0]) < 0.5 * se[0]
    assert abs(table.loc["y~x", "mean"] - ols[1]) < 0.5 * se[1]
    lines = captured.out.splitlines()
    assert lines[2] == "priors (model.priors.*; the data's scale where unset): lkj_eta=1 " + (
        "(residual half_normal, covariance half_normal)"
    )
    sd_y, sd_x = frame.y.std(), frame.x.std()
    assert lines[4] == f"  y~x: normal(0, {COEF_WIDTH * sd_y / sd_x:.4g}) (the data's scale)"
    assert lines[5] == f"  y~~y: SD ~ half-normal({sd_y:.4g}) (the data's scale)"
    record = json.loads(pq.read_schema(out).metadata[b"simstudy.fit"])
    assert record["priors"]["coef_means"]["y"][0] == pytest.approx(frame.y.mean())
    assert record["priors_used"]["y~x"] == f"normal(0, {COEF_WIDTH * sd_y / sd_x:.4g}) " + (
        "(the data's scale)"
    )
    assert record["priors_from_data"] == ["coef_sd", "cov_scale", "sigma_scale"]
    assert "prior-data conflict" not in captured.err
    assert "replacing the earlier file" not in captured.out  # a new file, said so

    # the unit-scale prior the user names wins, and its conflict with the data is said
    out = tmp_path / "unit.parquet"
    assert main([*common, f"out={out}", "model.priors.coef_sd=10"]) == 0
    captured = capsys.readouterr()
    assert "  y~1: normal(0, 10) (model.priors)" in captured.out.splitlines()
    assert "prior-data conflict for y~1" in captured.err
    assert "widen model.priors.coef_sd (now 10)" in captured.err
    record = json.loads(pq.read_schema(out).metadata[b"simstudy.fit"])
    assert record["priors"]["coef_sd"] == 10 and "coef_means" not in record["priors"]


def test_parameter_priors_leave_out_inverse_gamma_variances():
    spec = spec_info.spec_of(spec_info.normalise({"syntax": "y ~ 1 + x"}))
    families = {"residual": "inverse_gamma", "covariance": "half_normal"}
    out = parameter_priors(spec, {"coef_sd": 3.0}, families)
    assert out == {"y~1": ("normal", 0.0, 3.0, "coef_sd"), "y~x": ("normal", 0.0, 3.0, "coef_sd")}
