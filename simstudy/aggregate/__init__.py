"""Performance measures with Monte Carlo standard errors, from replication records.

Pure NumPy/pandas (and pyarrow for reading): results produced by any program in the
replication schema can be summarised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.aggregate.compare import comparisons
from simstudy.aggregate.mcmc import mcmc_measures
from simstudy.aggregate.measures import KEYS, SUMMARY_COLUMNS, performance, usable
from simstudy.aggregate.policy import ConvergencePolicy
from simstudy.aggregate.prepare import RECORD_COLUMNS, factor_columns, prepare_records
from simstudy.aggregate.sbc import sbc_measures
from simstudy.aggregate.stream import conditions
from simstudy.errors import InputError

__all__ = [
    "RECORD_COLUMNS",
    "ConvergencePolicy",
    "factor_columns",
    "summarise",
    "summarise_path",
    "summary_factors",
]


def summary_factors(summary: pd.DataFrame) -> list[str]:
    """The design-factor columns of a summary."""
    return [c for c in summary.columns if c not in (*KEYS, *SUMMARY_COLUMNS)]


def summarise(
    records: pd.DataFrame,
    reference: str | None = None,
    policy: ConvergencePolicy | None = None,
    truth: float | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every measure with its MCSE, in the long summary schema.

    Parameters
    ----------
    records
        Replication records (one row per condition × rep × estimator × parameter); extra
        columns are design factors.
    reference
        Estimator the others are compared with; default the first estimator in the records.
    policy
        Convergence policy (default: use all successful fits).
    truth, level
        Filled in where the records lack ``truth`` / ``lower`` and ``upper``.

    Returns
    -------
    pandas.DataFrame
        Design factors, ``condition_id``, ``estimator``, ``parameter``, then ``measure``,
        ``value``, ``mcse``, ``n_reps``, ``n_excluded``, ``reference`` and ``note``.
    """
    policy = policy or ConvergencePolicy()
    df = prepare_records(records, truth=truth, level=level)
    reference = reference or str(df["estimator"].iloc[0])
    # Undefined measures (no or one usable replication, zero variance) are NaN, not warnings.
    with np.errstate(all="ignore"):
        out, keys = performance(df, policy)
        mcmc_measures(df, keys, out, policy.rhat_max, policy.ess_min)
        used, _ = usable(df, policy)
        comparisons(df, used, keys, out, reference)
        if "sbc_rank" in df.columns:
            sbc_measures(df, keys, out, policy.rhat_max, policy.ess_min)
    frame = out.frame()
    frame = frame[[*keys, *SUMMARY_COLUMNS]]
    return frame.sort_values([*keys, "measure"], kind="stable").reset_index(drop=True)


def summarise_path(
    path: Path,
    reference: str | None = None,
    policy: ConvergencePolicy | None = None,
    truth: float | None = None,
    level: float = 0.95,
    design: tuple[set[str], int] | None = None,
    by: Sequence[str] | None = None,
    dedupe: bool = False,
) -> pd.DataFrame:
    """:func:`summarise` over a results directory, Parquet or CSV file, a condition at a time.

    Memory is bounded by the largest condition, not by the number of records. ``design``,
    ``(condition ids, reps)``: summarise only those conditions and replications ``< reps``
    (a study's current design, whatever else an earlier, larger design left on disk).
    ``by``: the design-factor columns of a single file (other extra columns are dropped).
    A (condition, rep, estimator, parameter) with more than one row raises
    :class:`InputError` naming it; ``dedupe=True`` keeps the first row of each instead, and
    the summary's ``attrs["duplicates_dropped"]`` says how many rows were dropped.
    """
    frames = []
    dropped = 0
    only = design[0] if design is not None else None
    with conditions(Path(path), truth, by, only) as parts:
        for part in parts:
            if design is not None:
                ids, reps = design
                part = part[part["condition_id"].isin(ids) & (part["rep"] < reps)]
                if part.empty:
                    continue
            part, n = _unique_records(part, path, dedupe)
            dropped += n
            # One reference for every condition: the first estimator of the first condition.
            reference = reference or str(part["estimator"].iloc[0])
            frames.append(summarise(part, reference, policy, truth, level))
    if not frames:
        raise InputError("INPUT", str(path), "records of at least one condition of the design")
    summary = pd.concat(frames, ignore_index=True)
    summary.attrs["duplicates_dropped"] = dropped
    return summary


#: What identifies one record: a replication may have one row per estimator and estimand.
RECORD_KEY = ["condition_id", "rep", "estimator", "parameter"]


def _unique_records(part: pd.DataFrame, path: Path, dedupe: bool) -> tuple[pd.DataFrame, int]:
    """A condition's records with each key once; refuse repeats unless ``dedupe``."""
    repeated = part.duplicated(RECORD_KEY, keep="first")
    n = int(repeated.sum())
    if not n:
        return part, 0
    if dedupe:
        return part[~repeated], n
    first = part.loc[repeated, RECORD_KEY].iloc[0]
    times = int((part[RECORD_KEY] == first.values).all(axis=1).sum())
    raise InputError(
        "INPUT",
        str(path),
        "records with one row per (condition_id, rep, estimator, parameter); condition_id "
        f"{first['condition_id']} has {n} repeated rows, e.g. rep {first['rep']} estimator "
        f"{first['estimator']} parameter {first['parameter']} ({times} rows). "
        "Counting them would count replications twice; --dedupe keeps the first row of each",
    )
