"""Compiled spec families in the engine, and the contract every registered family keeps."""

from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import compile_events

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import compile_unit, compiled_simulate, run_batch, setting_of
from simstudy.models import family_of, model_infos
from simstudy.spec import dgm

STUDIES = sorted(
    p.stem for p in (Path(__file__).parents[2] / "conf" / "study").glob("*.yaml") if p.stem != "sbc"
)


def _plan(overrides):
    return plan_from_dict(compose_raw(overrides), model_infos())


@pytest.mark.parametrize("study", STUDIES)
def test_every_family_keeps_the_contract(study):
    """Same key, same data; another key, other data; truth names every estimand."""
    plan = _plan([f"study={study}"])
    family = family_of(plan.model)
    condition = expand_grid(plan.factors)[0]
    setting = setting_of(plan, condition)
    simulate = compiled_simulate(family, setting)
    a, b, c = simulate(jax.random.key(1)), simulate(jax.random.key(1)), simulate(jax.random.key(2))
    assert set(a) == set(b)
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
    assert any(not np.array_equal(np.asarray(a[k]), np.asarray(c[k])) for k in a)
    truth = set(family.truth(setting))
    reported = [
        set(family.estimators_for(plan.model.structure)[n].parameters)
        for n in family.info.estimators
    ]
    assert all(r <= truth for r in reported)
    assert set().union(*reported) == truth


GLMM = [
    "study=glmm",
    "study.factors={J: [12], cluster_size: [6], icc: [0.2], slope_var: [0.1], "
    "missing_rate: [0.2], mechanism: [MAR]}",
    "sampler.warmup=200",
    "sampler.draws=400",
    "sampler.vectorize=2",
]


def test_glmm_simulator_pads_unequal_clusters_and_marks_missing_x():
    plan = _plan(["study=glmm"])
    condition = {
        "J": 400,
        "cluster_size": 10.0,
        "icc": 0.2,
        "slope_var": 0.1,
        "missing_rate": 0.3,
        "mechanism": "MAR",
    }
    data = compiled_simulate(family_of(plan.model), setting_of(plan, condition))(jax.random.key(3))
    real = np.asarray(data[dgm.ROW_REAL])
    sizes = np.bincount(np.asarray(data["g"])[real], minlength=400)
    assert real.shape[0] == 400 * 15  # padded to the largest cluster size (10 * 1.5)
    assert sizes.min() >= 5 and sizes.max() <= 15 and sizes.std() > 1  # unequal
    observed = np.asarray(data[dgm.observed_key("x")])[real]
    assert abs(1 - observed.mean() - 0.3) < 0.03
    y, x = np.asarray(data["y"])[real], np.asarray(data["x"])[real]
    # MAR given y: the x that are missing are those of large y, so y differs by pattern
    assert y[~observed].mean() > y[observed].mean() + 0.3
    slope = np.polyfit(x[observed], y[observed], 1)[0]
    assert 0.2 < slope < 0.6  # complete cases: attenuated by the selection on y, not absurd


# slow tier (default-tier time); the cheap check of the same: compile once per condition:
# tests/test_engine.py::test_a_batch_after_compile_unit_compiles_nothing
@pytest.mark.slow
def test_glmm_batches_compile_once_and_fit():
    plan = _plan(GLMM)
    condition = expand_grid(plan.factors)[0]
    with compile_events() as events:
        assert compile_unit(plan, condition, "bayes") == ""
        assert events  # the sweep compiled
        run_batch(plan, condition, [0, 1])  # the first batch may stack keys (a tiny program)
        before = len(events)
        rows = run_batch(plan, condition, [2, 3])
        assert len(events) == before, "a second batch compiled again"
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["parameter"] for r in rows} >= {"y~x", "1|g~~1|g", "1|g~~x|g"}


@pytest.mark.slow  # 20 s of compile; the cheap check: test_spec_priors' nothing-observed sweep
def test_glmm_sweep_with_nothing_observed_samples_its_prior():
    from simstudy.engine.replicate import chain_name, estimator_key, fit_estimator, key_from_seed

    plan = _plan([*GLMM, "sampler.warmup=500", "sampler.draws=3000"])
    family = family_of(plan.model)
    setting = setting_of(plan, expand_grid(plan.factors)[0])
    data = dict(compiled_simulate(family, setting)(jax.random.key(0)))
    for v in ("y", "x"):
        data[dgm.observed_key(v)] = np.zeros_like(np.asarray(data[dgm.observed_key(v)]))
    estimator = family.estimators_for(plan.model.structure)["bayes"]
    key = estimator_key(key_from_seed(0), chain_name(estimator))
    summaries, _, _ = fit_estimator(estimator, data, key, plan.sampler, plan.model.priors, 0.95)
    coef_sd = plan.model.priors["coef_sd"]
    slope = summaries["y~x"]
    assert abs(slope.estimate) < 0.3 * coef_sd
    assert 0.75 * coef_sd < slope.se < 1.25 * coef_sd
