"""`simstudy report`: one self-contained HTML file and markdown from a study directory.

Two small real studies (the closed-form estimator only, in this process): one varying factor,
and two (nested-loop plot). The browser check of the HTML is in test_report_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from simstudy.cli import main
from simstudy.report import figures, tables
from simstudy.report.figures import _averaged

HEADINGS = (
    "Study design (ADEMP)",
    "Aims",
    "Data-generating mechanisms",
    "Estimands",
    "Methods",
    "Performance measures",
    "Replications, seeds, software and run time",
    "Bias, relative bias, RMSE and coverage",
    "Performance tables",
    "Coverage: zip plots",
    "Monte Carlo convergence",
    "Convergence and failures",
)
CLOSED_FORM = [*TINY, "executor=synchronous", "study.estimators=[ols_cc]"]


def _study(root: Path, *extra: str) -> Path:
    assert main(["run", f"results_dir={root}", *CLOSED_FORM, *extra]) == 0
    return root / "tiny"


def _report(study: Path, *args: str) -> str:
    """Run ``simstudy report`` in this process; its standard output."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["report", str(study), *args])
    assert rc == 0, out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def one_factor(tmp_path_factory) -> tuple[Path, str]:
    """A study with one varying factor (mechanism), reported once."""
    study = _study(tmp_path_factory.mktemp("one"))
    return study, _report(study)


@pytest.fixture(scope="module")
def two_factors(tmp_path_factory) -> Path:
    """Two varying factors (N, mechanism); capped tables and zip plots, over an old figure."""
    study = _study(tmp_path_factory.mktemp("two"), "study.factors.N=[40,60]")
    (study / "figures").mkdir()
    (study / "figures" / "zip_9.png").write_bytes(b"old")
    _report(study, "--max-rows", "2", "--zip-panels", "4")
    return study


def assert_self_contained(html: str) -> None:
    """No network: every image a data URI, no external script, stylesheet or frame."""
    for tag, attr in (("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src")):
        for m in re.finditer(rf"<{tag}\b[^>]*>", html):
            value = re.search(rf'\b{attr}="([^"]*)"', m.group(0))
            if tag == "img":
                assert value and value.group(1).startswith("data:image/png;base64,"), m.group(0)[
                    :80
                ]
            else:
                assert value is None, m.group(0)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(" not in html


def test_report_of_a_study(one_factor):
    one_factor, out = one_factor
    html = (one_factor / "report.html").read_text()
    md = (one_factor / "report.md").read_text()
    assert "report.html" in out and "written in" in out
    assert_self_contained(html)
    assert html.count("<img ") >= 4
    for heading in HEADINGS:
        assert f">{heading}</h" in html, heading
        assert f"# {heading}" in md, heading
    # ADEMP from the manifest: aims, model, factors, conditions, seed, software, run time
    assert "regression_missing" in html and "factor mechanism" in html
    assert "<dt>conditions</dt><dd>2 (" in html
    assert "20261122" in html and "simstudy_commit" not in html and "commit" in html
    assert "Runs that wrote to this directory" in html and "synchronous" in html
    # the performance table: truth, bias (MCSE), proportional bias with limits, coverage
    for column in ("truth", "bias (MCSE)", "prop. bias % [95% limits]", "coverage (MCSE)"):
        assert f">{column}</th>" in html, column
    assert re.search(r"<td class=\"num\">-?\d+\.\d{3} \(\d+\.\d{3}\)</td>", html)
    assert re.search(r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", html)
    assert '<a href="summary.parquet">summary.parquet</a>' in html
    # every figure as PNG and PDF, each referenced by the markdown
    names = re.findall(r"figures/([\w-]+)\.png\)", md)
    assert {
        "bias_mechanism_1",
        "rel_bias_mechanism_1",
        "rmse_mechanism_1",
        "coverage_mechanism_1",
        "zip_1",
        "running_1",
    } <= set(names)
    # nothing failed: a sentence, not a figure of empty panels
    assert "failures_1" not in names
    for text in (html, md):
        assert "No failure figure: no fit failed" in text
    for name in names:
        png, pdf = one_factor / "figures" / f"{name}.png", one_factor / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    # closed-form only: no MCMC figure, and the convergence overview says so
    assert "mcmc_diagnostics" not in names
    assert "0 of 0 MCMC fits not converged" in html


# slow tier (default-tier time); the cheap check of the same: a study's report:
# test_report_of_a_study; factor plots: tests/report/test_figures.py
@pytest.mark.slow
def test_two_factors_get_a_nested_loop_plot_and_factor_columns(two_factors):
    html = (two_factors / "report.html").read_text()
    assert_self_contained(html)
    figs = {p.name for p in (two_factors / "figures").iterdir()}
    for name in (
        "nested_loop_bias_1",
        "nested_loop_rmse_1",
        "nested_loop_coverage_1",
        "bias_n_1",
        "rel_bias_n_1",
        "coverage_n_1",
        "running_1",
    ):
        assert {f"{name}.png", f"{name}.pdf"} <= figs, name
    assert "zip_9.png" not in figs  # a stale figure of an earlier report is gone
    assert "<th>N</th><th>mechanism</th><th>estimator</th>" in html
    assert "<dt>conditions</dt><dd>4 (" in html
    # --max-rows 2: four conditions, two rows shown, the note links to the Parquet
    assert "Showing the first 2 of 4 rows; every row is in" in html
    assert "the 4 coverage figures furthest from nominal of 16" in html


@pytest.mark.parametrize("case", ["missing", "no_summary", "not_parquet"])
def test_bad_input_exits_2_naming_it(tmp_path, capsys, case):
    target = tmp_path / "nowhere"
    if case != "missing":
        target.mkdir()
    if case == "not_parquet":
        (target / "summary.parquet").write_text("not parquet")
    rc = main(["report", str(target)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(target) in err and "Traceback" not in err
    assert "summary.parquet" in err
    assert not (target / "report.html").exists()


def test_bad_limits_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--max-rows", "0"]) == 2
    assert "--max-rows = 0" in capsys.readouterr().err


def test_pure_parts():
    assert tables.value_mcse(0.12345, 0.0456) == "0.123 (0.046)"
    assert tables.value_mcse(float("nan"), 0.1) == "–"
    assert tables.with_limits(0.05, 0.01) == "5.0 [3.0, 7.0]"
    assert tables.thresholds(
        pd.DataFrame({"measure": ["unconverged_rate"], "note": ["R-hat > 1.05 or bulk ESS < 100"]})
    ) == (1.05, 100.0)
    fits = pd.DataFrame(
        {
            "condition_id": ["a", "a", "b"],
            "estimator": ["e", "e", "e"],
            "rep": [0, 1, 0],
            "failed": [True, True, False],
            "error": ["LinAlgError: singular\ntrace", "LinAlgError: singular", ""],
        }
    )
    t = tables.failure_table(fits)
    assert t is not None and t.rows == (("e", "LinAlgError: singular", "2", "1"),)
    assert tables.failure_table(fits.assign(failed=False)) is None
    # zip panels: all when they fit, else the coverage figures furthest from nominal
    summary = pd.DataFrame(
        {
            "condition_id": list("abcd"),
            "estimator": "e",
            "parameter": "p",
            "measure": "coverage",
            "value": [0.95, 0.80, 0.94, 0.99],
            "mcse": 0.01,
            "n_reps": 100,
        }
    )
    assert len(figures.zip_panels(summary, 0.95, 4)) == 4
    assert figures.zip_panels(summary, 0.95, 2) == [("b", "e", "p"), ("d", "e", "p")]
    # a measure averaged over conditions: MCSE sqrt(sum of squares)/k
    rows = pd.DataFrame(
        {"f": [1, 1], "estimator": "e", "parameter": "p", "value": [0.1, 0.3], "mcse": [0.03, 0.04]}
    ).assign(n_reps=10)
    avg = _averaged(rows, ["f", "estimator", "parameter"])
    assert np.isclose(avg["value"].iloc[0], 0.2) and np.isclose(avg["mcse"].iloc[0], 0.025)
