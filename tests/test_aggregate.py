"""Measures and MCSEs against values computed by hand (Morris et al. 2019, Table 6)."""

import math

import numpy as np
import pandas as pd
import pytest

from simstudy.aggregate import factor_columns, summarise


def _records(estimates, truth=1.0, ses=None, lower=None, upper=None, status=None, **factors):
    n = len(estimates)
    ses = ses if ses is not None else [0.5] * n
    lower = lower if lower is not None else [e - 1.0 for e in estimates]
    upper = upper if upper is not None else [e + 1.0 for e in estimates]
    return pd.DataFrame(
        {
            "study": "s",
            "condition_id": "c1",
            **{k: [v] * n for k, v in factors.items()},
            "rep": range(n),
            "seed": range(n),
            "estimator": "e",
            "parameter": "p",
            "truth": truth,
            "estimate": estimates,
            "se": ses,
            "lower": lower,
            "upper": upper,
            "ess_bulk": [100.0 + i for i in range(n)],
            "ess_tail": 50.0,
            "rhat": 1.0,
            "n_divergent": 0,
            "status": status or ["ok"] * n,
            "error": "",
            "seconds": 1.0,
        }
    )


def _measure(summary, name):
    row = summary.loc[summary["measure"] == name].iloc[0]
    return row["value"], row["mcse"], row["n_reps"]


def test_measures_by_hand():
    est = [1.2, 0.8, 1.5, 1.1]
    df = _records(
        est,
        truth=1.0,
        ses=[0.3, 0.4, 0.5, 0.6],
        lower=[0.9, 0.1, 1.1, 0.5],
        upper=[1.5, 1.5, 1.9, 1.7],
        N=10,
    )
    s = summarise(df)
    err = np.array(est) - 1.0
    n = 4
    bias, mcse, used = _measure(s, "bias")
    assert used == 4
    assert bias == pytest.approx(err.mean())
    assert mcse == pytest.approx(err.std(ddof=1) / math.sqrt(n))
    empse, mcse, _ = _measure(s, "empse")
    assert empse == pytest.approx(np.std(est, ddof=1))
    assert mcse == pytest.approx(empse / math.sqrt(2 * (n - 1)))
    modelse, mcse, _ = _measure(s, "modelse")
    se2 = np.array([0.3, 0.4, 0.5, 0.6]) ** 2
    assert modelse == pytest.approx(math.sqrt(se2.mean()))
    assert mcse == pytest.approx(math.sqrt(se2.var(ddof=1) / (4 * n * se2.mean())))
    mse, mcse_mse, _ = _measure(s, "mse")
    assert mse == pytest.approx((err**2).mean())
    assert mcse_mse == pytest.approx(math.sqrt((err**2).var(ddof=1) / n))
    rmse, mcse, _ = _measure(s, "rmse")
    assert rmse == pytest.approx(math.sqrt(mse))
    assert mcse == pytest.approx(mcse_mse / (2 * rmse))
    cover, mcse, _ = _measure(s, "coverage")
    assert cover == pytest.approx(0.75)  # the first interval [0.9, 1.5] ... third [1.1, 1.9] misses
    assert mcse == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    rel, mcse, _ = _measure(s, "rel_bias")
    assert rel == pytest.approx(err.mean())  # truth 1
    ess, _, _ = _measure(s, "ess_bulk")
    assert ess == pytest.approx(101.5)
    assert _measure(s, "failure_rate")[:2] == (0.0, 0.0)
    assert factor_columns(df) == ["N"]
    assert set(s.columns) >= {
        "N",
        "condition_id",
        "estimator",
        "parameter",
        "measure",
        "value",
        "mcse",
        "n_reps",
    }


def test_bias_shifts_by_c_and_spread_measures_do_not():
    est = [0.3, 0.7, 0.4, 0.9, 0.5]
    a = summarise(_records(est, truth=0.5))
    b = summarise(_records([e + 0.25 for e in est], truth=0.5))
    assert _measure(b, "bias")[0] == pytest.approx(_measure(a, "bias")[0] + 0.25)
    assert _measure(b, "empse")[0] == pytest.approx(_measure(a, "empse")[0])
    for name in ("coverage",):
        value = _measure(a, name)[0]
        assert 0.0 <= value <= 1.0


def test_truth_zero_gives_nan_relative_bias_not_an_error():
    s = summarise(_records([0.1, -0.2, 0.05], truth=0.0))
    rel, mcse, _ = _measure(s, "rel_bias")
    assert math.isnan(rel) and math.isnan(mcse)
    assert _measure(s, "bias")[0] == pytest.approx(np.mean([0.1, -0.2, 0.05]))


def test_single_replication_gives_nan_mcse():
    s = summarise(_records([1.3], truth=1.0))
    bias, mcse, n = _measure(s, "bias")
    assert bias == pytest.approx(0.3) and math.isnan(mcse) and n == 1


def test_failed_rows_count_in_failure_rate_and_not_in_measures():
    df = _records([1.2, np.nan, 0.8, np.nan], status=["ok", "failed", "ok", "failed"], truth=1.0)
    s = summarise(df)
    rate, mcse, n_all = _measure(s, "failure_rate")
    assert rate == 0.5 and n_all == 4 and mcse == pytest.approx(math.sqrt(0.25 / 4))
    bias, _, used = _measure(s, "bias")
    assert used == 2 and bias == pytest.approx(0.0)


def test_groups_by_condition_estimator_parameter():
    a = _records([1.0, 1.2], N=10)
    b = _records([2.0, 2.2], N=20).assign(condition_id="c2")
    c = _records([1.0, 1.4], N=10).assign(estimator="other")
    s = summarise(pd.concat([a, b, c]))
    bias = s[s["measure"] == "bias"].set_index(["N", "estimator"])["value"]
    assert bias.loc[(10, "e")] == pytest.approx(0.1)
    assert bias.loc[(20, "e")] == pytest.approx(1.1)
    assert bias.loc[(10, "other")] == pytest.approx(0.2)
