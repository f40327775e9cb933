"""`simstudy aggregate` on study results and on files from other programs."""

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from simstudy.aggregate import summarise, summarise_path
from simstudy.cli import main


def _other_program_csv(path, with_truth=False, n_reps=40):
    """Results as another program might write them: no interval bounds, a method column."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (50, 200):
        for method, shift in (("ml", 0.0), ("naive", 0.1)):
            for rep in range(n_reps):
                se = 1 / np.sqrt(n)
                rows.append(
                    {
                        "N": n,
                        "rep": rep,
                        "estimator": method,
                        "parameter": "beta",
                        "estimate": 0.5 + shift + rng.normal(0, se),
                        "se": se,
                    }
                )
    frame = pd.DataFrame(rows)
    if with_truth:
        frame["truth"] = 0.5
    frame.to_csv(path, index=False)
    return frame


def test_csv_from_another_program_with_truth_on_command_line(tmp_path, capsys):
    csv = tmp_path / "mplus_results.csv"
    _other_program_csv(csv)
    rc = main(["aggregate", str(csv), "--truth", "0.5", "--reference", "ml"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = pd.read_parquet(tmp_path / "mplus_results-summary.parquet")
    assert set(summary["N"]) == {50, 200}
    bias = summary[(summary["measure"] == "bias")].set_index(["N", "estimator"])["value"]
    assert abs(bias.loc[(200, "naive")] - 0.1) < 0.03 and abs(bias.loc[(200, "ml")]) < 0.03
    cov = summary[(summary["measure"] == "coverage") & (summary["estimator"] == "ml")]["value"]
    assert (cov > 0.8).all()
    ratio = summary[summary["measure"] == "rmse_ratio"]
    assert set(ratio["estimator"]) == {"naive"} and set(ratio["reference"]) == {"ml"}
    tables = tmp_path / "mplus_results-tables"
    bias_md = (tables / "bias.md").read_text()
    assert "| N | parameter | Population | ml: Bias |" in bias_md and "(" in bias_md
    latex = (tables / "comparison.tex").read_text()
    assert r"\multicolumn{3}{c}{naive}" in latex and r"\toprule" in latex
    assert "Bias and proportional bias" in out


def test_missing_required_columns_exit_2_naming_them(tmp_path, capsys):
    csv = tmp_path / "r.csv"
    pd.DataFrame({"rep": [0, 1], "estimator": ["a", "a"], "estimate": [1.0, 2.0]}).to_csv(
        csv, index=False
    )
    rc = main(["aggregate", str(csv)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "parameter" in err and "truth (or --truth)" in err and "se (or lower and upper)" in err
    assert not (tmp_path / "r-summary.parquet").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--policy", "strict"], "policy = 'strict'"),
        (["--level", "95"], "--level = 95.0"),
        (["--reference", "bogus", "--truth", "0.5"], "--reference = 'bogus'"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, args, expected):
    csv = tmp_path / "r.csv"
    _other_program_csv(csv, with_truth=True, n_reps=3)
    rc = main(["aggregate", str(csv), *args])
    assert rc == 2
    assert expected in capsys.readouterr().err


def test_missing_input_exit_2(tmp_path, capsys):
    assert main(["aggregate", str(tmp_path / "nope.parquet")]) == 2
    assert "INPUT" in capsys.readouterr().err


def test_streamed_file_equals_in_memory_summary(tmp_path):
    frame = _other_program_csv(tmp_path / "r.csv", with_truth=True)
    frame.to_parquet(tmp_path / "r.parquet", index=False)
    streamed = summarise_path(tmp_path / "r.parquet", reference="ml")
    from_csv = summarise_path(tmp_path / "r.csv", reference="ml")
    direct = summarise(frame, reference="ml")
    keys = ["N", "estimator", "parameter", "measure"]
    a = streamed.sort_values(keys).reset_index(drop=True)
    b = direct.sort_values(keys).reset_index(drop=True)
    c = from_csv.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[b.columns], b, check_dtype=False)
    pd.testing.assert_frame_equal(c[b.columns], b, check_dtype=False)


# slow tier (default-tier time); the cheap check of the same: aggregate of a study:
# test_streamed_file_equals_in_memory_summary
@pytest.mark.slow
def test_aggregate_a_study_directory_uses_its_reference_and_policy_flags(run_cli, tmp_path, capsys):
    assert run_cli(*TINY, "executor=synchronous")[0] == 0
    study = tmp_path / "results" / "tiny"
    assert (study / "tables" / "bias.md").exists()
    assert main(["aggregate", str(study)]) == 0
    summary = pd.read_parquet(study / "summary.parquet")
    ratio = summary[summary["measure"] == "rmse_ratio"]
    assert set(ratio["reference"]) == {"ols_cc"}  # the study's first estimator
    assert set(ratio["estimator"]) == {"bayes_cc"}
    rc = main(["aggregate", str(study), "--policy", "converged", "--ess-min", "1e9"])
    assert rc == 0
    summary = pd.read_parquet(study / "summary.parquet")
    assert summary[summary["measure"] == "rmse_ratio"].empty  # no pairs left to compare
    bias = summary[summary["measure"] == "bias"].set_index("estimator")
    # every MCMC fit is excluded by an impossible ESS threshold; closed-form fits never are
    assert (bias.loc["bayes_cc", "n_reps"] == 0).all() and (
        bias.loc["bayes_cc", "n_excluded"] == 6
    ).all()
    assert (bias.loc["ols_cc", "n_reps"] == 6).all()
    capsys.readouterr()
