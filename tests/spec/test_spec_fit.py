"""`simstudy fit` of a model given in the syntax, on a user's table with missing-value codes."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from simstudy.cli import main


@pytest.fixture
def clustered_csv(tmp_path):
    rng = np.random.default_rng(0)
    j, m = 30, 8
    g = np.repeat(np.arange(j), m)
    u0, u1 = rng.normal(0, 0.8, j), rng.normal(0, 0.3, j)
    x = rng.normal(size=j * m)
    y = 2.0 + u0[g] + (0.5 + u1[g]) * x + rng.normal(0, 1.0, j * m)
    frame = pd.DataFrame({"school": [f"s{k}" for k in g], "x": x.round(4), "y": y.round(4)})
    frame.loc[::7, "x"] = -999  # Mplus-style missing code
    frame["x"] = frame["x"].astype(object)
    frame.loc[3, "x"] = "."  # Stata-style
    path = tmp_path / "schools.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_syntax_model_with_missing_codes(clustered_csv, tmp_path, capsys):
    out = tmp_path / "fit.parquet"
    rc = main(
        [
            "fit",
            "model=spec",
            "model.syntax=y ~ 1 + x + (1 + x | school)",
            f"data={clustered_csv}",
            f"out={out}",
            'missing=[-999, "."]',
            "sampler.warmup=200",
            "sampler.draws=300",
            "sampler.vectorize=1",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert "missing values per column: x 36" in captured.out
    table = pd.read_parquet(out).set_index("parameter")
    assert {"y~1", "y~x", "y~~y", "1|school~~1|school", "1|school~~x|school"} <= set(table.index)
    assert abs(table.loc["y~x", "mean"] - 0.5) < 4 * table.loc["y~x", "sd"]
    record = json.loads(pq.read_schema(out).metadata[b"simstudy.fit"])
    assert record["missing_per_column"]["x"] == 36 and record["missing_codes"] == [-999, "."]
    assert record["sampler"]["draws"] == 300 and record["seed"] == 0
    assert "jax" in record["versions"]
    # 300 draws: the ESS warning names the setting to raise
    assert "sampler.draws" in captured.err


def test_fit_syntax_error_exits_2_with_line_and_column(clustered_csv, capsys):
    rc = main(["fit", "model=spec", "model.syntax=y ~ 1 + (x | )", f"data={clustered_csv}"])
    assert rc == 2
    assert "line 1, column 14" in capsys.readouterr().err
