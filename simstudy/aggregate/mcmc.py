"""MCMC efficiency and convergence measures, over every successful fit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from simstudy.aggregate.measures import Measures

NOTE_NOT_MCMC = "not an MCMC fit"
NOTE_MINIMUM = "minimum: no MCSE"


def mcmc_measures(
    records: pd.DataFrame,
    keys: Sequence[str],
    out: Measures,
    rhat_max: float,
    ess_min: float = 400.0,
) -> None:
    """Add ESS (mean and minimum), ESS per second, R-hat and divergence rates, fit seconds.

    Computed over every successful fit, whatever the convergence policy, so that the policy's
    exclusions can be judged; ``n_reps`` of these rows counts those fits. ``rhat_max`` (the
    largest R-hat of the parameter over fits, no MCSE) and ``unconverged_rate``: the share
    of MCMC fits (a replication × estimator, all its estimands together) with some R-hat >
    ``rhat_max`` or bulk ESS < ``ess_min``, the same on every estimand of the fit's group;
    its note names the thresholds.
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
    out.add("rhat_max", g["rhat"].max(), np.nan, n=n, note=note.where(~mcmc, "maximum: no MCSE"))
    rate, fits = _unconverged(ok, keys, rhat_max, ess_min, out.index)
    out.add(
        "unconverged_rate",
        rate,
        np.sqrt(rate * (1 - rate) / fits),
        n=fits,
        note=pd.Series(
            np.where(fits > 0, f"R-hat > {rhat_max:g} or bulk ESS < {ess_min:g}", NOTE_NOT_MCMC),
            index=out.index,
        ),
    )
    out.add("seconds", mean["seconds"], se("seconds"), n=n)


def _unconverged(
    ok: pd.DataFrame, keys: Sequence[str], rhat_max: float, ess_min: float, index: pd.Index
) -> tuple[pd.Series, pd.Series]:
    """Per group: the share of MCMC fits not converged on all their estimands, and the fits."""
    group = [k for k in keys if k != "parameter"]
    per_fit = ok.groupby([*group, "rep"], dropna=False, sort=True).agg(
        rhat=("rhat", "max"), ess=("ess_bulk", "min")
    )
    mcmc = per_fit["rhat"].notna() | per_fit["ess"].notna()
    bad = ((per_fit["rhat"] > rhat_max) | (per_fit["ess"] < ess_min)) & mcmc
    by = per_fit.assign(bad=bad.astype(float), mcmc=mcmc.astype(float)).groupby(
        level=list(range(len(group))), dropna=False, sort=True
    )
    fits, k = by["mcmc"].sum(), by["bad"].sum()
    if len(group) == 1:
        fits.index, k.index = fits.index.get_level_values(0), k.index.get_level_values(0)
    # broadcast from (factors, condition, estimator) to every parameter of the group
    frame = index.to_frame(index=False)
    at = pd.MultiIndex.from_frame(frame[group]) if len(group) > 1 else pd.Index(frame[group[0]])
    n_fits = pd.Series(fits.reindex(at).fillna(0).to_numpy(), index=index)
    n_bad = pd.Series(k.reindex(at).fillna(0).to_numpy(), index=index)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (n_bad / n_fits).where(n_fits > 0)
    return rate, n_fits


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
