"""Ordered variables in the spec: declaration, parameters, refusals, data and fit."""

import numpy as np
import pandas as pd
import pytest

from simstudy.cli import main
from simstudy.errors import InputError
from simstudy.spec import estimators as kinds
from simstudy.spec.ir import from_syntax
from simstudy.spec.ordered import check_declaration
from simstudy.spec.population import population

MODEL = "model=ordinal_regression"


def test_an_ordered_outcome_has_thresholds_and_a_fixed_intercept_and_variance():
    spec = from_syntax("u ~ x + z\n", ordered={"u": 4})
    (eq,) = spec.equations
    assert eq.coefficients[0].parameter.fixed == 0.0  # u~1: the thresholds' location
    assert eq.variance.fixed == 1.0  # probit: the latent response's unit variance
    assert spec.estimands() == ("u~x", "u~z", "u|t1", "u|t2", "u|t3")


def test_an_ordered_indicator_is_measured_with_thresholds():
    spec = from_syntax("f =~ u1 + u2 + y3\n", ordered={"u1": 2, "u2": 3})
    assert {"f=~u2", "f=~y3", "u1|t1", "u2|t1", "u2|t2", "y3~1", "y3~~y3"} <= set(spec.estimands())
    assert "u1~~u1" not in spec.estimands() and "u1~1" not in spec.estimands()


@pytest.mark.parametrize(
    ("syntax", "ordered", "field", "said"),
    [
        ("y ~ x\n", {"x": 2}, "model.ordered.x", "an observed outcome or indicator"),
        ("u ~ x\nu ~~ u\n", {"u": 2}, "model.syntax", "no residual variance for ordered u"),
        ("u ~ x\n", {"u": 1}, "model.ordered.u", ">= 2"),
    ],
)
def test_a_bad_ordered_declaration_names_the_field_and_what_is_allowed(
    syntax, ordered, field, said
):
    with pytest.raises(InputError) as err:
        from_syntax(syntax, ordered=ordered)
    assert err.value.field == field
    assert said in str(err.value)


def test_an_ordered_predictor_is_a_structural_outcome_whose_response_its_children_read():
    spec = from_syntax("m ~ a*x\ny ~ c*x + b*m\nind := a*b\n", {"m": {}}, ordered={"m": 2})
    assert spec.estimands() == ("m~x", "y~1", "y~x", "y~m", "y~~y", "m|t1", "ind")
    assert spec.unknown_nodes() == ()  # a missing m: its step draws the response, no node group


@pytest.mark.parametrize(
    ("syntax", "link", "field", "said"),
    [
        ("y ~ u + x\nu ~ x\n", "logit", "model.link", "probit where an ordered variable is"),
        ("f =~ u + y1 + y2\nz ~ u\n", "probit", "model.syntax (line 2)", "not an indicator"),
    ],
)
def test_an_ordered_predictor_needs_the_probit_and_an_equation_of_its_own(
    syntax, link, field, said
):
    with pytest.raises(InputError) as err:
        from_syntax(syntax, ordered={"u": 3}, link=link)
    assert err.value.field == field
    assert said in str(err.value)


def test_the_simulator_feeds_the_latent_response_not_the_category_to_the_children():
    """y = m* (no error, no direct path): y's cut at m|t1 is m, and y is no 0/1 code."""
    import jax

    from simstudy.spec.dgm import simulate

    spec = from_syntax("m ~ a*x\ny ~ b*m\n", ordered={"m": 2})
    setting = {"N": 500, "a": 0.5, "b": 1.0, "y~1": 0.0, "y~~y": 1e-12, "m|t1": 0.3}
    data = simulate(spec, jax.random.key(0), setting)
    y, m = np.asarray(data["y"]), np.asarray(data["m"])
    assert set(np.unique(m)) == {0.0, 1.0}
    np.testing.assert_array_equal((y >= 0.3).astype(float), m)
    assert np.unique(y).size == y.size
    assert np.corrcoef(y, np.asarray(data["x"]))[0, 1] > 0.3  # y = m* = 0.5 x + e


def test_a_list_declares_binary_variables_and_other_shapes_are_refused():
    assert check_declaration(["u", "v"]) == {"u": 2, "v": 2}
    assert check_declaration({"u": 4}) == {"u": 4}
    with pytest.raises(InputError) as err:
        check_declaration("u")
    assert err.value.field == "model.ordered"


def test_hmc_fits_an_ordered_model_but_cannot_integrate_a_variable_out_of_it():
    spec = from_syntax("u ~ x\n", ordered={"u": 2})
    out = kinds.normalise({"bayes": {"kind": "gibbs"}, "bayes_hmc": {"kind": "hmc"}}, spec)
    assert out["bayes_hmc"]["kind"] == "hmc"
    with pytest.raises(InputError) as err:
        kinds.normalise({"m": {"kind": "hmc", "marginal": True}}, spec)
    assert err.value.field == "model.estimators.m.marginal"
    assert "ordered variable (u)" in str(err.value)


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("model.ordered.u=1", "model.ordered.u = 1"),
        ("+model.ordered.q=2", "model.ordered.q = 'q'"),
    ],
)
def test_a_bad_ordered_config_exits_2_naming_it(override, said, capsys):
    rc = main(["show", MODEL, override])
    assert rc == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert "Traceback" not in err


def test_thresholds_that_do_not_increase_are_refused_naming_the_second():
    spec = from_syntax("u ~ x\n", ordered={"u": 3})
    with pytest.raises(InputError) as err:
        population(spec, {"u~x": 0.5, "u|t1": 0.2, "u|t2": -1.0}, "model.params")
    assert err.value.field == "model.params.u|t2"
    assert "thresholds increase" in str(err.value)


def _table(tmp_path, codes=(0, 1, 2, 3)):
    rng = np.random.default_rng(3)
    n = 400
    x, z = rng.normal(size=n), rng.normal(size=n)
    ystar = 0.5 * x + 0.3 * z + rng.normal(size=n)
    u = np.searchsorted([-0.8, 0.0, 0.9], ystar).astype(float)
    u[:3] = codes[: len(u[:3])] if max(codes) > 3 else u[:3]
    x[rng.uniform(size=n) < 0.2] = np.nan
    path = tmp_path / "ordinal.csv"
    pd.DataFrame({"u": u, "x": x, "z": z}).to_csv(path, index=False)
    return path


def test_fit_refuses_a_code_outside_zero_to_k_minus_one_naming_the_column(tmp_path, capsys):
    rc = main(["fit", MODEL, f"data={_table(tmp_path, codes=(0, 1, 4))}"])
    assert rc == 2
    assert "data column u = 4.0" in capsys.readouterr().err


# slow tier (default-tier time); the cheap checks of the same: the refusal above reads the
# column as fit does, tests/engine/steps/test_ordered.py fits ordered outcomes
@pytest.mark.slow
def test_fit_reads_the_codes_and_draws_the_missing_predictor(tmp_path, capsys):
    out = tmp_path / "fit.parquet"
    short = ["sampler.warmup=200", "sampler.draws=400", "sampler.vectorize=1"]
    rc = main(["fit", MODEL, f"data={_table(tmp_path)}", f"out={out}", *short])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    table = pd.read_parquet(out).set_index("parameter")
    for name, value in (("u~x", 0.5), ("u~z", 0.3), ("u|t1", -0.8), ("u|t3", 0.9)):
        assert abs(table.loc[name, "mean"] - value) < 4 * table.loc[name, "sd"], name


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("intercept", [False, True])
def test_the_numpyro_likelihood_is_the_categories_probabilities(link, intercept):
    """log p(u | parameters) in the NumPyro model: the log probability of each row's category."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer import init_to_uniform
    from scipy import stats

    from simstudy.spec import hmc, sweep
    from simstudy.spec.dgm import ROW_REAL, observed_key
    from simstudy.spec.info import PRIOR_DEFAULTS

    spec = from_syntax("u ~ 1 + x\n" if intercept else "u ~ x\n", ordered={"u": 3}, link=link)
    lay = sweep.layout(spec)
    u = np.array([0, 2, 1, 1, 0, 2.0])
    x = np.array([-1.0, 0.5, 0.2, 1.5, -0.3, 2.0])
    seen = np.array([True, True, True, False, True, True])
    data = {ROW_REAL: jnp.ones(6, bool), "u": jnp.asarray(u), "x": jnp.asarray(x)}
    data |= {observed_key("u"): jnp.asarray(seen), observed_key("x"): jnp.ones(6, bool)}
    data = hmc.model_data(data, PRIOR_DEFAULTS, lay)
    model = hmc.make_model(lay, "half_normal", "half_normal")
    drawn = handlers.substitute(
        handlers.seed(model, jax.random.key(2)), substitute_fn=init_to_uniform
    )
    trace = handlers.trace(drawn).get_trace(**data)
    sites = {k: v["value"] for k, v in trace.items() if v["type"] == "sample"}
    p = hmc.make_derive(lay, spec, "half_normal", "half_normal")(sites)
    mean = p.get("u~1", 0.0) + p["u~x"] * x
    cuts = [0.0, p["u|t2"]] if intercept else [p["u|t1"], p["u|t2"]]
    edges = np.r_[-np.inf, cuts, np.inf]
    cdf = stats.norm.cdf if link == "probit" else stats.logistic.cdf
    prob = cdf(edges[u.astype(int) + 1] - mean) - cdf(edges[u.astype(int)] - mean)
    expected = np.log(prob)[seen].sum()
    site = trace["obs:u"]
    np.testing.assert_allclose(float(site["fn"].log_prob(site["value"]).sum()), expected, rtol=1e-5)
