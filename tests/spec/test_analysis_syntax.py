"""An estimator that fits a model of its own (``syntax:``) to the population model's data."""

from __future__ import annotations

import pandas as pd
import pytest

from simstudy.cli import main

OMIT_Z = [
    'model.estimators={ols_cc: {kind: ols}, ols_omit: {kind: ols, syntax: "y ~ 1 + x"}}',
    "study.estimators=[ols_cc,ols_omit]",
    "study.factors.N=[2000]",
    "study.factors.mechanism=[MCAR]",
]


def test_an_omitted_predictor_gives_the_omitted_variable_bias(tmp_path):
    """y = 1 + 0.5 x + 0.3 z + e with corr(x, z) = 0.4: y ~ 1 + x estimates 0.5 + 0.3 * 0.4.

    And its residual variance 1 + 0.3^2 (1 - 0.4^2); the estimator reports only the
    estimands of its own model.
    """
    args = [*OMIT_Z, "study.reps=20", "executor=synchronous", f"results_dir={tmp_path}"]
    assert main(["run", *args]) == 0
    rows = pd.read_parquet(tmp_path / "missing_x" / "replications")
    omit = rows[rows.estimator == "ols_omit"]
    assert set(omit.parameter) == {"y~1", "y~x", "y~~y"}
    bias = (omit.estimate - omit.truth).groupby(omit.parameter).mean()
    assert bias["y~x"] == pytest.approx(0.3 * 0.4, abs=0.03)
    assert bias["y~~y"] == pytest.approx(0.09 * (1 - 0.16), abs=0.03)
    full = rows[rows.estimator == "ols_cc"]
    assert abs((full.estimate - full.truth).groupby(full.parameter).mean()["y~x"]) < 0.03


@pytest.mark.parametrize(
    ("entry", "field", "allowed"),
    [
        ('{kind: ols, syntax: "y ~ 1 + x + w"}', "ols_omit.syntax", "w are not"),
        ('{kind: ols, syntax: "x ~ 1 + z"}', "ols_omit.syntax", "x~1, x~z, x~~x are not"),
        ('{kind: ols, syntax: "y ~ 1 +"}', "ols_omit.syntax", "a model in the syntax"),
        ('{kind: python, function: m.f, syntax: "y ~ x"}', "ols_omit.syntax", "gibbs, hmc, ols"),
    ],
)
def test_a_syntax_that_cannot_be_fitted_is_refused_naming_it(entry, field, allowed, capsys):
    estimators = f"model.estimators={{ols_cc: {{kind: ols}}, ols_omit: {entry}}}"
    assert main(["show", estimators, "study.estimators=[ols_cc,ols_omit]"]) == 2
    said = capsys.readouterr().err
    assert f"model.estimators.{field} = " in said and allowed in said
