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


#: Record columns that hold numbers (NaN where absent or failed).
NUMERIC_COLUMNS = ("truth", "estimate", *_OPTIONAL_FLOATS, "n_divergent", "sbc_rank", "sbc_draws")


def check_numbers(frame: pd.DataFrame) -> None:
    """Make the numeric record columns numbers, in place; text in them is an InputError.

    Empty cells and NaN are missing values; an infinite ``truth`` is refused too (an
    infinite estimate is a failed fit, see :func:`prepare_records`).
    """
    for col in NUMERIC_COLUMNS:
        if col not in frame.columns:
            continue
        values = frame[col]
        if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(
            values.dtype
        ):
            converted = pd.to_numeric(values.astype(object), errors="coerce")
            flags = values.map(lambda v: isinstance(v, bool | np.bool_))
            bad = (values.notna() & converted.isna()) | flags
            if bad.any():
                first = values[bad].iloc[0]
                raise InputError(
                    f"INPUT column {col}",
                    first,
                    f"numbers in every row (empty or NaN where missing); {int(bad.sum())} "
                    f"of {len(values)} rows of condition {_condition(frame, bad)} are not",
                )
            frame[col] = converted.astype(float)
        if col == "truth" and np.isinf(frame[col].astype(float)).any():
            raise InputError(
                "INPUT column truth",
                float(frame[col][np.isinf(frame[col].astype(float))].iloc[0]),
                "finite true values (NaN where unknown)",
            )


def _condition(frame: pd.DataFrame, bad: pd.Series) -> str:
    if "condition_id" in frame.columns:
        return str(frame.loc[bad, "condition_id"].iloc[0])
    factors = factor_columns(frame)
    row = frame.loc[bad].iloc[0]
    return ", ".join(f"{f}={row[f]}" for f in factors) or "(no factors)"


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
    check_numbers(df)
    if "truth" not in df.columns:
        df["truth"] = float(truth)
    if "status" not in df.columns:
        df["status"] = np.where(df["estimate"].notna(), "ok", "failed")
    df["status"] = df["status"].fillna("failed").astype(str)
    # An estimate that is not a number is no successful fit, whatever its status says (e.g.
    # another program's CSV): counted as failed, never as a replication.
    bad = (df["status"] == "ok") & ~np.isfinite(df["estimate"].astype(float))
    if bad.any():
        df.loc[bad, "status"] = "failed"
        if "error" in df.columns:
            df.loc[bad, "error"] = "non-finite estimate with status ok"
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
