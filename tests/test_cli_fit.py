"""`simstudy fit`: a model's estimator on a user's data set."""

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import LATENT_PARAMS, REGRESSION_PARAMS

from simstudy.cli import main
from simstudy.models import latent_interaction as li
from simstudy.models import regression_missing as rm


@pytest.fixture
def regression_csv(tmp_path):
    # N and the sampler settings of test_chees's large-n recovery: one program for both
    setting = {**REGRESSION_PARAMS, "N": 1500, "missing_rate": 0.3, "mechanism": "MAR"}
    d = rm.simulate(jax.random.key(0), setting)
    x = np.where(np.asarray(d["x_observed"]), np.asarray(d["x"]), np.nan)
    path = tmp_path / "survey.csv"
    pd.DataFrame(
        {"id": range(1500), "y": np.asarray(d["y"]), "x": x, "z": np.asarray(d["z"])}
    ).to_csv(path, index=False)
    return path


def test_fit_regression_with_missing_x(regression_csv, tmp_path, capsys):
    out = tmp_path / "fit.parquet"
    rc = main(
        [
            "fit",
            "model=regression_missing",
            f"data={regression_csv}",
            "estimator=bayes_fiml",
            f"out={out}",
            "sampler.warmup=100",
            "sampler.draws=100",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    table = pd.read_parquet(out).set_index("parameter")
    assert list(table.index) == list(rm.PARAMETERS)
    assert abs(table.loc["y~x", "mean"] - 0.5) < 4 * table.loc["y~x", "sd"]
    assert (table["rhat"] < 1.05).all() and (table["ess_bulk"] > 100).all()
    assert "y~x" in printed and "posterior summary" in printed


# slow tier: the regression and CFA fit commands run by default
@pytest.mark.slow
def test_fit_latent_interaction_picks_its_sampler(tmp_path, capsys):
    setting = {**LATENT_PARAMS, "N": 600, "missing_rate": 0.1, "mechanism": "MCAR"}
    d = li.simulate(jax.random.key(1), setting)
    y = np.where(np.asarray(d["observed"]), np.asarray(d["y"]), np.nan)
    path = tmp_path / "items.parquet"
    pd.DataFrame(y, columns=li.INDICATORS).to_parquet(path)
    rc = main(["fit", "model=latent_interaction", f"data={path}", "sampler.draws=800"])
    assert rc == 0
    table = pd.read_parquet(tmp_path / "items-bayes-fit.parquet").set_index("parameter")
    assert set(table.index) == set(li.BAYES_PARAMETERS)
    assert (
        abs(table.loc["eta_y~eta_x:eta_m", "mean"] - 0.2) < 4 * table.loc["eta_y~eta_x:eta_m", "sd"]
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "data = None"),
        (["data=nope.csv"], "data = 'nope.csv'"),
        (["model=regression_missing", "estimator=magic"], "estimator = 'magic'"),
        (["model=latent_interaction"], "data columns = 'x1, x2, x3, m1, m2, m3, y1, y2, y3'"),
        (["model=latent_interaction", "sampler=nuts"], "sampler.name = 'nuts'"),
    ],
)
def test_fit_bad_input_exits_2(regression_csv, capsys, args, expected):
    if args and args[0].startswith("data="):
        full = args
    elif args:
        full = [f"data={regression_csv}", *args]
    else:
        full = []
    assert main(["fit", *full]) == 2
    assert expected in capsys.readouterr().err


def test_fit_rejects_missing_outcome(tmp_path, capsys):
    path = tmp_path / "d.csv"
    pd.DataFrame(
        {"y": [1.0, np.nan, 2.0, 3.0, 1.0], "x": [0.1, 0.2, np.nan, 0.3, 0.5], "z": [0, 1, 0, 1, 2]}
    ).to_csv(path, index=False)
    assert main(["fit", "model=regression_missing", f"data={path}", "estimator=ols_cc"]) == 2
    assert "data column y = '1 missing values'" in capsys.readouterr().err
