"""A nominal predictor in the spec: its declaration, simulator, truth and analyses."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import ols

from simstudy.cli import compose_raw, main
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.engine import gibbs
from simstudy.errors import InputError
from simstudy.models import family_of, model_infos
from simstudy.spec import analyses, builtin_kinds, dgm, scaled, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec.info import declared, spec_of
from simstudy.spec.ir import from_syntax
from simstudy.spec.nominal import check_declaration

MODEL = "model=latent_interaction_d"
SMALL = """\
eta_x =~ x1 + x2 + x3
eta_x ~ s*d
y ~ b*eta_x + d
"""


def _plan(*overrides):
    return plan_from_dict(
        compose_raw(["study=latent_interaction", MODEL, *overrides]), model_infos()
    )


def _setting(plan, n, missing_rate=0.0, mechanism="MCAR"):
    return {
        **plan.model.params,
        "N": n,
        "missing_rate": missing_rate,
        "mechanism": mechanism,
        "structure": plan.model.structure,
    }


# --- declaration -------------------------------------------------------------------------


def test_a_nominal_term_expands_into_dummies_named_as_lavaan_names_them():
    spec = from_syntax(SMALL, nominal={"d": 3})
    terms = {e.target: [c.parameter.name for c in e.coefficients] for e in spec.equations}
    assert terms["eta_x"] == ["eta_x~d2", "eta_x~d3"]  # a latent's mean: 0 in category 1
    assert terms["y"] == ["y~1", "y~eta_x", "y~d2", "y~d3"]
    labels = spec.labels()
    assert labels["s2"] == "eta_x~d2" and labels["s3"] == "eta_x~d3"
    assert labels["p_d2"] == "P(d=2)" and labels["p_d3"] == "P(d=3)"
    assert spec.estimands()[-2:] == ("P(d=2)", "P(d=3)")
    # d is one observed variable with no normal model of its own; its dummies are no variables
    names = [v.name for v in spec.variables]
    assert "d" in names and "d2" not in names
    assert "d" not in spec.exogenous and "d" not in spec.simulated_exogenous
    assert spec.unknown_nodes() == ("eta_x",)


def test_an_incomplete_nominal_predictor_gets_no_normal_model():
    spec = from_syntax(SMALL, {"d": {"given": ["x1"]}}, nominal={"d": 3})
    assert [e.target for e in spec.equations if e.variance.nuisance] == []
    assert spec.unknown_nodes() == ("eta_x",)


@pytest.mark.parametrize(
    ("syntax", "nominal", "said"),
    [
        (SMALL, {"d": 1}, "an integer >= 2"),
        (SMALL, {"d": True}, "an integer >= 2"),
        (SMALL, {"z": 3}, "a variable the syntax uses as a predictor"),
        (SMALL + "d ~ x1\n", {"d": 3}, "without an equation of its own"),
        (SMALL + "f =~ d + x2\n", {"d": 3}, "without an equation of its own"),
        (SMALL.replace("+ d", "+ d:eta_x"), {"d": 2}, "not in a product"),
        (SMALL.replace("s*d", "0.5*d"), {"d": 3}, "free coefficients"),
        (SMALL + "d ~~ x1\n", {"d": 3}, "(co)variance"),
        (SMALL + "w ~ d + (1 + d | g)\n", {"d": 3}, "not in '( | )'"),
        (SMALL.replace("x3", "x3 + d2"), {"d": 3}, "d2 is in the syntax"),
    ],
)
def test_a_bad_declaration_names_model_nominal_its_value_and_what_is_allowed(syntax, nominal, said):
    with pytest.raises(InputError) as err:
        from_syntax(syntax, nominal=nominal)
    name = next(iter(nominal))
    assert err.value.field == f"model.nominal.{name}"
    assert repr(nominal[name]) in str(err.value) or str(nominal[name]) in str(err.value)
    assert said in str(err.value)


def test_a_nominal_declaration_that_is_no_mapping_names_model_nominal():
    with pytest.raises(InputError) as err:
        check_declaration(["d"])
    assert err.value.field == "model.nominal"
    assert "a mapping from variable names to categories" in str(err.value)


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("model.nominal.d=1", "model.nominal.d = 1"),
        ("+model.nominal.z=3", "model.nominal.z = 3"),
        ("model.params.d_prob2=0.7", "model.params.P(d=3) = 'a sum of 1.0333'"),
        ("model.params.d_prob3=0", "model.params.P(d=3) = 0"),
    ],
)
def test_a_bad_nominal_config_exits_2_naming_it(override, said, capsys):
    rc = main(["show", "study=latent_interaction", MODEL, override])
    assert rc == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err


def test_an_hmc_estimator_of_a_model_with_a_nominal_predictor_is_refused():
    spec = from_syntax(SMALL, nominal={"d": 3})
    with pytest.raises(InputError) as err:
        kinds.normalise({"bayes": {"kind": "gibbs"}, "bayes_hmc": {"kind": "hmc"}}, spec)
    assert err.value.field == "model.estimators.bayes_hmc.kind"
    assert "gibbs" in str(err.value)


def test_models_without_a_nominal_predictor_keep_their_structure():
    """No ``nominal`` key enters a structure that does not declare one (hashes unchanged)."""
    plan = plan_from_dict(compose_raw(["study=latent_interaction"]), model_infos())
    assert "nominal" not in plan.model.structure
    assert _plan().model.structure["nominal"] == {"d": 3}


# --- population, simulator, truth --------------------------------------------------------


def test_the_simulator_draws_categories_at_their_probabilities_and_shifts_eta_x():
    plan = _plan("model.params.d_prob2=0.2", "model.params.d_prob3=0.5")
    family = family_of(plan.model)
    n = 20_000
    data = family.simulate(jax.random.key(0), _setting(plan, n))
    d = np.asarray(data["d"])
    assert set(np.unique(d)) == {1.0, 2.0, 3.0}
    for k, p in ((1, 0.3), (2, 0.2), (3, 0.5)):
        assert abs((d == k).mean() - p) < 4 * np.sqrt(p * (1 - p) / n), k
    # eta_x's mean per category is d_on_x (0, 0.5, -0.5): x1 (loading 1, intercept 0) shows it
    x1 = np.asarray(data["x1"])
    for k, shift in ((1, 0.0), (2, 0.5), (3, -0.5)):
        assert x1[d == k].mean() == pytest.approx(shift, abs=0.06), k


def test_a_missing_category_is_declared_like_any_variable_missingness():
    plan = _plan()
    data = family_of(plan.model).simulate(jax.random.key(1), _setting(plan, 4000, 0.3, "MAR"))
    seen = np.asarray(data[dgm.observed_key("d")])
    assert seen.mean() == pytest.approx(0.7, abs=0.03)
    assert (np.asarray(data["d"])[~seen] == 0).all()
    # MAR given x1: rows with a large x1 are the ones missing
    x1 = np.asarray(data["x1"])
    assert x1[~seen].mean() > x1[seen].mean() + 0.3


def test_truth_is_the_nominal_design_worked_out_by_hand():
    """P(d=2) = P(d=3) = 0.3333, eta_x's means 0, 0.5, -0.5 by category, d's effects on eta_y
    0.3, -0.3: eta_x keeps unit variance and mean 0, so the slopes are b1 -/+ b3."""
    plan = _plan()
    truth = family_of(plan.model).truth(_setting(plan, 250))
    shift_var = 0.3333 * 0.25 + 0.3333 * 0.25 - (0.3333 * 0.5 - 0.3333 * 0.5) ** 2
    expected = {
        "P(d=2)": 0.3333,
        "P(d=3)": 0.3333,
        "eta_x~d2": 0.5,
        "eta_x~d3": -0.5,
        "eta_y~d2": 0.3,
        "eta_y~d3": -0.3,
        "eta_x~~eta_x": 1 - shift_var,
        "eta_m~~eta_m": 1 - 0.09,
        "eta_y~~eta_y": 1 - (0.09 + 0.09 + 2 * 0.09 * 0.3 + 0.04 * 1.09),
        "eta_y~eta_x:eta_m": 0.2,
        "slope_lo": 0.3 - 0.2,
        "slope_hi": 0.3 + 0.2,
    }
    for name, value in expected.items():
        assert truth[name] == pytest.approx(value, abs=1e-12), name


# --- analyses ----------------------------------------------------------------------------


def _dataset(missing_rate: float):
    """One data set of the variant's simulator, N = 600, d and indicators missing given x1."""
    plan = _plan()
    setting = _setting(plan, 600, missing_rate, "MAR")
    return family_of(plan.model).simulate(jax.random.key(3), setting)


def test_sum_score_ols_leaves_out_rows_with_a_missing_category():
    """eta_y's coefficients are numpy's OLS on the indicator means and d's dummies, on the rows
    with d observed (and an observed indicator of each factor)."""
    plan = _plan()
    data = _dataset(0.25)
    seen_d = np.asarray(data[dgm.observed_key("d")])
    assert not seen_d.all()
    new = family_of(plan.model).estimators_for(plan.model.structure)["sum_score_ols"]
    new = new.fit(data, 0.95)
    keep, scores = seen_d.copy(), {}
    for f in ("x", "m", "y"):
        seen = np.stack([np.asarray(data[dgm.observed_key(f"{f}{j}")]) for j in (1, 2, 3)], 1)
        values = np.stack([np.asarray(data[f"{f}{j}"], float) for j in (1, 2, 3)], 1)
        scores[f] = (values * seen).sum(1) / np.maximum(seen.sum(1), 1)
        keep &= seen.any(1)
    d = np.asarray(data["d"])[keep]
    x, m, y = (scores[f][keep] for f in ("x", "m", "y"))
    design = np.column_stack([np.ones(keep.sum()), x, m, x * m, d == 2, d == 3])
    b, cov = ols(design, y)
    for k, name in ((1, "eta_y~eta_x"), (3, "eta_y~eta_x:eta_m"), (4, "eta_y~d2"), (5, "eta_y~d3")):
        assert new[name].estimate == pytest.approx(b[k], rel=1e-4), name
        assert new[name].se == pytest.approx(np.sqrt(cov[k, k]), rel=1e-4), name


def test_imputation_analyses_read_the_states_categories_where_d_is_missing():
    plan = _plan()
    spec = spec_of(plan.model.structure)
    lay = sweep.layout(spec)
    data = _dataset(0.25)
    priors = builtin_kinds.priors_of(plan.model.structure["prior_families"], plan.model.priors)
    state = sweep.init(jax.random.key(0), sweep.prepare(data, lay), lay, priors)
    seen = np.asarray(data[dgm.observed_key("d")])
    imputed = np.where(seen, np.asarray(data["d"]), 3.0)
    state["nodes"]["d"] = jnp.asarray(imputed)
    vals, weights = analyses.state_values(spec, lay, state, data)
    assert np.array_equal(np.asarray(vals["d3"]), (imputed == 3) * 1.0)
    assert np.array_equal(np.asarray(vals["d2"]), (imputed == 2) * 1.0)
    est, _, _ = analyses.analyse(spec, vals, weights)
    # eta_x's OLS on the dummies: the mean score per imputed category, minus category 1's
    ex = np.asarray(vals["eta_x"])
    shift = ex[imputed == 3].mean() - ex[imputed == 1].mean()
    assert float(est["eta_x~d3"]) == pytest.approx(shift, rel=1e-4)


# --- the variant's fit (slow tier; tests/engine/steps/test_nominal.py fits a small model) --


@pytest.mark.slow
def test_the_variant_recovers_p_d2_and_the_effects_of_d():
    plan = _plan()
    family = family_of(plan.model)
    setting = _setting(plan, 1000, 0.3, "MAR")
    data = family.simulate(jax.random.key(1), setting)
    truth = family.truth(setting)
    bayes = family.estimators_for(plan.model.structure)["bayes"]
    settings = SamplerSettings(name="gibbs", chains=2, warmup=300, draws=500)
    draws = gibbs.prepare(bayes, data, settings, plan.model.priors)(jax.random.key(2), data)
    for name in ("P(d=2)", "P(d=3)", "eta_y~d2", "eta_x~d2", "slope_lo", "slope_hi"):
        v = np.asarray(draws.draws[name])
        assert abs(v.mean() - truth[name]) < 3 * v.std(), name


# --- simstudy fit on a user's table --------------------------------------------------------


def _table(tmp_path, codes=(1, 2, 3)):
    rng = np.random.default_rng(7)
    n = 400
    d = rng.choice(np.asarray(codes, float), p=[0.5, 0.3, 0.2], size=n)
    x = rng.normal(size=n)
    y = 0.5 + 0.4 * x + np.select([d == 2, d == 3], [1.0, -0.5], 0.0) + rng.normal(size=n)
    frame = pd.DataFrame({"x": x.round(4), "y": y.round(4), "d": d})
    frame.loc[::5, "d"] = np.nan  # a fifth of the categories missing
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


FIT = ["fit", "model=spec", "model.syntax=y ~ x + d", "+model.nominal={d: 3}"]


def test_fit_reads_a_nominal_column_and_draws_its_missing_categories(tmp_path, capsys):
    out = tmp_path / "fit.parquet"
    short = ["sampler.warmup=200", "sampler.draws=400", "sampler.vectorize=1"]
    rc = main([*FIT, f"data={_table(tmp_path)}", f"out={out}", *short])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    table = pd.read_parquet(out).set_index("parameter")
    assert {"y~d2", "y~d3", "P(d=2)", "P(d=3)"} <= set(table.index)
    for name, value in (("y~d2", 1.0), ("y~d3", -0.5), ("P(d=2)", 0.3)):
        assert abs(table.loc[name, "mean"] - value) < 4 * table.loc[name, "sd"], name


def test_fit_refuses_a_code_outside_one_to_k_naming_the_column(tmp_path, capsys):
    rc = main([*FIT, f"data={_table(tmp_path, codes=(1, 2, 4))}"])
    assert rc == 2
    assert "data column d = 4.0" in capsys.readouterr().err


def test_data_scaled_priors_read_a_dummy_s_share_and_spread():
    spec = from_syntax("y ~ x + d\n", nominal={"d": 3})
    codes = jnp.asarray([1.0, 2.0, 2.0, 3.0, 0.0])
    data = {dgm.ROW_REAL: jnp.ones(5, bool), "d": codes}
    data[dgm.observed_key("d")] = codes > 0
    scales = scaled.variable_scales(spec, data)
    assert scales["d2"] == pytest.approx((0.5, np.std([0, 1, 1, 0], ddof=1)))
    assert scales["d3"][0] == pytest.approx(0.25)


def test_a_model_with_a_nominal_predictor_and_no_estimators_gets_the_gibbs_sweep_only():
    raw = {"name": "m", "syntax": "y ~ x + d\n", "nominal": {"d": 3}}
    assert kinds.mapping_of(raw) == {"bayes": {"kind": "gibbs"}}
    assert declared(raw).estimators == ("bayes",)
    assert kinds.mapping_of({"syntax": "y ~ x\n"}) == kinds.DEFAULT
