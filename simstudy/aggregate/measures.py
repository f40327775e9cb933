"""Performance measures per condition × estimator × parameter, each with its MCSE.

Formulas follow Morris, White & Crowther (2019, Stat Med 38:2074, Table 6) and Stata's
``simsum``; ``n`` is the number of replications used (successful and not excluded by the
convergence policy). MCSEs need ``n >= 2``; otherwise they are NaN with a note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simstudy.aggregate.policy import ConvergencePolicy
from simstudy.aggregate.prepare import factor_columns

KEYS = ["condition_id", "estimator", "parameter"]
SUMMARY_COLUMNS = ["measure", "value", "mcse", "n_reps", "n_excluded", "reference", "note"]
NOTE_ONE_REP = "one replication: MCSE undefined"
NOTE_NO_REPS = "no usable replications"
NOTE_TRUTH_ZERO = "truth is 0: relative bias undefined"
Z95 = 1.959963984540054


#: Measures that are proportions of replications (their intervals: :func:`wilson_interval`).
PROPORTIONS = frozenset(
    {"coverage", "be_coverage", "power", "failure_rate", "unconverged_rate", "rhat_fail_rate"}
)


def wilson_interval(
    p: np.ndarray | pd.Series | float, n: np.ndarray | pd.Series | float, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``p`` of ``n`` replications, inside [0, 1].

    Unlike ``p ± z·MCSE`` it never leaves [0, 1] and is not empty at ``p`` = 0 or 1
    (Wilson 1927); NaN where ``n`` < 1 or ``p`` is NaN.
    """
    p = np.asarray(p, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(n >= 1, n, np.nan)
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def interval(
    measure: str,
    value: np.ndarray | pd.Series | float,
    mcse: np.ndarray | pd.Series | float,
    n: np.ndarray | pd.Series | float,
    z: float = Z95,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo 95% interval of a measure: Wilson for a proportion, else value ± z·MCSE.

    A missing MCSE (one replication) gives a zero-width interval.
    """
    if measure in PROPORTIONS:
        return wilson_interval(value, n, z)
    value = np.asarray(value, dtype=float)
    half = z * np.nan_to_num(np.asarray(mcse, dtype=float))
    return value - half, value + half


class Measures:
    """Collects measures of groups into the long summary format."""

    def __init__(self, index: pd.Index, n: pd.Series, n_excluded: pd.Series) -> None:
        self.index, self.n, self.n_excluded = index, n, n_excluded
        self.parts: list[pd.DataFrame] = []

    def add(
        self,
        measure: str,
        value: pd.Series,
        mcse: pd.Series | float,
        *,
        n: pd.Series | None = None,
        note: pd.Series | str = "",
        reference: str = "",
        only: pd.Index | None = None,
    ) -> None:
        """Add one measure for every group (or for the groups in ``only``)."""
        n = self.n if n is None else n
        index = self.index if only is None else only
        frame = pd.DataFrame(index=index)
        frame["measure"] = measure
        frame["value"] = pd.Series(value, dtype=float).reindex(index)
        mcse = pd.Series(mcse, index=index, dtype=float) if np.isscalar(mcse) else mcse
        frame["mcse"] = pd.Series(mcse, dtype=float).reindex(index)
        frame["n_reps"] = n.reindex(index).fillna(0).astype("int64")
        frame["n_excluded"] = self.n_excluded.reindex(index).fillna(0).astype("int64")
        frame["reference"] = reference
        default = np.where(frame["n_reps"] == 0, NOTE_NO_REPS, "")
        default = np.where(frame["n_reps"] == 1, NOTE_ONE_REP, default)
        if isinstance(note, pd.Series):
            note = note.reindex(index).fillna("")
            frame["note"] = np.where(note != "", note, default)
        else:
            frame["note"] = note or default
        self.parts.append(frame)

    def frame(self) -> pd.DataFrame:
        """All measures so far, long, with the group keys as columns."""
        if not self.parts:
            return pd.DataFrame()
        return pd.concat(self.parts).reset_index()


def usable(records: pd.DataFrame, policy: ConvergencePolicy) -> tuple[pd.Series, pd.Series]:
    """Masks of rows used by the measures and rows excluded by the convergence policy."""
    excluded = policy.excluded(records)
    return (records["status"] == "ok") & ~excluded, excluded


def performance(
    records: pd.DataFrame, policy: ConvergencePolicy | None = None
) -> tuple[Measures, list[str]]:
    """Bias, precision, coverage and failure measures for every group.

    Parameters
    ----------
    records
        Prepared replication records (see :func:`~simstudy.aggregate.prepare.prepare_records`).
    policy
        Convergence policy; default uses every successful fit.

    Returns
    -------
    Measures, list of str
        The measures, and the group key columns (design factors, then ``KEYS``).
    """
    policy = policy or ConvergencePolicy()
    keys = [*factor_columns(records), *KEYS]
    used, excluded = usable(records, policy)
    everything = records.assign(
        failed=(records["status"] != "ok").astype(float), excluded=excluded.astype(float)
    ).groupby(keys, dropna=False, sort=True)
    index = everything.size().index
    n_all = everything.size()

    good = records.loc[used]
    err = good["estimate"] - good["truth"]
    theta_bar = good.groupby(keys, dropna=False)["estimate"].transform("mean")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(good["truth"] != 0, err / good["truth"], np.nan)
    good = good.assign(
        err=err,
        sq=err**2,
        rel=rel,
        se2=good["se"] ** 2,
        width=good["upper"] - good["lower"],
        covered=((good["lower"] <= good["truth"]) & (good["truth"] <= good["upper"])).astype(float),
        be_covered=((good["lower"] <= theta_bar) & (theta_bar <= good["upper"])).astype(float),
        power=((good["lower"] > 0) | (good["upper"] < 0)).astype(float),
        truth_zero=(good["truth"] == 0).astype(float),
    )
    g = good.groupby(keys, dropna=False, sort=True)
    cols = ["err", "sq", "rel", "se2", "width", "covered", "be_covered", "power", "estimate"]
    mean = g[cols].mean().reindex(index)
    var = g[cols].var(ddof=1).reindex(index)
    n = g.size().reindex(index).fillna(0)
    out = Measures(index, n, everything["excluded"].sum())
    sqrt_n = np.sqrt(n)

    out.add("bias", mean["err"], np.sqrt(var["err"]) / sqrt_n)
    zero = g["truth_zero"].max().reindex(index) > 0
    out.add(
        "rel_bias",
        mean["rel"].where(~zero),
        (np.sqrt(var["rel"]) / sqrt_n).where(~zero),
        note=pd.Series(np.where(zero, NOTE_TRUTH_ZERO, ""), index=index),
    )
    empse = np.sqrt(var["estimate"])
    out.add("empse", empse, empse / np.sqrt(2 * (n - 1)))
    modelse = np.sqrt(mean["se2"])
    out.add("modelse", modelse, np.sqrt(var["se2"] / (4 * n * mean["se2"])))
    ratio = modelse / empse
    out.add(
        "rel_error_modelse",
        100 * (ratio - 1),
        100 * ratio * np.sqrt(var["se2"] / (4 * n * mean["se2"] ** 2) + 1 / (2 * (n - 1))),
    )
    mcse_mse = np.sqrt(var["sq"] / n)
    out.add("mse", mean["sq"], mcse_mse)
    rmse = np.sqrt(mean["sq"])
    out.add("rmse", rmse, mcse_mse / (2 * rmse))
    for name, col in (("coverage", "covered"), ("be_coverage", "be_covered"), ("power", "power")):
        p = mean[col]
        out.add(name, p, np.sqrt(p * (1 - p) / n))
    out.add("width", mean["width"], np.sqrt(var["width"] / n))
    fail = everything["failed"].mean()
    out.add("failure_rate", fail, np.sqrt(fail * (1 - fail) / n_all), n=n_all, note="")
    # the population value (Mplus's "Population" column), over every record: known exactly
    truth = everything["truth"].mean()
    out.add("truth", truth, truth * 0.0, n=n_all, note="")
    return out, keys
