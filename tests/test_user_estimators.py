"""A user's own estimator: a function in the user's config tree, named in a config."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from simstudy.cli import main
from simstudy.usercode import UserCodeError, estimates, takes_level

DOCS = Path(__file__).parents[1] / "docs" / "your_estimators.md"

#: Two more estimators that a check must fail: one that ignores its data, one that is random.
MORE = """

import numpy as np


def constant(data):
    return {"y~x": (0.5, 0.1)}


def noisy(data):
    return {"y~x": (float(np.random.default_rng().normal()), 0.1)}
"""

MORE_ESTIMATORS = """
  constant: {kind: python, function: my_estimators.constant, parameters: ["y~x"]}
  noisy: {kind: python, function: my_estimators.noisy, parameters: ["y~x"]}
"""


def _blocks(language: str) -> list[str]:
    """The docs page's code blocks in ``language``, in order."""
    return re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A user's config tree as docs/your_estimators.md writes it, and two more for check."""
    root = tmp_path / "mine"
    (root / "model").mkdir(parents=True)
    (root / "study").mkdir()
    code, numpyro_code, pymc_code = _blocks("python")
    model, study, line, pymc_line = _blocks("yaml")
    (root / "my_estimators.py").write_text(code + MORE)
    (root / "my_models.py").write_text(numpyro_code)
    (root / "my_pymc.py").write_text(pymc_code)
    estimators = model + MORE_ESTIMATORS.lstrip("\n") + line + pymc_line
    (root / "model" / "regression_mine.yaml").write_text(estimators)
    (root / "study" / "mine.yaml").write_text(study)
    return root


def test_a_function_of_the_users_tree_runs_on_dask_workers(tree, tmp_path, capsys):
    """The workers import the user's file; its failures are failed rows with its traceback."""
    results = tmp_path / "results"
    rc = main(["--config-dir", str(tree), "run", "study=mine", f"results_dir={results}"])
    assert rc == 1  # broken failed every fit: the condition says so
    said = capsys.readouterr()
    assert "broken: 3 of 3 fits failed" in said.out + said.err
    rows = pd.read_parquet(results / "mine" / "replications")
    robust = rows[rows.estimator == "robust"].set_index(["rep", "parameter"])
    ols = rows[rows.estimator == "ols_cc"].set_index(["rep", "parameter"]).loc[robust.index]
    assert (robust.status == "ok").all() and len(robust) == 9
    # the same complete-case OLS: the same estimates, other (HC3) standard errors
    assert (robust.estimate - ols.estimate).abs().max() < 1e-5
    assert not (robust.se - ols.se).abs().lt(1e-9).all()
    assert ((robust.lower < robust.estimate) & (robust.estimate < robust.upper)).all()
    broken = rows[rows.estimator == "broken"]
    assert (broken.status == "failed").all() and len(broken) == 3
    error = broken.error.iloc[0]
    assert "my_estimators.broken raised" in error and "my_estimators.py" in error
    assert "ValueError: this estimator is not finished" in error


@pytest.mark.parametrize(
    ("override", "field", "allowed"),
    [
        ("model.estimators.robust.function=my_estimators.nothere", "robust.function",
         "the name of a function in module my_estimators"),
        ("model.estimators.robust.function=nomodule.f", "robust.function",
         "a function in a module of your config tree"),
        ("model.estimators.robust.function=ols_hc3", "robust.function", "a dotted path"),
        ("model.estimators.robust.parameters=['y~w']", "robust.parameters",
         "an estimand of the model"),
    ],
)  # fmt: skip
def test_a_bad_function_is_refused_before_any_work(
    tree, tmp_path, capsys, override, field, allowed
):
    results = tmp_path / "results"
    rc = main(["--config-dir", str(tree), "run", "study=mine", f"results_dir={results}", override])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"model.estimators.{field}" in err and allowed in err
    assert not results.exists()


def test_a_module_that_fails_to_import_is_named(tree, tmp_path, capsys):
    (tree / "my_estimators.py").write_text("import not_a_module_anywhere\n")
    rc = main(["--config-dir", str(tree), "show", "study=mine"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "importing it raised ModuleNotFoundError" in err


def test_what_a_function_returns_becomes_estimates():
    out = estimates(
        "m.f",
        {"a": (1.0, 0.5), "b": {"estimate": 2.0, "se": 1.0}, "c": (0.0, 1.0, -1.0, 3.0)},
        ["a", "b", "c"],
        0.95,
    )
    assert math.isclose(out["a"].upper - out["a"].estimate, 1.959964 * 0.5, rel_tol=1e-6)
    assert out["b"].estimate == 2.0 and out["c"].upper == 3.0
    with pytest.raises(UserCodeError, match="missing \\['b'\\]"):
        estimates("m.f", {"a": (1.0, 0.5)}, ["a", "b"], 0.95)
    with pytest.raises(UserCodeError, match="not estimands of this estimator: \\['z'\\]"):
        estimates("m.f", {"a": (1.0, 0.5), "z": (0.0, 1.0)}, ["a"], 0.95)
    with pytest.raises(UserCodeError, match="expected \\(estimate, se\\)"):
        estimates("m.f", {"a": "big"}, ["a"], 0.95)
    with pytest.raises(UserCodeError, match="returned list"):
        estimates("m.f", [1, 2], ["a"], 0.95)


def test_the_level_is_passed_when_the_function_takes_it():
    assert takes_level(lambda data, level: None)
    assert not takes_level(lambda data: None)
    assert takes_level(lambda *args: None)


@pytest.mark.parametrize(
    ("estimator", "code", "said"),
    [
        ("robust", 0, "robust: passes"),
        ("broken", 1, "problem: rep 0: my_estimators.broken raised"),
        ("constant", 1, "the same numbers as rep 0 for other data"),
        ("noisy", 1, "other numbers for the same data and key (not reproducible)"),
    ],
)
def test_check_says_whether_an_estimator_keeps_the_contract(tree, capsys, estimator, code, said):
    assert main(["--config-dir", str(tree), "check", estimator, "study=mine"]) == code
    assert said in capsys.readouterr().out


def test_check_names_an_unknown_estimator(tree, capsys):
    assert main(["--config-dir", str(tree), "check", "nothere", "study=mine"]) == 2
    assert "an estimator of model regression_missing" in capsys.readouterr().err


def test_a_numpyro_model_of_ones_own_runs_on_the_projects_sampler(tree, capsys):
    """The docs' complete-case regression by hand: bayes_cc's posterior, on ChEES."""
    settings = ["study=mine", "sampler.chains=2", "sampler.warmup=300", "sampler.draws=500"]
    assert main(["--config-dir", str(tree), "check", "my_bayes", *settings]) == 0
    out = capsys.readouterr().out
    assert "my_bayes: passes" in out
    assert main(["--config-dir", str(tree), "check", "bayes_cc", *settings]) == 0
    built_in = capsys.readouterr().out

    def means(text: str) -> dict[str, float]:
        rows = [line.split() for line in text.splitlines()]
        return {r[2]: float(r[3]) for r in rows if r[:2] == ["rep", "1"]}

    mine, theirs = means(out), means(built_in)
    assert set(mine) == {"y~1", "y~x", "y~z", "y~~y"}
    for name in mine:  # the same posterior: means within Monte Carlo error
        assert abs(mine[name] - theirs[name]) < 0.03, (name, mine[name], theirs[name])


@pytest.mark.slow
def test_a_numpyro_model_of_ones_own_runs_batched_in_a_study(tree, tmp_path, capsys):
    """On Dask workers, ChEES over several replications per program, as bayes_cc runs."""
    results = tmp_path / "results"
    args = ["study=mine", f"results_dir={results}", "study.reps=8", "sampler.vectorize=4"]
    args += ["study.estimators=[bayes_cc,my_bayes]"]
    assert main(["--config-dir", str(tree), "run", *args]) == 0
    rows = pd.read_parquet(results / "mine" / "replications")
    assert (rows.status == "ok").all() and len(rows) == 2 * 8 * 4
    wide = rows.pivot_table(index=["rep", "parameter"], columns="estimator", values="estimate")
    assert (wide.my_bayes - wide.bayes_cc).abs().max() < 0.02
    assert rows[rows.estimator == "my_bayes"].ess_bulk.min() > 100


@pytest.mark.slow
def test_statsmodels_pymc_and_built_in_estimators_in_one_study_from_a_notebook(tree, tmp_path):
    """The issue's "done when": a user's tree, one summary and one report, through the API.

    statsmodels' HC3 OLS (robust), the docs' PyMC regression (my_pymc, on ChEES through
    PyMC's JAX log density, 4 replications per program) and the built-in ols_cc and
    bayes_cc, on the default study's design, on a local Dask cluster.
    """
    import simstudy

    results = tmp_path / "results"
    overrides = ["study=mine", f"results_dir={results}", "study.reps=8", "sampler.vectorize=4"]
    overrides += ["study.estimators=[ols_cc,robust,bayes_cc,my_pymc]"]
    study = simstudy.Study.from_config(overrides, config_dir=tree)
    assert study.plan.sampler_of("my_pymc").name == "chees"
    study.run()
    rows = study.replications()
    assert (rows.status == "ok").all() and len(rows) == 8 * (4 + 3 + 4 + 4)
    wide = rows.pivot_table(index=["rep", "parameter"], columns="estimator", values="estimate")
    assert (wide.my_pymc - wide.bayes_cc).abs().max() < 0.02  # the same posterior
    assert rows[rows.estimator == "my_pymc"].ess_bulk.min() > 100
    summary = study.aggregate()
    assert set(summary.estimator) == {"ols_cc", "robust", "bayes_cc", "my_pymc"}
    report = study.report()
    assert report.exists() and "my_pymc" in report.read_text()


def test_list_shows_the_estimators_a_variant_model_config_adds(tree, capsys):
    """model/regression_mine.yaml extends regression_missing: its own estimators are listed."""
    assert main(["--config-dir", str(tree), "list", "estimators"]) == 0
    rows = [re.split(r"\s{2,}", line) for line in capsys.readouterr().out.splitlines()]
    mine = {r[1]: r[2] for r in rows if r[0] == "model=regression_mine"}
    assert mine["robust"] == "closed form" and mine["my_bayes"] == "NumPyro model"
    assert mine["my_pymc"] == "PyMC model" and mine["ols_cc"] == "closed form"
