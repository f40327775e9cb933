"""Bring replication records from anywhere into the schema the measures expect."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from simstudy.errors import InputError

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
    "sbc_rank",
    "sbc_draws",
)
REQUIRED = ("rep", "estimator", "parameter", "estimate")
_OPTIONAL_FLOATS = ("se", "lower", "upper", "ess_bulk", "ess_tail", "rhat", "seconds")


def factor_columns(records: pd.DataFrame) -> list[str]:
    """Design-factor columns: everything that is not a known record column."""
    return [c for c in records.columns if c not in RECORD_COLUMNS]


def check_columns(columns: Sequence[str], truth: float | None = None) -> None:
    """Raise :class:`InputError` naming every required column that is missing.

    Required: ``rep``, ``estimator``, ``parameter``, ``estimate``, ``truth`` (unless given
    with ``--truth``) and either ``se`` or both ``lower`` and ``upper``.
    """
    missing = [c for c in REQUIRED if c not in columns]
    if "truth" not in columns and truth is None:
        missing.append("truth (or --truth)")
    if "se" not in columns and not {"lower", "upper"} <= set(columns):
        missing.append("se (or lower and upper)")
    if missing:
        raise InputError(
            "INPUT columns",
            ", ".join(missing),
            "the replication schema: rep, estimator, parameter, estimate, truth, and se or "
            "lower/upper are required; other columns are design factors",
        )


def condition_ids(frame: pd.DataFrame, factors: Sequence[str]) -> pd.Series:
    """Condition ids for records that lack them, from their design-factor values."""
    from simstudy.design import condition_id

    if not factors:
        return pd.Series(condition_id({}), index=frame.index)
    unique = frame[list(factors)].drop_duplicates()
    ids = {
        tuple(row): condition_id(dict(zip(factors, row, strict=True)))
        for row in unique.itertuples(index=False, name=None)
    }
    return pd.Series(
        [ids[tuple(r)] for r in frame[list(factors)].itertuples(index=False, name=None)],
        index=frame.index,
    )


def prepare_records(
    records: pd.DataFrame, truth: float | None = None, level: float = 0.95
) -> pd.DataFrame:
    """Complete records so that every measure can be computed.

    Parameters
    ----------
    records
        Rows in (a subset of) the replication schema; extra columns are design factors.
    truth
        The true value for every row, when the records have no ``truth`` column.
    level
        Interval level used when ``lower``/``upper`` are absent: ``estimate ± z·se``.

    Returns
    -------
    pandas.DataFrame
        A copy with ``status`` (default ``ok``), ``condition_id``, ``truth``, ``lower``/``upper``
        and the MCMC columns (NaN where absent) filled in.
    """
    check_columns(list(records.columns), truth)
    df = records.copy()
    if "truth" not in df.columns:
        df["truth"] = float(truth)
    if "status" not in df.columns:
        df["status"] = np.where(df["estimate"].notna(), "ok", "failed")
    df["status"] = df["status"].fillna("failed").astype(str)
    for col in _OPTIONAL_FLOATS:
        if col not in df.columns:
            df[col] = math.nan
        df[col] = df[col].astype(float)
    if "n_divergent" not in df.columns:
        df["n_divergent"] = 0
    if records.get("lower") is None or records.get("upper") is None:
        z = float(stats.norm.ppf(0.5 + level / 2))
        df["lower"] = df["estimate"] - z * df["se"]
        df["upper"] = df["estimate"] + z * df["se"]
    if "condition_id" not in df.columns:
        df["condition_id"] = condition_ids(df, factor_columns(df))
    for col in ("estimator", "parameter", "condition_id"):
        df[col] = df[col].astype(str)
    return df
