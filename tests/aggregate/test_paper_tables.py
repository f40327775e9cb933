"""Tables for papers: design order, the population column, filters, formats, --by."""

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from simstudy.cli import main

OLS = [*TINY, "executor=synchronous", "executor.batch_size=2", "study.estimators=[ols_cc]"]


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


# slow tier (default-tier time); the cheap check of the same: tables of another program's CSV:
# test_another_programs_csv_names_its_factors_with_by
@pytest.mark.slow
def test_a_factor_added_to_a_study_with_results_gives_one_row_per_condition(run_cli, tmp_path):
    assert run_cli(*OLS)[0] == 0
    rc, out = run_cli(*OLS, "study.factors.N=[80,40]", "+study.factors.b1=[0.5,0.2]")
    assert rc == 0, out
    tables = tmp_path / "results" / "tiny" / "tables"
    rows = _rows((tables / "bias.md").read_text())
    assert len(rows) == 2 * 2 * 2 * 4  # N × mechanism × b1 conditions × estimands, no repeats
    # design order: N as declared (80 before 40), then mechanism, then b1 as declared
    assert [r[0] for r in rows[:16]] == ["80"] * 16
    assert [r[3] for r in rows[:8]] == ["0.5"] * 4 + ["0.2"] * 4
    header = (tables / "bias.md").read_text().splitlines()[2]
    assert "| parameter | Population |" in header
    population = {(r[3], r[4]): r[5] for r in rows}
    assert population[("0.2", "y~x")] == "0.2" and population[("0.5", "y~x")] == "0.5"
    assert (tables / "compact.md").exists() and (tables / "compact.tex").exists()


def _csv(path, with_time=True):
    rng = np.random.default_rng(1)
    rows = [
        {
            "N": n,
            "rep": r,
            "estimator": e,
            "parameter": p,
            "truth": 0.5,
            "estimate": 0.5 + rng.normal(0, 0.1),
            "se": 0.1,
            **({"time_sec": rng.uniform()} if with_time else {}),
        }
        for n in (50, 100)
        for r in range(30)
        for e in ("a", "b")
        for p in ("b1", "b2")
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_another_programs_csv_names_its_factors_with_by(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    _csv(csv)
    assert main(["aggregate", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "time_sec" in err and "--by" in err
    out = tmp_path / "s.csv"
    argv = ["aggregate", str(csv), "--by", "N", "--out", str(out), "--format", "csv,md"]
    assert main([*argv, "--estimators", "b,a", "--parameters", "b2", "--measures", "bias"]) == 0
    summary = pd.read_csv(out)  # a CSV, not Parquet bytes
    assert set(summary["N"]) == {50, 100} and "time_sec" not in summary.columns
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {30}  # 2 conditions
    tables = tmp_path / "s-tables"
    assert sorted(p.name for p in tables.iterdir()) == [
        "bias.csv",
        "bias.md",
        "compact.csv",
        "compact.md",
    ]
    bias = pd.read_csv(tables / "bias.csv")
    assert list(bias.columns) == ["N", "parameter", "Population", "b: Bias", "a: Bias"]
    assert set(bias["parameter"]) == {"b2"}
    assert main(["aggregate", str(csv), "--by", "M"]) == 2
    assert "--by = 'M'" in capsys.readouterr().err
    assert main(["aggregate", str(csv), "--by", "N", "--format", "docx"]) == 2
    assert "--format = 'docx'" in capsys.readouterr().err
