import jax
import numpy as np
import pytest
from conftest import (
    BACKEND_COMPILE,
    JAXPR_TRACE,
    compile_events,
    latent_interaction,
    regression_missing,
)
from scipy import stats

from simstudy.cli import compose_raw
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.design import condition_id, rep_seed
from simstudy.engine import gibbs, nuts
from simstudy.engine.replicate import run_replication
from simstudy.engine.summary import summarise_draws
from simstudy.models import model_infos

FAMILY, ESTIMATORS, SETTING = regression_missing()
PRIORS = {"coef_sd": 10.0, "sigma_scale": 5.0}
FAST = SamplerSettings(chains=2, warmup=200, draws=200)


def test_summarise_draws_matches_numpy():
    rng = np.random.default_rng(0)
    draws = {"a": rng.normal(2.0, 3.0, size=(4, 1000))}
    s = summarise_draws(draws, 0.9)["a"]
    flat = draws["a"].ravel()
    assert s.estimate == pytest.approx(flat.mean())
    assert s.se == pytest.approx(flat.std(ddof=1))
    assert s.lower == pytest.approx(np.quantile(flat, 0.05))
    assert s.upper == pytest.approx(np.quantile(flat, 0.95))
    assert 2500 < s.ess_bulk < 5500  # independent draws: ESS near 4000
    assert abs(s.rhat - 1) < 0.01


def test_summarise_draws_reports_the_median_when_asked():
    draws = {"a": np.random.default_rng(1).gamma(1.0, size=(2, 500))}  # skewed: mean > median
    mean, median = summarise_draws(draws, 0.9)["a"], summarise_draws(draws, 0.9, "median")["a"]
    assert median.estimate == pytest.approx(np.median(draws["a"]))
    assert median.estimate < mean.estimate
    assert median[1:] == mean[1:]  # SD, interval, ESS and R-hat do not depend on it


def test_summary_flags_disagreeing_chains_and_rejects_nan():
    rng = np.random.default_rng(1)
    stuck = rng.normal(size=(2, 500)) + np.array([[0.0], [5.0]])
    assert summarise_draws({"a": stuck}, 0.95)["a"].rhat > 1.5
    with pytest.raises(FloatingPointError):
        summarise_draws({"a": np.full((2, 10), np.nan)}, 0.95)


# slow tier: test_fiml_is_unbiased_where_complete_cases_are_not recovers y~x by default
@pytest.mark.slow
@pytest.mark.parametrize(("name", "n"), [("bayes_fiml", 1000), ("bayes_cc", 3000)])
def test_nuts_recovers_parameters_at_large_n(name, n):
    setting = {**SETTING, "N": n, "mechanism": "MCAR"}  # bayes_fiml: n + 7 dimensions
    data = FAMILY.simulate(jax.random.key(0), setting)
    estimator = ESTIMATORS[name]
    model_data = estimator.data(data, PRIORS)
    draws = nuts.prepare(estimator, model_data, FAST)(jax.random.key(1), model_data)
    summary = summarise_draws(draws.draws, 0.95)
    for parameter, true in FAMILY.truth(setting).items():
        s = summary[parameter]
        assert abs(s.estimate - true) < 4 * s.se + 0.01, (parameter, s)
        assert s.rhat < 1.05
    assert draws.draws["y~x"].shape == (2, 200)


# slow tier: a small study of three estimators; by default the marginal and complete-case
# densities are checked exactly (tests/spec/test_spec_estimator_kinds.py)
@pytest.mark.slow
def test_fiml_is_unbiased_where_complete_cases_are_not():
    """bayes_fiml_marginal: bayes_fiml's posterior (tests/spec/test_spec_estimator_kinds.py),
    7 dims. Also: a second replication of a condition does not recompile."""
    setting = {**SETTING, "N": 3000}
    data = FAMILY.simulate(jax.random.key(2), setting)
    fits = {}
    for name in ("bayes_fiml_marginal", "bayes_cc"):
        est = ESTIMATORS[name]
        d = est.data(data, PRIORS)
        fits[name] = summarise_draws(nuts.prepare(est, d, FAST)(jax.random.key(3), d).draws, 0.95)
    fiml = fits["bayes_fiml_marginal"]["y~x"]
    assert abs(fiml.estimate - 0.5) < 4 * fiml.se
    assert fits["bayes_cc"]["y~x"].estimate < 0.5 - 4 * fits["bayes_cc"]["y~x"].se
    # a second replication of the condition runs bayes_cc's program again, compiling nothing
    # (here, so that the check shares the program; ChEES: test_chees's batch-and-lane test)
    est = ESTIMATORS["bayes_cc"]
    second = est.data(FAMILY.simulate(jax.random.key(11), setting), PRIORS)
    with compile_events(BACKEND_COMPILE, JAXPR_TRACE) as events:
        nuts.prepare(est, second, FAST)(jax.random.key(1), second)
        assert not events, events
        jax.jit(lambda x: x + 1)(np.arange(3.0))
        assert events  # the listener sees a new program


def _plan(**study):
    raw = {
        "study": {
            "name": "t",
            "reps": 2,
            "seed": 7,
            "estimators": ["ols_cc", "bayes_cc"],
            "factors": {"N": [60], "missing_rate": [0.3], "mechanism": ["MCAR"]},
            **study,
        },
        "model": compose_raw([])["model"],
        "sampler": {"warmup": 60, "draws": 60},
        "executor": {"name": "synchronous"},
    }
    return plan_from_dict(raw, model_infos())


def test_replication_records_and_seed():
    plan = _plan()
    cond = {"N": 60, "missing_rate": 0.3, "mechanism": "MCAR"}
    rows = run_replication(plan, cond, 1)
    assert len(rows) == 2 * 4
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["seed"] for r in rows} == {rep_seed(7, condition_id(cond), 1)}
    ols = {r["parameter"]: r for r in rows if r["estimator"] == "ols_cc"}
    assert np.isnan(ols["y~x"]["ess_bulk"]) and ols["y~x"]["n_divergent"] == 0
    bayes = {r["parameter"]: r for r in rows if r["estimator"] == "bayes_cc"}
    assert bayes["y~x"]["ess_bulk"] > 10 and bayes["y~x"]["seconds"] > 0
    again = run_replication(plan, cond, 1)
    assert [r["estimate"] for r in again] == [r["estimate"] for r in rows]


def test_failing_fit_becomes_failed_rows_and_others_go_on():
    plan = _plan(factors={"N": [3], "missing_rate": [0.3], "mechanism": ["MCAR"]})
    rows = run_replication(plan, {"N": 3, "missing_rate": 0.3, "mechanism": "MCAR"}, 0)
    ols = [r for r in rows if r["estimator"] == "ols_cc"]
    assert {r["status"] for r in ols} == {"failed"}
    assert all("complete cases" in r["error"] and np.isnan(r["estimate"]) for r in ols)
    assert {r["parameter"] for r in ols} == set(ESTIMATORS["ols_cc"].parameters)
    assert all(r["truth"] == FAMILY.truth(SETTING)[r["parameter"]] for r in ols)
    assert {r["estimator"] for r in rows} == {"ols_cc", "bayes_cc"}


def test_compiled_simulation_is_the_model_simulation_as_one_program():
    """One compiled program per setting; the data sets of the op-by-op simulation to rounding."""
    from simstudy.engine.replicate import compiled_simulate

    model = latent_interaction(N=300, missing_rate=0.2, mechanism="MAR")
    family, setting = model.family, model.setting
    simulate = compiled_simulate(family, setting)
    assert compiled_simulate(family, dict(setting)) is simulate
    assert compiled_simulate(family, {**setting, "N": 301}) is not simulate
    key = jax.random.key(5)
    compiled, eager = simulate(key), family.simulate(key, setting)
    assert set(compiled) == set(eager)
    for name in eager:
        np.testing.assert_allclose(np.asarray(compiled[name]), np.asarray(eager[name]), atol=1e-5)
    again = simulate(key)
    assert all(np.array_equal(np.asarray(again[n]), np.asarray(compiled[n])) for n in again)


def test_a_batch_after_compile_unit_compiles_nothing():
    """compile_unit compiles exactly the program the batch runs (here NUTS, N = 61, a shape
    no other test uses), and never raises: a unit that cannot compile returns its error."""
    from simstudy.engine.replicate import compile_unit, run_batch

    plan = _plan(factors={"N": [61], "missing_rate": [0.3], "mechanism": ["MCAR"]})
    cond = {"N": 61, "missing_rate": 0.3, "mechanism": "MCAR"}
    with compile_events() as events:
        assert compile_unit(plan, cond, "bayes_cc") == ""
        assert events  # it compiled
        before = len(events)
        rows = run_batch(plan, cond, [0, 1])
        assert len(events) == before, "the batch compiled again"
    assert {r["status"] for r in rows} == {"ok"}
    bad = _plan(factors={"N": [2], "missing_rate": [0.3], "mechanism": ["MCAR"]})
    assert compile_unit(bad, {"N": 2, "missing_rate": 0.3, "mechanism": "MCAR"}, "nope")


def test_rubin_pooling_by_hand():
    q = np.array([0.30, 0.34, 0.28, 0.31, 0.33])
    u = np.array([0.010, 0.012, 0.011, 0.009, 0.010]) ** 2
    pooled = gibbs.rubin(q, u, 0.95)
    m, w, b = 5, u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    dof = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2
    assert pooled.estimate == pytest.approx(q.mean())
    assert pooled.se == pytest.approx(np.sqrt(t))
    half = stats.t.ppf(0.975, dof) * np.sqrt(t)
    assert pooled.upper - pooled.estimate == pytest.approx(half)
