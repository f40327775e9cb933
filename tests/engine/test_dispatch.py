"""One entry per estimator kind, read wherever the engine used to ask ``isinstance``."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import pytest

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.contract import ClosedFormEstimator, Estimate
from simstudy.engine.dispatch import ESTIMATOR_CLASSES, KINDS, chain_name, has_draws, kind_of
from simstudy.engine.replicate import compiled_simulate, fit_estimator, setting_of
from simstudy.models import family_of, model_infos

PACKAGE = Path(__file__).parents[2] / "simstudy"
CLASSES = "|".join(c.__name__ for c in ESTIMATOR_CLASSES)
#: Where asking an estimator's class stays: the table itself, and the check that an
#: imputation estimator names a Gibbs estimator to draw from (a spec's validation).
ALLOWED = {"engine/dispatch.py", "spec/builtin_kinds.py"}


def test_every_estimator_class_has_its_entry():
    assert set(KINDS) == set(ESTIMATOR_CLASSES)
    assert len(ESTIMATOR_CLASSES) == 4


def test_no_isinstance_ladders_outside_the_table():
    pattern = re.compile(rf"isinstance\([^)]*\b({CLASSES})\b")
    found = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if str(p.relative_to(PACKAGE)) not in ALLOWED
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found


def test_an_unknown_kind_is_named():
    with pytest.raises(TypeError, match=r"object is no estimator kind.*ClosedFormEstimator"):
        kind_of(object())


def test_the_default_study_through_its_entries():
    """Labels, draws and chain keys of the default study's estimators come from the table."""
    plan = plan_from_dict(compose_raw([]), model_infos())
    estimators = family_of(plan.model).estimators_for(plan.model.structure)
    kinds = {name: kind_of(e) for name, e in estimators.items()}
    assert kinds["ols_cc"].label(estimators["ols_cc"]) == "closed form"
    assert not kinds["ols_cc"].bayesian and not kinds["ols_cc"].compiled
    assert not has_draws(estimators["ols_cc"])
    bayes = [n for n, e in estimators.items() if has_draws(e)]
    assert bayes and all(kinds[n].compiled and kinds[n].bayesian for n in bayes)
    for name, est in estimators.items():
        source = kinds[name].chains_of(est)
        assert chain_name(est) == (source.name if source is not None else name)


def test_a_closed_form_fit_goes_through_its_entry():
    plan = plan_from_dict(compose_raw([]), model_infos())
    family = family_of(plan.model)
    condition = {k: v[0] for k, v in plan.factors.items()}
    data = compiled_simulate(family, setting_of(plan, condition))(jax.random.key(3))
    calls = []

    def fit(dataset, level):
        calls.append(level)
        return {"b": Estimate(1.0, 0.5, 0.0, 2.0)}

    est = ClosedFormEstimator("mine", fit, ("b",))
    summaries, n_div, seconds = fit_estimator(est, data, jax.random.key(0), plan.sampler, {}, 0.9)
    assert calls == [0.9] and n_div == 0 and seconds >= 0
    assert summaries["b"].estimate == 1.0 and summaries["b"].upper == 2.0
