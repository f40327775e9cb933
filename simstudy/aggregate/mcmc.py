"""MCMC efficiency and convergence measures, over every successful fit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from simstudy.aggregate.measures import Measures

NOTE_NOT_MCMC = "not an MCMC fit"
NOTE_MINIMUM = "minimum: no MCSE"


def mcmc_measures(
    records: pd.DataFrame, keys: Sequence[str], out: Measures, rhat_max: float
) -> None:
    """Add ESS (mean and minimum), ESS per second, R-hat and divergence rates, fit seconds.

    Computed over every successful fit, whatever the convergence policy, so that the policy's
    exclusions can be judged; ``n_reps`` of these rows counts those fits.
    """
    ok = records.loc[records["status"] == "ok"]
    ok = ok.assign(
        ess_ps=ok["ess_bulk"] / ok["seconds"],
        rhat_bad=np.where(ok["rhat"].isna(), np.nan, (ok["rhat"] > rhat_max).astype(float)),
        divergent=(ok["n_divergent"] > 0).astype(float),
    )
    g = ok.groupby(list(keys), dropna=False, sort=True)
    cols = ["ess_bulk", "ess_tail", "ess_ps", "rhat_bad", "divergent", "seconds"]
    mean = g[cols].mean().reindex(out.index)
    sd = g[cols].std(ddof=1).reindex(out.index)
    count = g[cols].count().reindex(out.index).fillna(0)
    n = g.size().reindex(out.index).fillna(0)
    mcmc = count["ess_bulk"] > 0
    note = pd.Series(np.where(mcmc, "", NOTE_NOT_MCMC), index=out.index)

    def se(col: str) -> pd.Series:
        return sd[col] / np.sqrt(count[col])

    out.add("ess_bulk", mean["ess_bulk"], se("ess_bulk"), n=n, note=note)
    out.add("ess_bulk_min", g["ess_bulk"].min(), np.nan, n=n, note=note.where(~mcmc, NOTE_MINIMUM))
    out.add("ess_tail", mean["ess_tail"], se("ess_tail"), n=n, note=note)
    out.add("ess_tail_min", g["ess_tail"].min(), np.nan, n=n, note=note.where(~mcmc, NOTE_MINIMUM))
    out.add("ess_per_second", mean["ess_ps"], se("ess_ps"), n=n, note=note)
    p = mean["rhat_bad"]
    out.add("rhat_fail_rate", p, np.sqrt(p * (1 - p) / count["rhat_bad"]), n=n, note=note)
    p = mean["divergent"]
    out.add("divergent_rate", p.where(mcmc), np.sqrt(p * (1 - p) / n).where(mcmc), n=n, note=note)
    out.add("seconds", mean["seconds"], se("seconds"), n=n)


def fit_convergence(
    records: pd.DataFrame, by: Sequence[str], rhat_max: float = 1.01, ess_min: float = 400
) -> pd.DataFrame:
    """Per group of ``by``: how many fits reached R-hat and bulk ESS targets on all their rows.

    A fit is one (``by``, ``estimator``, ``rep``) of the successful ``records`` (filter the
    parameters first to judge only some). Columns: ``fits``, ``converged`` (share with max
    R-hat <= ``rhat_max`` and min ESS bulk >= ``ess_min``), ``min_ess`` and ``median_ess`` of
    the per-fit minimum ESS, ``max_rhat``, mean ``seconds`` per fit.
    """
    ok = records.loc[records["status"] == "ok"]
    per_fit = ok.groupby([*by, "estimator", "rep"]).agg(
        rhat=("rhat", "max"), ess=("ess_bulk", "min"), seconds=("seconds", "first")
    )
    per_fit["ok"] = (per_fit["rhat"] <= rhat_max) & (per_fit["ess"] >= ess_min)
    return per_fit.groupby(list(by)).agg(
        fits=("ok", "size"),
        converged=("ok", "mean"),
        min_ess=("ess", "min"),
        median_ess=("ess", "median"),
        max_rhat=("rhat", "max"),
        seconds=("seconds", "mean"),
    )
