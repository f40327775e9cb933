"""Simulation-based calibration: rank histograms and a uniformity test per parameter.

Under a calibrated posterior the rank of the prior draw among ``L`` posterior draws is uniform
on ``0 .. L`` (Talts, Betancourt, Simpson, Vehtari & Gelman 2018). Ranks are binned into
``SBC_BINS`` bins (fewer when there are few replications), and a chi-square test compares the
bin counts with their exact expected shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from simstudy.aggregate.measures import Measures

SBC_BINS = 10
SBC_COLUMNS = ("sbc_rank", "sbc_draws")


def rank_histogram(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ranks in ``bins`` bins of ``0 .. n_draws`` and each bin's expected share."""
    edges = np.floor(np.arange(n_draws + 1) * bins / (n_draws + 1)).astype(int)  # bin of each rank
    counts = np.bincount(edges[np.clip(ranks, 0, n_draws)], minlength=bins)
    share = np.bincount(edges, minlength=bins) / (n_draws + 1)
    return counts, share


def uniformity_p_value(counts: np.ndarray, share: np.ndarray) -> float:
    """Chi-square goodness-of-fit p-value of rank counts against uniform ranks."""
    n = counts.sum()
    expected = n * share
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, len(counts) - 1))


def bins_for(n: int) -> int:
    """Histogram bins for ``n`` replications: 10, or fewer so that each expects >= 5."""
    return int(max(2, min(SBC_BINS, n // 5)))


def sbc_measures(
    records: pd.DataFrame,
    keys: Sequence[str],
    out: Measures,
    rhat_max: float = 1.01,
    ess_min: float = 400.0,
) -> None:
    """Add SBC measures for every group with ranks.

    ``sbc_p_value`` (chi-square test of uniform ranks), ``sbc_rank_mean`` (rank / L, 0.5 when
    calibrated, with its MCSE), the histogram counts ``sbc_bin_01``, ``sbc_bin_02``, ... and
    ``sbc_converged``: the share of fits (a replication × estimator, failed ones included) with
    R-hat <= ``rhat_max`` and bulk ESS >= ``ess_min`` on every estimand; ranks of unconverged
    fits say little about calibration.
    """
    ok = records[(records["status"] == "ok") & records["sbc_rank"].notna()]
    if ok.empty:
        return
    values: dict[str, dict] = {}
    shares = converged_share(records, [k for k in keys if k != "parameter"], rhat_max, ess_min)
    fits: dict[tuple, int] = {}
    for group, part in ok.groupby(list(keys), dropna=False, sort=True):
        n_draws = int(part["sbc_draws"].iloc[0])
        ranks = part["sbc_rank"].to_numpy(dtype=int)
        bins = bins_for(len(ranks))
        counts, share = rank_histogram(ranks, n_draws, bins)
        u = ranks / n_draws
        values.setdefault("sbc_p_value", {})[group] = (uniformity_p_value(counts, share), np.nan)
        values.setdefault("sbc_rank_mean", {})[group] = (
            u.mean(),
            u.std(ddof=1) / np.sqrt(len(u)) if len(u) > 1 else np.nan,
        )
        for k, c in enumerate(counts):
            values.setdefault(f"sbc_bin_{k + 1:02d}", {})[group] = (float(c), np.nan)
        share, fits[group] = shares.loc[
            tuple(v for k, v in zip(keys, group, strict=True) if k != "parameter")
        ]
        mcse = np.sqrt(share * (1 - share) / fits[group])
        values.setdefault("sbc_converged", {})[group] = (share, mcse)
    notes = {
        "sbc_p_value": "chi-square test of uniform ranks",
        "sbc_converged": f"R-hat <= {rhat_max:g} and bulk ESS >= {ess_min:g} on every estimand",
    }
    for measure, by_group in values.items():
        index = pd.MultiIndex.from_tuples(list(by_group), names=list(keys))
        value = pd.Series([v[0] for v in by_group.values()], index=index)
        mcse = pd.Series([v[1] for v in by_group.values()], index=index)
        counted = measure == "sbc_converged"  # counts fits, failed ones included
        n = pd.Series([fits[g] for g in by_group], index=index) if counted else None
        note = notes.get(measure, "rank histogram count" if measure.startswith("sbc_bin_") else "")
        out.add(measure, value, mcse, n=n, only=index, note=note)


def converged_share(
    records: pd.DataFrame, group: Sequence[str], rhat_max: float, ess_min: float
) -> pd.DataFrame:
    """Per group: ``share`` of fits converged on every estimand, and the ``fits``.

    A fit is a (group, ``rep``); it converged when every row is ``ok`` with R-hat <=
    ``rhat_max`` and bulk ESS >= ``ess_min`` (a failed fit did not).
    """
    good = (records["status"] == "ok") & (records["rhat"] <= rhat_max)
    good &= records["ess_bulk"] >= ess_min
    per_fit = good.groupby([records[g] for g in (*group, "rep")], dropna=False).all()
    by = per_fit.groupby(level=list(range(len(group))), dropna=False)
    return pd.DataFrame({"share": by.mean().astype(float), "fits": by.size()})
