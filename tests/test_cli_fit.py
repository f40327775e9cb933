"""`simstudy fit`: a model's estimator on a user's data set."""

import json

import jax
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import latent_interaction, regression_missing

from simstudy.cli import main


@pytest.fixture
def regression_csv(tmp_path):
    # small: bayes_fiml samples each missing x, so each gradient costs O(N)
    family, _, setting = regression_missing(N=300)
    d = family.simulate(jax.random.key(0), setting)
    x = np.where(np.asarray(d["observed:x"]), np.asarray(d["x"]), np.nan)
    path = tmp_path / "survey.csv"
    pd.DataFrame(
        {"id": range(300), "y": np.asarray(d["y"]), "x": x, "z": np.asarray(d["z"])}
    ).to_csv(path, index=False)
    return path


# slow tier (default-tier time); the cheap check of the same: the fit command:
# tests/spec/test_spec_fit.py, tests/spec/test_spec_priors.py
@pytest.mark.slow
def test_fit_regression_with_missing_x(regression_csv, tmp_path, capsys):
    out = tmp_path / "fit.parquet"
    rc = main(
        [
            "fit",
            "model=regression_missing",
            f"data={regression_csv}",
            "estimator=bayes_cc",  # the smallest HMC program of the model
            f"out={out}",
            "sampler.warmup=100",
            "sampler.draws=100",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    table = pd.read_parquet(out).set_index("parameter")
    assert list(table.index) == ["y~1", "y~x", "y~z", "y~~y"]
    assert abs(table.loc["y~x", "mean"] - 0.5) < 4 * table.loc["y~x", "sd"]
    assert (table["rhat"] < 1.05).all() and (table["ess_bulk"] > 100).all()
    assert "y~x" in printed and "posterior summary" in printed
    # the header names what was fitted: model, estimator, sampler and its settings, priors
    lines = printed.splitlines()
    assert lines[0] == "model regression_missing, estimator bayes_cc (NumPyro model)"
    assert lines[1] == "sampler chees: 4 chains, 100 warmup + 100 draws each, seed 0"
    # a spec model: priors on the data's scale unless named on the command line
    assert lines[2].startswith("priors (model.priors.*; the data's scale where unset)")
    assert "posterior summary (mean, SD, 95% interval, ESS, R-hat)" in printed
    assert any(line.startswith("  y~x: normal(0, ") for line in lines)  # the data's scale
    data_line = f"data: {regression_csv}, N = 300; missing values per column: x "
    assert any(line.startswith(data_line) for line in lines)


# slow tier: the regression and CFA fit commands run by default
@pytest.mark.slow
def test_fit_latent_interaction_picks_its_sampler(tmp_path, capsys):
    model = latent_interaction(N=600, missing_rate=0.1, mechanism="MCAR")
    d = model.family.simulate(jax.random.key(1), model.setting)
    items = [f"{f}{j}" for f in "xmy" for j in (1, 2, 3)]
    y = {v: np.where(np.asarray(d[f"observed:{v}"]), np.asarray(d[v]), np.nan) for v in items}
    path = tmp_path / "items.parquet"
    pd.DataFrame(y).to_parquet(path)
    rc = main(["fit", "model=latent_interaction", f"data={path}", "sampler.draws=800"])
    assert rc == 0
    table = pd.read_parquet(tmp_path / "items-bayes-fit.parquet").set_index("parameter")
    assert set(table.index) == set(model.estimators["bayes"].parameters)
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


def test_ols_fit_leaves_out_rows_with_a_missing_outcome_or_predictor(tmp_path, capsys):
    """A spec model reads incomplete columns; ols_cc fits the rows where every one is observed."""
    frame = _table(n=12)
    frame.loc[1, "y"], frame.loc[2, "x"] = np.nan, np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "fit.parquet"
    assert main([*OLS, f"data={tmp_path / 'd.csv'}", f"out={out}"]) == 0, capsys.readouterr()
    complete = frame.dropna()
    design = np.column_stack([np.ones(len(complete)), complete.x, complete.z])
    beta, *_ = np.linalg.lstsq(design, complete.y, rcond=None)
    table = pd.read_parquet(out).set_index("parameter")
    np.testing.assert_allclose(table.loc[["y~1", "y~x", "y~z"], "mean"], beta, rtol=1e-6)


# --- what fit says: header, summary's name, missing counts, missing-value codes -------------

OLS = ["fit", "model=regression_missing", "estimator=ols_cc"]


def _table(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.normal(size=n)})


def _fit(capsys, data, *extra: str) -> tuple[int, str, str]:
    rc = main([*OLS, f"data={data}", *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_closed_form_fit_says_what_it_did(tmp_path, capsys):
    frame = _table()
    frame["note"] = np.nan  # a column the model does not read, all missing
    frame.loc[[2, 5], "x"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    rc, out, err = _fit(capsys, tmp_path / "d.csv")
    assert rc == 0, err
    assert out.splitlines()[0] == (
        "model regression_missing, estimator ols_cc (closed form: no sampler, no priors)"
    )
    assert "missing values per column: x 2\n" in out  # not the unread column
    assert "closed-form estimates (estimate, standard error, 95% confidence interval)" in out
    assert "posterior" not in out and "sampler nuts" not in out
    written = tmp_path / "d-ols_cc-fit.parquet"
    record = json.loads(pq.read_schema(written).metadata[b"simstudy.fit"])
    assert record["missing_per_column"] == {"y": 0, "x": 2, "z": 0}
    assert record["priors"] is None and record["sampler"] is None
    assert record["summary"].startswith("closed-form estimates")


def test_named_out_replaces_an_earlier_fit_and_says_so(tmp_path, capsys):
    _table().to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "fit.parquet"
    out.write_bytes(b"an earlier fit")
    rc, printed, err = _fit(capsys, tmp_path / "d.csv", f"out={out}")
    assert rc == 0, err
    assert f"estimates: {out}, replacing the earlier file" in printed
    assert list(pd.read_parquet(out)["parameter"]) == ["y~1", "y~x", "y~z", "y~~y"]


def test_missing_value_code_far_outside_a_column_is_warned_about(tmp_path, capsys):
    frame = _table()
    frame.loc[[3, 11], "x"] = -999  # an undeclared Mplus-style code
    frame.to_csv(tmp_path / "d.csv", index=False)
    rc, _, err = _fit(capsys, tmp_path / "d.csv", f"out={tmp_path / 'a.parquet'}")
    assert rc == 0, err
    assert "warning: column x: -999 in 2 rows (first in row 4 of the data)" in err
    assert "declare it: missing=-999" in err
    # the advice, followed as printed, is accepted and silences the warning
    rc, out, err = _fit(capsys, tmp_path / "d.csv", "missing=-999", f"out={tmp_path / 'b.parquet'}")
    assert rc == 0, err
    assert "warning" not in err and "missing values per column: x 2" in out


def test_sentinel_warnings_flag_isolated_codes_only():
    from simstudy.userdata import sentinel_warnings

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "wide": rng.uniform(-200, 200, 50).round(),  # -99 is an ordinary value here
            "item": rng.integers(1, 6, 50).astype(float),  # 1..5 with 99 for 'refused'
            "scale": rng.integers(1, 6, 50).astype(float),  # 9 is within 3 IQRs of 1..5
            "income": rng.normal(50, 10, 50),  # 99 within 5 IQRs is a value, not a code
            "both": rng.normal(size=50),
        }
    )
    frame.loc[7, "wide"] = -99
    frame.loc[[4, 8], "item"] = 99
    frame.loc[3, "scale"] = 9
    frame.loc[0, "income"] = 99
    frame.loc[1, "both"] = -999
    frame.loc[2, "both"] = 9999
    lines = sentinel_warnings(frame, ["wide", "item", "scale", "income", "both"])
    assert [line.split(":")[0] for line in lines] == [
        "column item",
        "column both",
        "column both",
        "to declare them all",
    ]
    assert "99 in 2 rows (first in row 5 of the data)" in lines[0]
    assert lines[-1] == "to declare them all: missing='[-999, 99, 9999]'"


# slow tier: three Gibbs programs (one per length); the default tier checks `unconverged` below
@pytest.mark.slow
def test_fit_at_default_draws_samples_longer_until_converged(regression_csv, tmp_path, capsys):
    """Unnamed draws double (at most twice) while ESS < 400; named draws are the user's."""
    mine = tmp_path / "conf"
    (mine / "sampler").mkdir(parents=True)
    short = "name: gibbs\nchains: 2\nwarmup: 20\ndraws: 25\ntarget_accept: 0.8\n"
    (mine / "sampler" / "short.yaml").write_text(short + "max_tree_depth: 10\nvectorize: 1\n")
    base = ["--config-dir", str(mine), "fit", "model=regression_missing", "estimator=bayes"]
    base += [f"data={regression_csv}", "sampler=short"]
    named = tmp_path / "named.parquet"
    assert main([*base, f"out={named}", "sampler.draws=25"]) == 0
    captured = capsys.readouterr()
    assert "sampling again" not in captured.err
    assert json.loads(pq.read_schema(named).metadata[b"simstudy.fit"])["sampler"]["draws"] == 25
    longer = tmp_path / "longer.parquet"
    assert main([*base, f"out={longer}"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "sampling again" in line]
    assert len(notes) == 2, notes  # 25 draws have ESS < 400 (2 chains): 50, then 100, the bound
    assert "after 25 draws per chain; sampling again with 50" in notes[0]
    assert "after 50 draws per chain; sampling again with 100" in notes[1]
    record = json.loads(pq.read_schema(longer).metadata[b"simstudy.fit"])
    assert record["sampler"]["draws"] == 100
    table = pd.read_parquet(longer).set_index("parameter")
    # Blimp's and Mplus's point estimate beside the mean
    assert (table["median"] >= table["lower"]).all() and (table["median"] <= table["upper"]).all()


def test_unconverged_names_the_first_failed_check():
    from simstudy.engine.summary import Summary
    from simstudy.fitting import unconverged

    def summary(ess, rhat):
        return Summary(0.0, 1.0, -2.0, 2.0, ess, ess, rhat)

    assert unconverged({"a": summary(900, 1.001), "b": summary(450, 1.009)}, ["a", "b"]) is None
    assert unconverged({"a": summary(900, 1.001), "b": summary(399, 1.0)}, ["a", "b"]) == (
        "min bulk ESS 399 < 400"
    )
    assert unconverged({"a": summary(900, 1.02)}, ["a"]) == "max R-hat 1.020 > 1.01"
    # one chain: R-hat is NaN and only ESS is checked
    assert unconverged({"a": summary(900, float("nan"))}, ["a"]) is None
    # a stuck chain (constant draws) has no ESS, wherever it sits among the names
    for names in (["a", "b"], ["b", "a"]):
        stuck = {"a": summary(900, 1.0), "b": summary(float("nan"), float("nan"))}
        assert unconverged(stuck, names) == "bulk ESS undefined (constant draws) for b"


def test_a_binary_outcome_fitted_as_normal_is_warned_about_with_its_declaration(tmp_path, capsys):
    """15 herds x 4 periods of 0/1 rows fitted as continuous: a warning, then the advice works."""
    rng = np.random.default_rng(5)
    frame = _table(60)
    frame["y"] = (rng.uniform(size=60) < 0.3).astype(float)
    frame.to_csv(tmp_path / "d.csv", index=False)
    rc, _, err = _fit(capsys, tmp_path / "d.csv", f"out={tmp_path / 'a.parquet'}")
    assert rc == 0, err
    assert "column y holds only the values 0, 1, and is fitted as a continuous" in err
    assert "model.ordered=[y]" in err


def test_categorical_warnings_name_the_declaration_that_fits_the_codes():
    from simstudy.userdata import categorical_warnings

    frame = pd.DataFrame(
        {
            "binary": [0, 1, 1, 0, 1.0],
            "ordinal": [0, 1, 2, 3, 2.0],
            "likert": [1, 2, 5, 4, 3.0],
            "count": list(range(0, 50, 10)),  # 5 whole values, yet not 0..4: still flagged
            "real": [0.5, 1.0, 1.5, 2.0, 2.5],
        }
    )
    lines = categorical_warnings(frame, list(frame.columns))
    said = {line.split()[1]: line for line in lines}
    assert set(said) == {"binary", "ordinal", "likert", "count"}
    assert "model.ordered=[binary]" in said["binary"]
    assert "'model.ordered={ordinal: 4}'" in said["ordinal"]
    assert "recode it to 0..4" in said["likert"]
