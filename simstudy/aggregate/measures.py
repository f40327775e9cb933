"""Performance measures per condition × estimator × parameter, each with its MCSE.

Formulas follow Morris, White & Crowther (2019, Stat Med 38:2074, Table 6). Measures use the
replications whose fit succeeded (``status == 'ok'``); ``failure_rate`` counts the others.
Pure NumPy/pandas: results produced by any program in the replication schema can be summarised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns of the replication schema that are not design factors.
RECORD_COLUMNS = (
    "study",
    "condition_id",
    "rep",
    "seed",
    "estimator",
    "parameter",
    "truth",
    "estimate",
    "se",
    "lower",
    "upper",
    "ess_bulk",
    "ess_tail",
    "rhat",
    "n_divergent",
    "status",
    "error",
    "seconds",
)
KEYS = ["condition_id", "estimator", "parameter"]
SUMMARY_COLUMNS = ["measure", "value", "mcse", "n_reps"]


def factor_columns(records: pd.DataFrame) -> list[str]:
    """Design-factor columns: everything that is not a known record column."""
    return [c for c in records.columns if c not in RECORD_COLUMNS]


def _long(groups: pd.DataFrame, measure: str, value: pd.Series, mcse: pd.Series) -> pd.DataFrame:
    out = groups[["n_reps"]].copy()
    out["measure"] = measure
    out["value"] = value.astype(float)
    out["mcse"] = mcse.astype(float)
    return out


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Performance measures with MCSEs, in the long summary schema.

    Parameters
    ----------
    records
        Replication records (one row per condition × rep × estimator × parameter).

    Returns
    -------
    pandas.DataFrame
        Design-factor columns, ``condition_id``, ``estimator``, ``parameter``, ``measure``,
        ``value``, ``mcse`` and ``n_reps`` (replications used). Measures: ``bias``,
        ``rel_bias`` (NaN when the truth is 0), ``empse``, ``modelse``, ``mse``, ``rmse``,
        ``coverage``, ``ess_bulk``, ``ess_tail``, ``failure_rate`` (its ``n_reps`` counts all
        replications). MCSEs need at least two replications and are NaN otherwise.
    """
    factors = factor_columns(records)
    keys = [*factors, *KEYS]
    ok = records["status"] == "ok"
    # Failure rate over all replications, whatever their status.
    all_groups = records.assign(failed=(~ok).astype(float)).groupby(keys, dropna=False, sort=True)
    fail = all_groups["failed"].agg(["mean", "count"])
    fail_long = pd.DataFrame({"n_reps": fail["count"]})
    fail_long = _long(
        fail_long,
        "failure_rate",
        fail["mean"],
        np.sqrt(fail["mean"] * (1 - fail["mean"]) / fail["count"]),
    )

    good = records.loc[ok].copy()
    err = good["estimate"] - good["truth"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(good["truth"] != 0, err / good["truth"], np.nan)
    good = good.assign(
        err=err,
        sq=err**2,
        rel=rel,
        se2=good["se"] ** 2,
        covered=((good["lower"] <= good["truth"]) & (good["truth"] <= good["upper"])).astype(float),
    )
    g = good.groupby(keys, dropna=False, sort=True)
    n = g.size().rename("n_reps")
    mean = g[["err", "sq", "rel", "se2", "covered", "estimate", "ess_bulk", "ess_tail"]].mean()
    var = g[["err", "sq", "rel", "se2", "estimate", "ess_bulk", "ess_tail"]].var(ddof=1)
    base = n.to_frame()
    sqrt_n = np.sqrt(n)

    empse = np.sqrt(var["estimate"])
    modelse = np.sqrt(mean["se2"])
    rmse = np.sqrt(mean["sq"])
    mcse_mse = np.sqrt(var["sq"] / n)
    cover = mean["covered"]
    rel_ok = g["rel"].count() == n  # truth 0 gives NaN relative errors: the measure is NaN
    parts = [
        _long(base, "bias", mean["err"], np.sqrt(var["err"]) / sqrt_n),
        _long(
            base,
            "rel_bias",
            mean["rel"].where(rel_ok),
            (np.sqrt(var["rel"]) / sqrt_n).where(rel_ok),
        ),
        _long(base, "empse", empse, empse / np.sqrt(2 * (n - 1))),
        _long(base, "modelse", modelse, np.sqrt(var["se2"] / (4 * n * mean["se2"]))),
        _long(base, "mse", mean["sq"], mcse_mse),
        _long(base, "rmse", rmse, mcse_mse / (2 * rmse)),
        _long(base, "coverage", cover, np.sqrt(cover * (1 - cover) / n)),
        _long(base, "ess_bulk", mean["ess_bulk"], np.sqrt(var["ess_bulk"]) / sqrt_n),
        _long(base, "ess_tail", mean["ess_tail"], np.sqrt(var["ess_tail"]) / sqrt_n),
        fail_long,
    ]
    out = pd.concat(parts).reset_index()
    out["n_reps"] = out["n_reps"].astype("int64")
    # n = 1 leaves variances undefined: MCSEs are NaN (pandas var with ddof=1), never an error.
    return (
        out[[*keys, *SUMMARY_COLUMNS]]
        .sort_values([*keys, "measure"], kind="stable")
        .reset_index(drop=True)
    )
