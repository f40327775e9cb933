"""A user's data table (``simstudy fit``): the columns a model reads, checked as numbers.

What a model column may hold: integers or floats, NaN (an empty cell) where a value is
missing. A boolean column (``true``/``false``, a Parquet bool) is read as 1/0, what a dummy
or a binary item means. Refused, each with an :class:`~simstudy.errors.InputError` naming the
column: text, dates, times and durations (no number is meant by them; convert them first),
infinite values, and a column without a single observed value (nothing there to estimate).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simstudy.errors import InputError

ALLOWED = (
    "numbers: NaN or an empty cell where a value is missing (other codes with "
    'missing=[-999, "."]), true/false read as 1/0; not text, dates or times'
)
_DATES = (datetime.date, datetime.time, datetime.timedelta, np.datetime64, np.timedelta64)


def _first(values: pd.Series, bad: pd.Series) -> tuple[object, int]:
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return values.iloc[position], position + 1


def numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` of a user's table as floats (NaN where missing), or raise InputError."""
    col = frame[name]
    where = f"data column {name}"
    dtype = col.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        shown = col.dropna()
        value = str(shown.iloc[0]) if len(shown) else str(dtype)
        raise InputError(where, value, f"{ALLOWED} ({dtype} is a date or time)")
    if pd.api.types.is_complex_dtype(dtype):
        raise InputError(where, str(dtype), ALLOWED)
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        values = col.to_numpy(dtype=float, na_value=np.nan)
    else:  # text, mixed objects, categories: numbers and true/false in it are fine
        raw = col.astype(object)
        present = raw.notna()
        dates = raw.map(lambda v: isinstance(v, _DATES))
        if dates.any():
            value, row = _first(raw, dates)
            raise InputError(where, str(value), f"{ALLOWED} (a date or time in row {row})")
        flags = raw.map(lambda v: isinstance(v, bool | np.bool_))
        converted = pd.to_numeric(raw.where(~flags), errors="coerce")
        converted = converted.where(~flags, raw.where(flags).astype(float))
        bad = present & converted.isna()
        if bad.any():
            value, row = _first(raw, bad)
            raise InputError(where, value, f"{ALLOWED} (row {row} of the data)")
        values = converted.to_numpy(dtype=float)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise InputError(
            where,
            float(values[row]),
            f"finite numbers, NaN or an empty cell where a value is missing (row {row + 1} "
            "of the data)",
        )
    if len(values) and np.isnan(values).all():
        raise InputError(
            where,
            f"all {len(values)} values missing",
            "at least one observed value: a variable without data cannot be estimated",
        )
    return values


def numeric_columns(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Columns ``names`` as an (N, k) float array (NaN where missing), each checked."""
    if not names:
        return np.zeros((len(frame), 0))
    return np.column_stack([numeric(frame, n) for n in names])


def boolean_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold true/false (read as 1/0)."""
    out = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col.dtype):
            out.append(str(name))
        elif col.dtype == object:
            present = col.dropna()
            if len(present) and present.map(lambda v: isinstance(v, bool | np.bool_)).all():
                out.append(str(name))
    return out
