"""The Python API: docs/python_api.md's example runs as written, and it agrees with the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simstudy
from simstudy.cli import main

DOCS = Path(__file__).parents[1] / "docs" / "python_api.md"


def test_the_docs_example_runs(tmp_path, monkeypatch, capsys):
    (code,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(DOCS), "exec"), scope)
    out = capsys.readouterr().out
    assert "study.reps = 0 is not allowed" in out
    study = scope["study"]
    stored = pd.read_parquet(tmp_path / "results" / "missing_x" / "summary.parquet")
    assert set(scope["summary"].estimator) == set(stored.estimator) == {"bayes_cc", "ols_cc"}
    assert (tmp_path / "results" / "missing_x" / "report.html").is_file()
    # the API's data set is the study's: OLS on it gives the stored ols_cc estimate
    data = scope["data"].dropna()
    design = np.column_stack([np.ones(len(data)), data.x, data.z])
    coefs = np.linalg.lstsq(design, data.y.to_numpy(float), rcond=None)[0]
    rows = study.replications()
    ols = rows[(rows.estimator == "ols_cc") & (rows.rep == 0)].set_index("parameter")
    assert abs(ols.estimate["y~x"] - coefs[1]) < 1e-4
    # simstudy.fit on that table: the stored ols_cc row again, and a posterior beside it
    fitted = scope["ols"].summary.set_index("parameter")
    assert abs(fitted["mean"]["y~x"] - ols.estimate["y~x"]) < 1e-5
    assert scope["ols"].posterior is None
    posterior = scope["gibbs"].posterior.posterior
    assert posterior["y~x"].shape[1] == 1000
    # FIML on the rows with x missing too: near the population value 0.5 (complete-case OLS
    # is biased under MAR given y, so it is no reference here)
    mean, sd = float(posterior["y~x"].mean()), float(posterior["y~x"].std())
    assert abs(mean - 0.5) < 3 * sd
    # a second run from the command line resumes: nothing left to run
    args = [*study.overrides, f"results_dir={tmp_path / 'results'}"]
    assert main(["run", *args]) == 0
    assert "nothing to run: every batch was finished earlier" in capsys.readouterr().out


def test_bad_input_is_the_clis(tmp_path):
    with pytest.raises(simstudy.InputError, match=r"study\.factors\.N"):
        simstudy.Study.from_config(["study.factors.N=[-5]", f"results_dir={tmp_path}"])
    with pytest.raises(simstudy.InputError, match="config_dir"):
        simstudy.Study.from_config([], config_dir=tmp_path / "nothere")
    study = simstudy.Study.from_config([f"results_dir={tmp_path}"])
    with pytest.raises(simstudy.InputError, match="condition"):
        study.simulate(condition="nope")
    with pytest.raises(simstudy.InputError, match="rep"):
        study.simulate(rep=10**6)
    frame = pd.DataFrame({"y": [0.1, 0.5, 0.9], "x": [1.0, 2.0, 3.0], "z": [0.0, 1.0, 0.0]})
    with pytest.raises(simstudy.InputError, match=r"a pandas DataFrame or a \.csv/\.parquet path"):
        simstudy.fit(["model=regression_missing"], [1, 2, 3])
    with pytest.raises(simstudy.InputError, match="estimator"):
        simstudy.fit(["model=regression_missing"], frame, estimator="magic")
    with pytest.raises(simstudy.InputError, match="level"):
        simstudy.fit(["model=regression_missing"], frame, level=1.5)
    with pytest.raises(simstudy.InputError, match="data rows"):  # 3 rows: below the minimum
        simstudy.fit(["model=regression_missing"], frame, estimator="ols_cc")
    assert not any(tmp_path.iterdir())  # nothing written
