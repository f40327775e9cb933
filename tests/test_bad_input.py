"""Bad input (issue 19): exit code 2 and a message naming the problem, before any work starts.

Table-driven over the three ways in: ``run`` overrides, ``fit`` data files, ``aggregate``
inputs. Each case: exit code 2, the message names the field and the value, no traceback, no
work (no replications directory, no compiled program, no output file) and existing results
byte-identical afterwards.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compile_events

from simstudy.cli import main

CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def no_compile():
    """The programs JAX compiles while the test runs (after the import-time constants)."""
    for module in ("simstudy.engine.replicate", "simstudy.models", "simstudy.spec.family"):
        importlib.import_module(module)  # blackjax and module constants compile on import

    with compile_events() as events:
        yield events


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (directories as empty entries)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def _existing_results(root: Path) -> Path:
    """A results root holding an earlier study's files (a sentinel and a summary)."""
    study = root / "missing_x"
    study.mkdir(parents=True)
    (study / "keep.txt").write_text("existing results")
    pd.DataFrame({"measure": ["bias"], "value": [0.01]}).to_parquet(study / "summary.parquet")
    return root


def _check(rc: int, output: str, expected: str | tuple[str, ...]) -> None:
    assert rc == 2, output
    assert "Traceback" not in output, output
    for text in (expected,) if isinstance(expected, str) else expected:
        assert text in output, output


# --- run ------------------------------------------------------------------------------------

_GIANT = "sizes that exhaust any machine"
RUN = [
    # (overrides, texts the message must contain)
    (["study.factors.N=[2]"], ("study.factors.N[0] = 2", "N >= 5", "bayes_fiml")),
    (["study.factors.N=[4]"], ("study.factors.N[0] = 4", "minimum of model regression_missing")),
    (["study.factors.N=[250,4]"], "study.factors.N[1] = 4"),
    (["study.estimators=[ols_cc]", "study.factors.N=[4]"], ("N[0] = 4", "N >= 5", "ols_cc")),
    (["study=glmm", "study.factors.J=[3]"], ("study.factors.J[0] = 3", "J >= 4")),
    (["study=glmm", "study.factors.cluster_size=[1]"], "study.factors.cluster_size[0] = 1.0"),
    (
        ["study=cfa_ordinal", "study.factors.N=[4]"],
        ("study.factors.N[0] = 4", "N >= 5", "3 variables of a covariance block"),
    ),
    (["study.factors.N=[100000000]"], ("study.factors.N[0] = 100000000", "fits in memory")),
    (
        ["study.estimators=[ols_cc]", "study.factors.N=[1000000000]"],
        ("study.factors.N[0] = 1000000000", "GiB"),
    ),
    (["study=latent_interaction", "study.factors.N=[100000000]"], "N[0] = 100000000"),
    # HMC's NumPyro model needs a proper latent variance prior; the sweep takes the flat one
    (
        [
            "study=latent_interaction",
            "+model.estimators.bayes_hmc={kind: hmc}",
            "study.estimators=[bayes_hmc]",
        ],
        ("model.priors.latent_var_shape = -1.0", "hmc estimator bayes_hmc", "shape > 0"),
    ),
    (
        [
            "study=latent_interaction",
            "+model.estimators.bayes_hmc={kind: hmc}",
            "study.estimators=[bayes_hmc]",
            "model.priors.latent_var_shape=-0.5",
            "model.priors.latent_var_scale=1",
        ],
        ("model.priors.latent_var_shape = -0.5", "hmc estimator bayes_hmc"),
    ),
    (["sampler.draws=1000000000"], ("sampler.draws = 1000000000", "fits in memory")),
    (["sampler.warmup=1000000000"], "sampler.warmup = 1000000000"),
    (["executor.n_workers=1000"], ("executor.n_workers = 1000", "per core")),
    ([f"executor.n_workers={4 * CORES + 1}"], f"executor.n_workers = {4 * CORES + 1}"),
    (["study.factors.N=[abc]"], "study.factors.N[0] = 'abc'"),
    (["study.reps=1000000000"], ("study.reps = 1000000000", "in its driver", "GiB")),
    (["study.estimators=[ols_cc]", "study.reps=100000000"], ("study.reps = 100000000", "GiB")),
]


@pytest.mark.parametrize(("overrides", "expected"), RUN, ids=[" ".join(o)[:60] for o, _ in RUN])
def test_bad_run_exits_2_before_any_work(run_cli, tmp_path, no_compile, overrides, expected):
    results = _existing_results(tmp_path / "results")
    before = _tree(results)
    rc, output = run_cli(*overrides, results=results)
    _check(rc, output, expected)
    assert _tree(results) == before  # nothing created, nothing touched
    assert not no_compile


def test_results_dir_that_is_a_file_exits_2(run_cli, tmp_path):
    results = tmp_path / "results"
    results.write_text("not a directory")
    rc, output = run_cli("study.reps=1", results=results)
    _check(rc, output, (f"results_dir = '{results}'", "is a file"))
    rc, output = run_cli("study.reps=1", results=results / "deeper")
    _check(rc, output, (f"results_dir = '{results / 'deeper'}'", "is a file"))
    assert results.read_text() == "not a directory"


@pytest.fixture
def read_only_results(tmp_path) -> Callable[[], Path]:
    """A results root with earlier results, made read-only (chmod; as root a ro tmpfs)."""
    root = tmp_path / "ro"
    root.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root ignores permissions: a read-only file system instead
        ok = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], capture_output=True
        )
        if ok.returncode != 0:
            pytest.skip("running as root and cannot mount a tmpfs to make a read-only directory")
        mounted = True
    _existing_results(root)
    try:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        else:
            for p in (root, root / "missing_x"):
                p.chmod(0o555)
        yield root
    finally:
        if mounted:
            subprocess.run(["umount", str(root)], check=False)
        else:
            for p in (root, root / "missing_x"):
                p.chmod(0o755)


def test_read_only_results_dir_exits_2_untouched(run_cli, read_only_results, no_compile):
    before = _tree(read_only_results)
    rc, output = run_cli("study.reps=1", results=read_only_results)
    _check(rc, output, (f"results_dir = '{read_only_results}'", "create and write"))
    rc, output = run_cli("study.reps=1", "study.name=new", results=read_only_results)
    _check(rc, output, "results_dir")
    assert _tree(read_only_results) == before
    assert not no_compile


# --- fit ------------------------------------------------------------------------------------


def _regression(n: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.normal(size=n)}
    ).round(3)


def _write_text(text: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / "data.csv").write_text(text)
        return d / "data.csv"

    return make


def _write_frame(change: Callable[[pd.DataFrame], pd.DataFrame], suffix: str = ".csv"):
    def make(d: Path) -> Path:
        frame = change(_regression())
        path = d / f"data{suffix}"
        frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
        return path

    return make


def _set(col: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
        return frame

    return change


def _latent_items(d: Path) -> Path:
    rng = np.random.default_rng(0)
    items = [f"{g}{i}" for g in "xmy" for i in (1, 2, 3)]
    frame = pd.DataFrame(rng.normal(size=(30, 9)).round(3), columns=items).astype(object)
    frame.loc[4, "m2"] = "high"
    frame.to_csv(d / "items.csv", index=False)
    return d / "items.csv"


def _cfa_items(d: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 9)).round(3), columns=[f"x{i}" for i in range(1, 10)])
    frame["x9"] = np.nan
    frame.to_parquet(d / "items.parquet")
    return d / "items.parquet"


def _clusters(d: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 5), "x": rng.normal(size=15)})
    frame["y"] = frame["x"] + rng.normal(size=15)
    frame.to_csv(d / "schools.csv", index=False)
    return d / "schools.csv"


def _garbage(d: Path) -> Path:
    (d / "data.parquet").write_bytes(b"PAR1 this is not parquet")
    return d / "data.parquet"


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    frame["x"] = pd.date_range("2020-01-01", periods=len(frame))
    return frame


def _durations(frame: pd.DataFrame) -> pd.DataFrame:
    frame["z"] = pd.to_timedelta(np.arange(len(frame)), unit="D")
    return frame


def _date_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame["z"] = [f"2020-01-0{i + 1}" for i in range(len(frame))]
    return frame


def _all_missing_x(frame: pd.DataFrame) -> pd.DataFrame:
    frame["x"] = np.nan
    return frame


def _few_complete(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[:5, "x"] = np.nan  # 8 rows, 2 complete cases
    return frame


REGRESSION_HEADER = "y,x,z\n"
#: The cheapest fit: the regression's closed form.
OLS_FIT = ["fit", "model=regression_missing", "estimator=ols_cc"]
FIT = [
    # (id, make the data file, extra arguments, texts the message must contain)
    ("empty file", _write_text(""), [], ("data = '", "the file is empty")),
    ("header only", _write_text(REGRESSION_HEADER), [], ("data = '", "no rows")),
    ("one row ols_cc", _write_text(REGRESSION_HEADER + "1,2,3\n"), [], "data rows = 1"),
    (
        "three rows bayes_cc",
        _write_text(REGRESSION_HEADER + "1,2,3\n2,3,4\n3,4,5\n"),
        ["model=regression_missing", "estimator=bayes_cc"],
        ("data rows = 3", "bayes_cc"),
    ),
    ("text in x", _write_frame(_set("x", 2, "abc")), [], ("data column x = 'abc'", "row 3")),
    ("inf in z", _write_frame(_set("z", 0, "inf")), [], "data column z = inf"),
    ("-inf in y", _write_frame(_set("y", 5, "-inf")), [], "data column y = -inf"),
    ("all x missing", _write_frame(_all_missing_x), [], "data column x = 'all 8 values missing'"),
    (
        "2 complete cases ols_cc",
        _write_frame(_few_complete),
        [],
        ("data = '", "OLS needs more than 3 complete cases, got 2"),
    ),
    ("datetime column", _write_frame(_dates, ".parquet"), [], "data column x = '2020-01-01"),
    ("timedelta column", _write_frame(_durations, ".parquet"), [], "data column z = '0 days"),
    ("dates as text", _write_frame(_date_text), [], "data column z = '2020-01-01'"),
    ("no z column", _write_frame(lambda f: f.drop(columns="z")), [], "data columns = 'z'"),
    ("not parquet", _garbage, [], ("data = '", "a readable parquet table")),
    (
        "latent text item",
        _latent_items,
        ["model=latent_interaction"],
        "data column m2 = 'high'",
    ),
    (
        "latent hmc flat prior",
        _latent_items,
        [
            "model=latent_interaction",
            "+model.estimators.bayes_hmc={kind: hmc}",
            "estimator=bayes_hmc",
        ],
        ("model.priors.latent_var_shape = -1.0", "hmc estimator bayes_hmc"),
    ),
    ("cfa empty item", _cfa_items, ["model=cfa"], "data column x9 = 'all 20 values missing'"),
    (
        "glmm 3 clusters",
        _clusters,
        ["model=spec", "model.syntax=y ~ 1 + x + (1 + x | g)"],
        ("data clusters = 3", "at least 4"),
    ),
]


@pytest.mark.parametrize(
    ("make", "extra", "expected"), [c[1:] for c in FIT], ids=[c[0] for c in FIT]
)
def test_bad_fit_data_exits_2_before_fitting(tmp_path, capsys, make, extra, expected):
    data = make(tmp_path)
    out = tmp_path / "fit.parquet"
    estimator = (
        []
        if any(a.startswith(("estimator=", "model=")) for a in extra)
        else ["model=regression_missing", "estimator=ols_cc"]
    )
    rc = main(["fit", f"data={data}", f"out={out}", *estimator, *extra])
    captured = capsys.readouterr()
    _check(rc, captured.out + captured.err, expected)
    assert not out.exists()


def _constant(col: str, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[col] = value
        return frame

    return change


def _earlier_fit(d: Path) -> Path:
    """Data beside the output of an earlier fit at the default path."""
    data = _write_frame(lambda f: f)(d)
    (d / "data-ols_cc-fit.parquet").write_bytes(b"an earlier fit")
    return data


def _ols_fit(data: Path, d: Path) -> list[str]:
    return [*OLS_FIT, f"data={data}", f"out={d / 'fit.parquet'}"]


def _million_rows(d: Path) -> Path:
    rng = np.random.default_rng(1)
    columns = {c: rng.normal(size=1_000_000).astype(np.float32) for c in ("y", "x", "z")}
    columns["x"][::10] = np.nan  # an incomplete x: bayes_fiml draws it, a value per row and draw
    pd.DataFrame(columns).to_parquet(d / "data.parquet")
    return d / "data.parquet"


# each refused before any fit: exit 2, the field, the value and what is allowed, no file written
FIT_CHECKS = [
    (
        "a million rows for bayes_fiml",
        _million_rows,
        lambda data, d: ["fit", "model=regression_missing", f"data={data}"],
        ("data rows = 1000000", "bayes_fiml", "GiB", "more than this machine's"),
    ),
    # (id, make the data, the arguments (data path, directory), texts of the message; {d}: dir)
    (
        "y 1e30",
        _write_frame(_set("y", 2, 1e30)),
        _ols_fit,
        ("data column y = 1e+30", "row 3", "magnitude at most 1e+15", "float32"),
    ),
    (
        "x 1e200",
        _write_frame(_set("x", 6, -1e200)),
        _ols_fit,
        ("data column x = -1e+200", "row 7", "magnitude at most 1e+15"),
    ),
    (
        "x inf",
        _write_frame(_set("x", 1, "inf")),
        _ols_fit,
        ("data column x = inf", "row 2", "finite numbers"),
    ),
    (
        "constant z",
        _write_frame(_constant("z", 2.5)),
        _ols_fit,
        ("data column z = '2.5 in all 8 observed rows'", "a predictor whose values vary"),
    ),
    (
        "no model=",
        _write_frame(lambda f: f),
        lambda data, d: ["fit", f"data={data}", "estimator=ols_cc", f"out={d / 'fit.parquet'}"],
        ("model = None", "model=NAME", "regression_missing, regression_skewed, spec"),
    ),
    (
        "out= in a missing directory",
        _write_frame(lambda f: f),
        lambda data, d: [*OLS_FIT, f"data={data}", f"out={d / 'nope' / 'fit.parquet'}"],
        ("out = '{d}/nope/fit.parquet'", "a path in an existing directory"),
    ),
    (
        "out= not parquet",
        _write_frame(lambda f: f),
        lambda data, d: [*OLS_FIT, f"data={data}", f"out={d / 'fit.csv'}"],
        ("out = '{d}/fit.csv'", "a .parquet path"),
    ),
    (
        "default output exists",
        _earlier_fit,
        lambda data, d: [*OLS_FIT, f"data={data}"],
        (
            "out = '{d}/data-ols_cc-fit.parquet'",
            "a file that does not exist yet",
            "out={d}/data-ols_cc-fit.parquet replaces it",
        ),
    ),
]


@pytest.mark.parametrize(
    ("make", "arguments", "expected"), [c[1:] for c in FIT_CHECKS], ids=[c[0] for c in FIT_CHECKS]
)
def test_fit_refuses_before_any_work(tmp_path, capsys, no_compile, make, arguments, expected):
    data = make(tmp_path)
    before = _tree(tmp_path)
    rc = main(arguments(data, tmp_path))
    captured = capsys.readouterr()
    _check(rc, captured.out + captured.err, tuple(t.format(d=tmp_path) for t in expected))
    assert _tree(tmp_path) == before  # no output written, the earlier fit untouched
    assert not no_compile


def test_boolean_columns_are_read_as_0_1_and_said(tmp_path, capsys):
    frame = _regression(12)
    frame["x"] = frame["x"] > 0
    frame.to_csv(tmp_path / "d.csv", index=False)
    rc = main([*OLS_FIT, f"data={tmp_path / 'd.csv'}", f"out={tmp_path / 'f.parquet'}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "column x holds true/false, read as 1/0" in captured.err
    as_numbers = frame.assign(x=frame["x"].astype(float))
    as_numbers.to_csv(tmp_path / "n.csv", index=False)
    assert main([*OLS_FIT, f"data={tmp_path / 'n.csv'}", f"out={tmp_path / 'n.parquet'}"]) == 0
    capsys.readouterr()
    a, b = pd.read_parquet(tmp_path / "f.parquet"), pd.read_parquet(tmp_path / "n.parquet")
    np.testing.assert_array_equal(a["mean"], b["mean"])


# --- aggregate ------------------------------------------------------------------------------


def _records(n_reps: int = 4) -> pd.DataFrame:
    rows = [
        {"N": n, "rep": r, "estimator": e, "parameter": "beta", "estimate": 0.5 + 0.01 * r,
         "se": 0.1, "truth": 0.5}
        for n in (50, 100)
        for e in ("ml", "naive")
        for r in range(n_reps)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _records_with(col: str, value: object, row: int = 5) -> Callable[[], pd.DataFrame]:
    def make() -> pd.DataFrame:
        frame = _records()
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
        return frame

    return make


AGGREGATE = [
    # (id, records (None: the file as given by text), file text, extra arguments, expected)
    ("truth text", _records_with("truth", "half"), None, [], "INPUT column truth = 'half'"),
    ("estimate text", _records_with("estimate", "abc"), None, [], "INPUT column estimate = 'abc'"),
    ("se text", _records_with("se", "big"), None, [], "INPUT column se = 'big'"),
    ("truth inf", _records_with("truth", np.inf), None, [], "INPUT column truth = inf"),
    (
        "no parameter column",
        lambda: _records().drop(columns=["parameter", "truth"]),
        None,
        [],
        ("INPUT columns = 'parameter, truth (or --truth)'",),
    ),
    ("header only", None, "rep,estimator,parameter,estimate,se,truth\n", [], "at least one record"),
    ("empty file", None, "", [], ("INPUT = '", "Empty CSV")),
    ("unknown policy", _records, None, ["--policy", "strict"], "--policy = 'strict'"),
    ("level above 1", _records, None, ["--level", "1.5"], "--level = 1.5"),
    ("level 0", _records, None, ["--level", "0"], "--level = 0.0"),
    ("rhat-max below 1", _records, None, ["--rhat-max", "0.5"], "--rhat-max = 0.5"),
    ("negative ess-min", _records, None, ["--ess-min", "-1"], "--ess-min = -1.0"),
    (
        "infinite --truth",
        lambda: _records().drop(columns="truth"),
        None,
        ["--truth", "inf"],
        "--truth = inf",
    ),
    ("unknown reference", _records, None, ["--reference", "bogus"], "--reference = 'bogus'"),
    (
        "repeated records",
        lambda: pd.concat([_records(), _records().iloc[[3, 3, 9]]]),
        None,
        [],
        ("2 repeated rows", "rep 3", "estimator ml", "parameter beta", "--dedupe"),
    ),
]


@pytest.mark.parametrize(
    ("records", "text", "extra", "expected"),
    [c[1:] for c in AGGREGATE],
    ids=[c[0] for c in AGGREGATE],
)
def test_bad_aggregate_input_exits_2_leaving_results(
    tmp_path, capsys, no_compile, records, text, extra, expected
):
    csv = tmp_path / "runs.csv"
    if records is None:
        csv.write_text(text)
    else:
        records().to_csv(csv, index=False)
    summary = tmp_path / "runs-summary.parquet"  # an earlier summary, to be left alone
    pd.DataFrame({"measure": ["bias"], "value": [0.02]}).to_parquet(summary)
    before = _tree(tmp_path)
    rc = main(["aggregate", str(csv), *extra])
    captured = capsys.readouterr()
    _check(rc, captured.out + captured.err, expected)
    assert _tree(tmp_path) == before
    assert not no_compile


def test_aggregate_paths_that_cannot_be_read_or_written(tmp_path, capsys):
    notes = tmp_path / "runs.txt"
    notes.write_text("rep,estimate\n1,2\n")
    assert main(["aggregate", str(notes)]) == 2
    _check(2, capsys.readouterr().err, f"INPUT = '{notes}'")
    csv = tmp_path / "runs.csv"
    _records().to_csv(csv, index=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["aggregate", str(csv), "--out", str(blocker / "s.parquet")]) == 2
    _check(2, capsys.readouterr().err, (f"--out = '{blocker / 's.parquet'}'", "is a file"))
    assert main(["aggregate", str(csv), "--tables", str(blocker / "t")]) == 2
    _check(2, capsys.readouterr().err, "--tables = ")
    assert not (tmp_path / "runs-summary.parquet").exists()


# --- fits that ran but did not converge are flagged ------------------------------------------


def test_unconverged_fits_are_flagged_in_the_printed_summary(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for n in (3, 100):
        for rep in range(10):
            for est in ("bayes", "ols"):
                mcmc, bad = est == "bayes", est == "bayes" and n == 3 and rep < 6
                rows.append(
                    {"N": n, "rep": rep, "estimator": est, "parameter": "y~x", "truth": 0.5,
                     "estimate": 0.5 + rng.normal(0, 0.1), "se": 0.1,
                     "rhat": (2.96 if bad else 1.0) if mcmc else np.nan,
                     "ess_bulk": (5.0 if bad else 900.0) if mcmc else np.nan,
                     "ess_tail": 900.0 if mcmc else np.nan, "seconds": 1.0}
                )  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    assert main(["aggregate", str(tmp_path / "r.csv"), "--reference", "ols"]) == 0
    out = capsys.readouterr().out
    assert "bayes at N=3: 6 of 10 fits (max R-hat 2.96, min bulk ESS 5), included" in out
    assert "R-hat > 1.01 or bulk ESS < 400" in out
    assert "N=100" not in out.split("did not converge")[1]  # the converged condition is not named
    summary = pd.read_parquet(tmp_path / "r-summary.parquet")
    rate = summary[summary["measure"] == "unconverged_rate"].set_index(["N", "estimator"])
    assert rate.loc[(3, "bayes"), "value"] == 0.6 and rate.loc[(100, "bayes"), "value"] == 0
    assert rate.loc[(3, "ols"), "n_reps"] == 0  # not an MCMC fit

    from simstudy.aggregate import summarise
    from simstudy.aggregate.terminal import print_summary

    print_summary(summarise(pd.DataFrame(rows), reference="ols"), ["N"], title="t")
    printed = capsys.readouterr().out
    assert "not conv." in printed and "6/10 !" in printed and "0/10" in printed
    assert "6 of 10 fits" in printed
