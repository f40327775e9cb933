"""SBC's contract for every spec model: a prior draw simulates, and one fit of it runs.

Every shipped model config with a ``syntax`` and a few models written here (a mediation model
with ``:=``, a CFA with two correlated factors, a two-level model with a random slope) draw
their parameters from the priors (``simulate_prior``) and fit once with ``bayes`` on short
chains: every estimand gets a finite estimate and an SBC rank.
"""

import math
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import run_replication, setting_of
from simstudy.models import family_of, model_infos
from simstudy.spec.ir import from_syntax

CONF = Path(__file__).parents[2] / "conf" / "model"
SHIPPED = sorted(
    p.stem for p in CONF.glob("*.yaml") if (yaml.safe_load(p.read_text()) or {}).get("syntax")
)
SHORT = ["sampler=gibbs", "sampler.warmup=50", "sampler.draws=50", "study.estimators=[bayes]"]

WRITTEN = {
    "mediation": {
        "syntax": "m ~ a*x\ny ~ b*m + cp*x\nind := a*b\n",
        "params": {"a": 0.3, "b": 0.3, "cp": 0.1, "m~1": 0, "y~1": 0, "m~~m": 1, "y~~y": 1},
    },
    "cfa_two_factors": {
        "syntax": "f1 =~ y1 + y2 + y3\nf2 =~ y4 + y5 + y6\n",
        "params": {
            **{f"f{1 + (i - 1) // 3}=~y{i}": 0.8 for i in (2, 3, 5, 6)},
            **{f"y{i}~1": 0 for i in range(1, 7)},
            **{f"y{i}~~y{i}": 0.5 for i in range(1, 7)},
            "f1~~f1": 1,
            "f2~~f2": 1,
            "f1~~f2": 0.3,
        },
    },
    "random_slope": {
        "syntax": "y ~ 1 + x + (1 + x | g)\n",
        "params": {"y~1": 0, "y~x": 0.5, "y~~y": 1, "1|g~~1|g": 0.3, "x|g~~x|g": 0.1},
        "params_cov": {"1|g~~x|g": 0.05},
    },
}


def _factors(model: dict) -> dict:
    """A tiny design of the model's kind: N rows, or J clusters; missingness if declared."""
    two_level = "|" in model["syntax"]
    factors = {"J": [8], "cluster_size": [5]} if two_level else {"N": [40]}
    if (model.get("design") or {}).get("missing"):
        factors |= {"missing_rate": [0.2], "mechanism": [_mechanism(model)]}
    return factors


def _mechanism(model: dict) -> str:
    """MAR where the design names what missingness depends on, else MCAR."""
    given = [m.get("given") for m in model["design"]["missing"].values()]
    return "MAR" if any(given) else "MCAR"


def _plan(model_override: str, model: dict | None = None):
    raw = compose_raw(["study=sbc", model_override, "study.reps=1", *SHORT])
    if model is not None:
        raw["model"].update(
            syntax=model["syntax"], params={**model["params"], **model.get("params_cov", {})}
        )
    raw["study"]["factors"] = _factors(raw["model"])
    priors = raw["model"].setdefault("priors", {})
    if priors.get("latent_var_shape", 1.0) <= 0:  # a flat latent variance prior: SBC needs one
        priors.update(latent_var_shape=2.0, latent_var_scale=0.5)
    return plan_from_dict(raw, model_infos())


def _check_prior_draw_and_fit(plan) -> None:
    _check_prior_draw(plan)
    condition = expand_grid(plan.factors)[0]
    estimands = family_of(plan.model).estimators_for(plan.model.structure)["bayes"].parameters
    rows = run_replication(plan, condition, 0)
    assert [r["error"] for r in rows if r["status"] != "ok"] == []
    assert sorted(r["parameter"] for r in rows) == sorted(estimands)
    for r in rows:
        assert math.isfinite(r["estimate"]) and math.isfinite(r["se"]), r["parameter"]
        assert 0 <= r["sbc_rank"] <= r["sbc_draws"], r["parameter"]


def _check_prior_draw(plan) -> None:
    """Every estimand drawn, finite, and the same for the same key."""
    family = family_of(plan.model)
    condition = expand_grid(plan.factors)[0]
    setting = setting_of(plan, condition)
    estimands = family.estimators_for(plan.model.structure)["bayes"].parameters
    data, truth = family.simulate_prior(jax.random.key(3), setting, plan.model.priors)
    assert set(truth) == set(estimands) and all(math.isfinite(v) for v in truth.values())
    again = family.simulate_prior(jax.random.key(3), setting, plan.model.priors)
    assert again[1] == truth  # a replication's draw depends on its key only
    assert all(np.array_equal(np.asarray(data[k]), np.asarray(again[0][k])) for k in data)


# slow tier: one Gibbs program per model; by default every model draws from its prior
# (test_every_spec_draws_from_its_prior) and the mediation model also fits
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_spec_draws_from_its_prior_and_fits(name):
    _check_prior_draw_and_fit(_plan(f"model={name}"))


@pytest.mark.parametrize(
    "name", [n if n == "mediation" else pytest.param(n, marks=pytest.mark.slow) for n in WRITTEN]
)
def test_written_specs_draw_from_their_prior_and_fit(name):
    _check_prior_draw_and_fit(_plan("model=spec", WRITTEN[name]))


@pytest.mark.parametrize("name", [*SHIPPED, *(f"written:{n}" for n in WRITTEN)])
def test_every_spec_draws_from_its_prior(name):
    written = name.removeprefix("written:")
    if written != name:
        _check_prior_draw(_plan("model=spec", WRITTEN[written]))
    else:
        _check_prior_draw(_plan(f"model={name}"))


def test_more_free_parameters_than_equations_draw_distinct_values():
    """Each free coefficient and variance gets its own key (none shares another's draw)."""
    spec = from_syntax(WRITTEN["mediation"]["syntax"])
    assert len([p for p in spec.parameters() if p.free]) > len(spec.equations) + 3
    plan = _plan("model=spec", WRITTEN["mediation"])
    family = family_of(plan.model)
    setting = setting_of(plan, expand_grid(plan.factors)[0])
    _, truth = family.simulate_prior(jax.random.key(0), setting, plan.model.priors)
    drawn = [v for k, v in truth.items() if k != "ind"]
    assert len(set(drawn)) == len(drawn)
    assert truth["ind"] == pytest.approx(truth["m~x"] * truth["y~m"])
