"""A user's PyMC model on simstudy's samplers, and estimators with samplers of their own."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from simstudy.cli import compose_raw, main
from simstudy.config import plan_from_dict
from simstudy.models import model_infos
from simstudy.pymcmodel import PymcModel, translate
from simstudy.usercode import UserCodeError

DOCS = Path(__file__).parents[1] / "docs" / "your_estimators.md"


def _docs_model():
    """The docs page's PyMC regression (its third Python block), as a module's namespace."""
    code = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)[2]
    namespace: dict = {}
    exec(compile(code, "my_pymc.py", "exec"), namespace)
    return namespace


def _table(seed: int, rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["y", "x", "z"])
    table.loc[rng.random(rows) < 0.3, "x"] = np.nan
    return table


def test_the_translation_is_pymcs_log_density_of_the_data_given():
    """One JAX function of values and data: PyMC's own log density, for each data set."""
    model = PymcModel("my_pymc.regression", _docs_model()["regression"])
    first, second = model.data(_table(0)), model.data(_table(1))
    graph = model.graph(first)
    assert graph.data == ("y", "x", "z", "complete")
    assert [name for name, _ in graph.values] == ["b", "sigma_log__"]
    point = {"b": np.array([0.3, -0.2, 0.5], np.float32), "sigma_log__": np.float32(0.1)}
    for seed, data in [(0, first), (1, second)]:
        pymc_model = _docs_model()["regression"](_table(seed))
        expected = pymc_model.compile_logp()(point)
        logp, b, sigma = graph.fn(*point.values(), *(data[n] for n in graph.data))
        assert logp.dtype == np.float32
        assert float(logp) == pytest.approx(float(expected), rel=1e-5)
        assert float(sigma) == pytest.approx(np.exp(0.1), rel=1e-6)  # constrained
        np.testing.assert_allclose(b, point["b"])
    assert not jax.config.jax_enable_x64  # PyTensor's JAX back end left JAX in float32


def test_data_outside_pm_data_fails_the_replication_saying_so():
    """observed= a NumPy array would freeze the first replication's data into the program."""
    import pymc as pm

    def frozen(data):
        with pm.Model() as model:
            mu = pm.Normal("mu", 0.0, 10.0)
            pm.Normal("y", mu, 1.0, observed=data["y"].to_numpy())
        return model

    model = PymcModel("mine.frozen", frozen)
    model.data(_table(0))
    with pytest.raises(UserCodeError, match=r"wrap every array taken from the data in pm\.Data"):
        model.data(_table(1))


def test_a_model_function_that_raises_or_returns_no_model_is_a_user_error():
    def broken(data):
        raise ValueError("not finished")

    with pytest.raises(UserCodeError, match="ValueError: not finished"):
        PymcModel("mine.broken", broken).data(_table(0))
    with pytest.raises(UserCodeError, match=r"returned dict, not a pm\.Model"):
        PymcModel("mine.wrong", lambda data: {}).data(_table(0))


def test_the_fingerprint_reads_every_number_of_the_graph():
    """Two models that differ only in a constant have other fingerprints."""
    import pymc as pm

    def prior_at(centre):
        with pm.Model() as model:
            y = pm.Data("y", np.zeros(5))
            mu = pm.Normal("mu", centre, 10.0)
            pm.Normal("obs", mu, 1.0, observed=y)
        return model

    assert translate(prior_at(0.0), jaxify=False)[0] == translate(prior_at(0.0), False)[0]
    assert translate(prior_at(0.0), jaxify=False)[0] != translate(prior_at(0.5), False)[0]


# ---------------------------------------------------------------------------------------
# Samplers per estimator


CFA = ["model=cfa", "study.estimators=[bayes,bayes_hmc]", "sampler=chees"]


def test_an_estimator_that_needs_another_sampler_gets_its_own_settings():
    """A Gibbs sweep in a ChEES study runs on the Gibbs sampler's settings, the rest on ChEES."""
    plan = plan_from_dict(compose_raw(CFA), model_infos())
    assert plan.sampler.name == "chees"
    assert plan.sampler_of("bayes").name == "gibbs"
    assert plan.sampler_of("bayes").vectorize == 16
    assert plan.sampler_of("bayes_hmc") == plan.sampler
    assert "samplers" in plan.numbers_config()
    alone = plan_from_dict(compose_raw(["model=cfa", "study.estimators=[bayes]"]), model_infos())
    assert alone.samplers == {} and "samplers" not in alone.numbers_config()


def test_an_estimators_own_settings_are_the_users_when_given():
    overrides = [*CFA, "+sampler@samplers.bayes=gibbs", "samplers.bayes.draws=300"]
    plan = plan_from_dict(compose_raw(overrides), model_infos())
    assert plan.sampler_of("bayes").draws == 300


@pytest.mark.parametrize(
    ("override", "field", "allowed"),
    [
        ("+samplers.ols={name: gibbs}", "samplers.ols", "an estimator of the study: bayes"),
        ("+sampler@samplers.bayes=nuts", "samplers.bayes.name", "'gibbs' for estimator bayes"),
        ("+sampler@samplers.bayes=gibbs", "samplers.bayes.vectorize", "at most executor"),
    ],
)
def test_bad_samplers_are_refused_naming_the_field(override, field, allowed, capsys):
    extra = ["executor.batch_size=8"] if field.endswith("vectorize") else []
    assert main(["show", *CFA, override, *extra]) == 2
    said = capsys.readouterr().err
    assert f"{field} = " in said and allowed in said


# ---------------------------------------------------------------------------------------
# The worked study (docs/pymc_cfa.md)

EXAMPLE = Path(__file__).parents[1] / "docs" / "examples" / "pymc_cfa"


def test_the_worked_cfa_study_gives_each_estimator_its_sampler():
    import simstudy

    plan = simstudy.Study.from_config(["study=cfa_compare"], config_dir=EXAMPLE).plan
    assert plan.estimators == ("bayes", "pymc_cfa", "pymc_cfa_centred", "ml")
    assert plan.sampler_of("bayes").name == "gibbs"
    assert plan.sampler_of("pymc_cfa").name == plan.sampler_of("pymc_cfa_centred").name == "chees"


def test_the_worked_studys_ml_estimator_keeps_the_contract(capsys):
    assert main(["--config-dir", str(EXAMPLE), "check", "ml", "study=cfa_compare"]) == 0
    assert "ml: passes" in capsys.readouterr().out
