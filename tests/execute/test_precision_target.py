"""Replications to a target precision: each condition stops where its MCSE says."""

import json

import pandas as pd
import pytest
from conftest import TINY, numbers, records_of

from simstudy.aggregate.precision import target_reached
from simstudy.cli import main
from simstudy.config import PrecisionTarget

OLS = [
    *TINY,
    "executor=synchronous",
    "executor.batch_size=10",
    "study.estimators=[ols_cc]",
    "study.factors.N=[60,200]",
    "study.factors.mechanism=[MCAR]",
    "study.reps=300",
]
TARGET = "study.target={measure: bias, mcse: 0.02, parameters: ['y~x'], min_reps: 20}"


# slow tier (default-tier time); the cheap check of the same: the stop rule:
# test_target_needs_min_reps and the exclusion test below
@pytest.mark.slow
def test_each_condition_stops_at_its_target_with_the_numbers_of_a_fixed_run(run_cli, tmp_path):
    rc, out = run_cli(*OLS, TARGET)
    assert rc == 0, out
    study = tmp_path / "results" / "tiny"
    records = records_of(study)
    precision = json.loads((study / "precision.json").read_text())["conditions"]
    reps = records.groupby("condition_id")["rep"].nunique()
    target = PrecisionTarget("bias", 0.02, ("y~x",), (), 20)
    for cid, entry in precision.items():
        assert entry["reached"], entry
        n = entry["reps"]
        assert reps[cid] == n < 300
        mine = records[records["condition_id"] == cid]
        # reached with the reps it ran, not with one batch fewer
        assert target_reached(mine, target)[0]
        assert not target_reached(mine[mine["rep"] < n - 10], target)[0]
    # the small condition needs more replications than the large one
    by_n = {entry["condition"]["N"]: entry["reps"] for entry in precision.values()}
    assert by_n[60] > by_n[200]
    # rep r has the numbers of a fixed-reps run (of the large condition: fewer reps to run)
    fixed = tmp_path / "fixed"
    large = ["study.factors.N=[200]", f"study.reps={by_n[200]}"]
    assert run_cli(*OLS, *large, results=fixed)[0] == 0
    stopped = records[records["N"] == 200].reset_index(drop=True)
    pd.testing.assert_frame_equal(numbers(records_of(fixed / "tiny")), numbers(stopped))
    # a rerun adds nothing
    rc, out = run_cli(*OLS, TARGET)
    assert rc == 0 and "nothing to run" in out
    # the report says per condition how many replications ran and why they stopped
    assert main(["report", str(study)]) == 0
    page = (study / "report.html").read_text()
    assert "Replications per condition" in page and "target reached" in page
    assert f">{by_n[60]}<" in page


def test_a_bad_target_is_refused(run_cli):
    for override, field in (
        ("study.target={measure: cov, mcse: 0.01}", "study.target.measure"),
        ("study.target={measure: coverage, mcse: 0}", "study.target.mcse"),
        ("study.target={measure: coverage, mcse: 0.01, estimators: [nope]}", "estimators[0]"),
        ("study.target={measure: coverage, mcse: 0.01, extra: 1}", "extra"),
    ):
        rc, out = run_cli(*OLS, override)
        assert rc == 2 and field in out, out


@pytest.mark.parametrize("n, reached", [(5, False), (200, True)])
def test_target_needs_min_reps(n, reached):
    rows = [
        {
            "rep": r,
            "estimator": "e",
            "parameter": "b",
            "truth": 0.0,
            "estimate": 0.01 * (r % 3),
            "se": 1.0,
            "condition_id": "c",
        }
        for r in range(n)
    ]
    ok, why = target_reached(pd.DataFrame(rows), PrecisionTarget("bias", 0.05, min_reps=10))
    assert ok is reached and (("fewer than" in why) != reached)


def test_a_fit_excluded_by_another_parameter_stays_excluded_in_the_check():
    """The check summarises only the targeted parameter, but the converged policy drops a
    whole fit when any of its parameters did not converge."""
    from simstudy.aggregate import ConvergencePolicy

    rows = [
        {
            "rep": r,
            "estimator": "e",
            "parameter": p,
            "truth": 0.0,
            "estimate": 0.01 * (r % 3) + (5.0 if r < 10 and p == "b" else 0.0),
            "se": 1.0,
            "condition_id": "c",
            "status": "ok",
            "rhat": 1.5 if (r < 10 and p == "a") else 1.0,
            "ess_bulk": 1000.0,
            "n_divergent": 0,
        }
        for r in range(40)
        for p in ("a", "b")
    ]
    target = PrecisionTarget("bias", 0.05, ("b",), (), 10)
    records = pd.DataFrame(rows)
    # with every fit used, the first 10 replications' far-off estimates of b miss the target
    assert not target_reached(records, target, policy=ConvergencePolicy("all"))[0]
    # those fits did not converge on a: the converged policy drops them, b's too
    ok, why = target_reached(records, target, policy=ConvergencePolicy("converged", 1.01, 400))
    assert ok, why
