"""Measures and MCSEs against values computed by hand (Morris et al. 2019, Table 6)."""

import math

import numpy as np
import pandas as pd
import pytest

from simstudy.aggregate import ConvergencePolicy, factor_columns, summarise
from simstudy.aggregate.mcmc import fit_convergence
from simstudy.errors import InputError


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
    assert "truth is 0" in s.loc[s["measure"] == "rel_bias", "note"].iloc[0]
    assert _measure(s, "bias")[0] == pytest.approx(np.mean([0.1, -0.2, 0.05]))


def test_single_replication_gives_nan_mcse_with_a_reason():
    s = summarise(_records([1.3], truth=1.0))
    bias, mcse, n = _measure(s, "bias")
    assert bias == pytest.approx(0.3) and math.isnan(mcse) and n == 1
    assert s.loc[s["measure"] == "bias", "note"].iloc[0] == "one replication: MCSE undefined"


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


def test_more_measures_by_hand():
    est = np.array([1.2, 0.8, 1.5, 1.1])
    se = np.array([0.3, 0.4, 0.5, 0.6])
    lower, upper = [0.9, 0.1, 1.1, -0.5], [1.5, 1.5, 1.9, 1.7]
    s = summarise(_records(list(est), truth=1.0, ses=list(se), lower=lower, upper=upper))
    n, mean = 4, est.mean()  # 1.15
    # bias-eliminated coverage: intervals containing the mean estimate 1.15 -> 4 of 4
    be, mcse, _ = _measure(s, "be_coverage")
    assert be == 1.0 and mcse == 0.0
    # power: intervals excluding 0 -> all but the last
    power, mcse, _ = _measure(s, "power")
    assert power == 0.75 and mcse == pytest.approx(math.sqrt(0.75 * 0.25 / n))
    width = np.subtract(upper, lower)
    w, mcse, _ = _measure(s, "width")
    assert w == pytest.approx(width.mean()) and mcse == pytest.approx(width.std(ddof=1) / 2)
    empse = est.std(ddof=1)
    modelse = math.sqrt((se**2).mean())
    value, mcse, _ = _measure(s, "rel_error_modelse")
    assert value == pytest.approx(100 * (modelse / empse - 1))
    expected = (
        100
        * (modelse / empse)
        * math.sqrt((se**2).var(ddof=1) / (4 * n * modelse**4) + 1 / (2 * (n - 1)))
    )
    assert mcse == pytest.approx(expected)
    assert mean == pytest.approx(1.15)


def _pair(ref_est, other_est, truth=0.0, other_status=None):
    a = _records(ref_est, truth=truth).assign(estimator="ref")
    b = _records(other_est, truth=truth, status=other_status).assign(estimator="new")
    return pd.concat([a, b], ignore_index=True)


def test_rmse_ratio_and_precision_by_hand():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1.0, 50)
    new = 0.5 * ref + rng.normal(0, 0.6, 50)
    s = summarise(_pair(list(ref), list(new)), reference="ref")
    row = s[(s["estimator"] == "new") & (s["measure"] == "rmse_ratio")].iloc[0]
    a, b = ref**2, new**2
    ratio = b.mean() / a.mean()
    assert row["value"] == pytest.approx(math.sqrt(ratio))
    # delta method for mean(b)/mean(a), then sqrt
    cov = np.cov(a, b, ddof=1)
    var_ratio = (cov[1, 1] - 2 * ratio * cov[0, 1] + ratio**2 * cov[0, 0]) / (50 * a.mean() ** 2)
    assert row["mcse"] == pytest.approx(math.sqrt(var_ratio) / (2 * math.sqrt(ratio)))
    assert row["reference"] == "ref" and row["n_reps"] == 50
    row = s[(s["estimator"] == "new") & (s["measure"] == "rel_precision")].iloc[0]
    v = np.var(ref, ddof=1) / np.var(new, ddof=1)
    rho = np.corrcoef(ref, new)[0, 1]
    assert row["value"] == pytest.approx(100 * (v - 1))
    assert row["mcse"] == pytest.approx(200 * v * math.sqrt((1 - rho**2) / 49))
    # no comparison rows for the reference itself
    assert s[(s["estimator"] == "ref") & (s["measure"] == "rmse_ratio")].empty


def test_paired_comparison_uses_only_reps_where_both_succeeded():
    ref = [0.1, -0.2, 0.3, 0.0, 0.5, -0.4]
    new = [0.2, 9.9, -0.1, 9.9, 0.4, -0.3]
    status = ["ok", "failed", "ok", "failed", "ok", "ok"]
    s = summarise(_pair(ref, new, other_status=status), reference="ref")
    row = s[(s["estimator"] == "new") & (s["measure"] == "rmse_ratio")].iloc[0]
    keep = [0, 2, 4, 5]
    expected = math.sqrt(np.mean(np.square(new)[keep]) / np.mean(np.square(ref)[keep]))
    assert row["value"] == pytest.approx(expected) and row["n_reps"] == 4


def test_ess_ratio_and_mcmc_measures():
    df = _pair([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    df.loc[df["estimator"] == "new", "ess_bulk"] = [200.0, 202.0, 204.0]
    df.loc[df["estimator"] == "new", "seconds"] = 2.0
    df["rhat"] = [1.0, 1.02, 1.0, 1.0, 1.0, 1.0]
    df["n_divergent"] = [0, 0, 3, 0, 0, 0]
    s = summarise(df, reference="ref").set_index(["estimator", "measure"])
    assert s.loc[("new", "ess_ratio"), "value"] == pytest.approx(202 / 101)
    assert s.loc[("new", "ess_per_second_ratio"), "value"] == pytest.approx(101 / 101)
    assert s.loc[("ref", "ess_bulk_min"), "value"] == 100.0
    assert math.isnan(s.loc[("ref", "ess_bulk_min"), "mcse"])
    assert s.loc[("ref", "rhat_fail_rate"), "value"] == pytest.approx(1 / 3)
    assert s.loc[("ref", "divergent_rate"), "value"] == pytest.approx(1 / 3)
    assert s.loc[("new", "ess_per_second"), "value"] == pytest.approx(101.0)
    assert s.loc[("ref", "seconds"), "value"] == 1.0


def test_convergence_policy_excludes_and_reports():
    df = _records([1.0, 1.1, 5.0, 0.9], truth=1.0)
    df["rhat"] = [1.0, 1.0, 1.3, 1.0]
    df["ess_bulk"] = [500.0, 450.0, 20.0, 100.0]
    s = summarise(df, policy=ConvergencePolicy("converged", rhat_max=1.01, ess_min=400))
    bias, _, used = _measure(s, "bias")
    row = s[s["measure"] == "bias"].iloc[0]
    assert used == 2 and row["n_excluded"] == 2
    assert bias == pytest.approx(0.05)
    # the MCMC measures still see every successful fit
    assert s[s["measure"] == "rhat_fail_rate"]["value"].iloc[0] == pytest.approx(0.25)
    s_all = summarise(df)
    assert s_all[s_all["measure"] == "bias"]["n_reps"].iloc[0] == 4
    with pytest.raises(InputError):
        ConvergencePolicy("strict")


def test_convergence_excludes_a_whole_fit_when_one_parameter_fails():
    a = _records([1.0, 1.1], truth=1.0)
    b = _records([2.0, 2.1], truth=2.0).assign(parameter="q", rhat=[1.0, 1.5])
    s = summarise(pd.concat([a, b]), policy=ConvergencePolicy("converged", ess_min=0))
    used = s[s["measure"] == "bias"].set_index("parameter")["n_reps"]
    assert used.to_dict() == {"p": 1, "q": 1}


def test_interval_from_se_when_bounds_absent_and_truth_given_once():
    df = _records([1.2, 0.8, 1.5, 1.1]).drop(columns=["lower", "upper", "truth"])
    s = summarise(df, truth=1.0, level=0.9)
    z = 1.6448536269514722
    covered = [abs(e - 1.0) <= z * 0.5 for e in [1.2, 0.8, 1.5, 1.1]]
    assert _measure(s, "coverage")[0] == pytest.approx(np.mean(covered))
    assert _measure(s, "width")[0] == pytest.approx(2 * z * 0.5)


def test_coverage_power_and_rates_stay_in_unit_interval():
    rng = np.random.default_rng(11)
    for _ in range(25):
        n = int(rng.integers(1, 30))
        est = rng.normal(0, 2, n)
        se = rng.uniform(0.01, 3, n)
        status = np.where(rng.uniform(size=n) < 0.2, "failed", "ok")
        s = summarise(
            _records(
                list(est),
                truth=float(rng.normal()),
                ses=list(se),
                lower=list(est - 2 * se),
                upper=list(est + 2 * se),
                status=list(status),
            )
        )
        for name in ("coverage", "be_coverage", "power", "failure_rate"):
            v = _measure(s, name)[0]
            assert math.isnan(v) or 0.0 <= v <= 1.0, (name, v)


def test_missing_columns_name_them():
    df = _records([1.0, 2.0]).drop(columns=["estimate", "truth", "se"])
    with pytest.raises(InputError) as err:
        summarise(df)
    assert err.value.field == "INPUT columns"
    assert "estimate" in err.value.value and "truth (or --truth)" in err.value.value


def test_fit_convergence_counts_fits_that_reach_every_target():
    rows = []
    # condition N=100: rep 0 converged on both parameters, rep 1 misses ESS on one, rep 2 failed
    for rep, (rhat_a, ess_b, status) in enumerate(
        [(1.005, 900.0, "ok"), (1.002, 350.0, "ok"), (float("nan"), float("nan"), "failed")]
    ):
        for par, rhat, ess in (("a", rhat_a, 1000.0), ("b", 1.001, ess_b)):
            rows.append(
                {"N": 100, "estimator": "bayes", "rep": rep, "parameter": par,
                 "rhat": rhat, "ess_bulk": ess, "seconds": 2.0, "status": status}
            )  # fmt: skip
    # condition N=200: one fit with R-hat above 1.01
    for par in ("a", "b"):
        rows.append(
            {"N": 200, "estimator": "bayes", "rep": 0, "parameter": par,
             "rhat": 1.02, "ess_bulk": 2000.0, "seconds": 4.0, "status": "ok"}
        )  # fmt: skip
    table = fit_convergence(pd.DataFrame(rows), ["N"])
    assert table.loc[100, "fits"] == 2 and table.loc[100, "converged"] == 0.5
    assert table.loc[100, "min_ess"] == 350 and table.loc[100, "max_rhat"] == 1.005
    assert table.loc[200, "converged"] == 0 and table.loc[200, "seconds"] == 4.0
    strict = fit_convergence(pd.DataFrame(rows), ["N"], ess_min=300)
    assert strict.loc[100, "converged"] == 1.0
