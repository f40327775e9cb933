"""Terminal tables fit ``COLUMNS``: every value of every measure and factor is printed, none cut."""

import re
import unicodedata

import numpy as np
import pandas as pd
import pytest

from simstudy.aggregate import summarise
from simstudy.aggregate.tables import GROUPS, Layout, wide_table
from simstudy.aggregate.terminal import PIPE_WIDTH, RUN_COLUMNS, _console, print_summary
from simstudy.cli import main

FACTORS = ["N", "mechanism"]
PARAMS = ("y~x", "b[x1]")  # brackets: names are not read as rich markup


def _records() -> pd.DataFrame:
    """Records of two conditions × two mechanisms, a closed-form and an MCMC estimator.

    ``b[x1]``'s population value depends on N (a column), ``y~x``'s does not (the title).
    """
    rng = np.random.default_rng(3)
    rows = []
    for n in (200, 50):
        for mech in ("MCAR", "MAR"):
            for est in ("ml", "bayes"):
                for param in PARAMS:
                    truth = 0.5 if param == "y~x" else 0.25 + n / 1000
                    for rep in range(8):
                        mcmc = est == "bayes"
                        bad = mcmc and n == 50 and rep < 3
                        rows.append(
                            {
                                "N": n,
                                "mechanism": mech,
                                "rep": rep,
                                "estimator": est,
                                "parameter": param,
                                "truth": truth,
                                "estimate": truth + rng.normal(0.02, 0.1),
                                "se": 0.1,
                                "rhat": (1.5 if bad else 1.0) if mcmc else np.nan,
                                "ess_bulk": (30.0 if bad else 800.0) if mcmc else np.nan,
                                "ess_tail": 700.0 if mcmc else np.nan,
                                "seconds": 1.0 + rep / 10,
                            }
                        )
    return pd.DataFrame(rows)


def _width(line: str) -> int:
    """Columns a line takes on a terminal: ``R̂``'s combining hat takes none."""
    return sum(1 for c in re.sub(r"\x1b\[[0-9;]*m", "", line) if not unicodedata.combining(c))


def _blocks(out: str) -> list[tuple[str, str, list[str]]]:
    """(title, column header, row lines) of each printed table."""
    lines = out.splitlines()
    starts = [
        i for i, line in enumerate(lines) if line.startswith(tuple(f"{p} — " for p in PARAMS))
    ]
    blocks = []
    for a, b in zip(starts, [*starts[1:], len(lines)], strict=True):
        rule = next(i for i in range(a, b) if set(lines[i].strip()) == {"─"})
        rows = [line for line in lines[rule + 1 : b] if line.strip()]
        blocks.append((" ".join(lines[a : rule - 1]), lines[rule - 1], rows))
    return blocks


def _row(keys: list[str]) -> re.Pattern:
    return re.compile(r"^" + r"\s+".join(re.escape(k) for k in keys) + r"(\s|$)")


def _has(line: str, cell: str) -> bool:
    return re.search(r"(^|\s)" + re.escape(cell) + r"(\s|$)", line) is not None


def _check_every_value(out, summary, group, spec=None, layout=None, columns=100):
    """Every non-empty cell of the group's wide table is in a row of its estimand's table."""
    assert "…" not in out and "..." not in out
    wide = [_width(line) for line in out.splitlines()]
    assert max(wide) <= columns, [line for line in out.splitlines() if _width(line) > columns]
    t = wide_table(summary, FACTORS, group, layout, spec)
    assert t is not None
    m, checked = len(t.columns), 0
    for names, cells in zip(t.rows, t.cells, strict=True):
        n, mech, param, population = names
        blocks = [b for b in _blocks(out) if b[0].startswith(f"{param} — {t.title}")]
        assert blocks, (group, param)
        if param == "y~x":
            assert all(f"Population = {population}" in b[0] for b in blocks)
        for j, est in enumerate(t.estimators):
            part = cells[j * m : (j + 1) * m]
            if all(c == "–" for c in part):
                continue
            keys = _row([n, mech, est])
            lines = [(h, r) for _, h, rows in blocks for r in rows if keys.match(r)]
            assert lines, (group, param, n, mech, est)
            if param == "b[x1]":  # varies with N: a column
                assert any("Population" in h and _has(r, population) for h, r in lines)
            for col, cell in zip(t.columns, part, strict=True):
                if cell != "–":
                    assert any(col.title in h and _has(r, cell) for h, r in lines), (col, cell)
                    checked += 1
    assert checked > 0


@pytest.mark.parametrize("columns", [100, 80])
def test_aggregate_prints_every_value_within_columns(tmp_path, monkeypatch, capsys, columns):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", str(columns))
    _records().to_csv("r.csv", index=False)
    assert main(["aggregate", "r.csv", "--reference", "ml"]) == 0
    out = capsys.readouterr().out
    summary = pd.read_parquet("r-summary.parquet")
    groups = [g for g in GROUPS if wide_table(summary, FACTORS, g) is not None]
    assert {"bias", "precision", "coverage", "comparison", "mcmc", "failures"} <= set(groups)
    for group in groups:
        _check_every_value(out, summary, group, columns=columns)
    assert "[1 of 2]" in out  # the widest groups were split, not squeezed
    assert "bayes at N=50, mechanism=MCAR: 3 of 8 fits" in out  # notes fit the width too


@pytest.mark.parametrize("columns", [100, 80])
def test_run_summary_shows_truth_percent_and_design_order(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    summary = summarise(_records(), reference="ml")
    layout = Layout(
        levels={"N": [200, 50], "mechanism": ["MCAR", "MAR"]}, estimators=["ml", "bayes"]
    )
    print_summary(summary, FACTORS, "tiny: performance (MCSE)", layout)
    out = capsys.readouterr().out
    _check_every_value(
        out, summary, "run", ("tiny: performance (MCSE)", RUN_COLUMNS), layout, columns
    )
    rel = summary.query("measure == 'rel_bias' and estimator == 'ml' and N == 50")
    rel = rel.query("mechanism == 'MAR' and parameter == 'y~x'").iloc[0]
    assert f"{100 * rel['value']:.1f} ({100 * rel['mcse']:.1f})" in out  # percent, with MCSE
    assert "Prop. bias %" in out and "Population = 0.5" in out and "3/8 !" in out
    # design order: N as declared (200 before 50), then mechanism (MCAR before MAR)
    first = [r.split()[:3] for _, _, rows in _blocks(out)[:1] for r in rows]
    assert first[:4] == [
        ["200", "MCAR", "ml"],
        ["200", "MCAR", "bayes"],
        ["200", "MAR", "ml"],
        ["200", "MAR", "bayes"],
    ]


def test_a_pipe_without_columns_stays_wide(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _console().width == PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "90")
    assert _console().width == 90
