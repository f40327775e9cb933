"""A user's data table (``simstudy fit``): read, and the columns a model reads checked.

The one home of the data checks every model's ``from_frame`` uses (:func:`model_data`).
What a model column may hold: integers or floats, NaN (an empty cell) where a value is
missing. A boolean column (``true``/``false``, a Parquet bool) is read as 1/0, what a dummy
or a binary item means. Refused, each with an :class:`~simstudy.errors.InputError` naming the
column: text, dates, times and durations (no number is meant by them; convert them first),
infinite values and values beyond :data:`MAX_ABS` (a float32 sampler cannot fit them), a
column without a single observed value (nothing there to estimate), and a predictor with one
value (its coefficient is not identified: the fit would return its prior). A typical
missing-value code (-999, 99, ...) far outside a column's other values is warned about
(:func:`sentinel_warnings`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.errors import InputError

#: The largest magnitude a model column may hold: samplers run in float32, where squares of
#: larger values overflow (float32's maximum is 3.4e38) and sums of squares of 1e8 rows do too.
MAX_ABS = 1e15

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
    huge = np.abs(values) > MAX_ABS
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise InputError(
            where,
            float(values[row]),
            f"numbers of magnitude at most {MAX_ABS:g} (row {row + 1} of the data): the "
            "samplers compute in float32, where larger values and their squares overflow or "
            "swamp the fit; rescale the column (e.g. divide it by a power of 10)",
        )
    if len(values) and np.isnan(values).all():
        raise InputError(
            where,
            f"all {len(values)} values missing",
            "at least one observed value: a variable without data cannot be estimated",
        )
    return values


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


@dataclass(frozen=True)
class Columns:
    """The columns of a user's table a model reads (a family's ``columns(structure)``).

    Parameters
    ----------
    numbers
        Columns read as numbers (NaN where missing).
    allowed
        The columns the table must have, in words (the message when some are absent).
    predictors
        Those of ``numbers`` the model conditions on: each must vary.
    labels
        Columns of labels (clusters), any values.
    continuous
        Those of ``numbers`` the model fits as continuous (normal) outcomes or indicators.
    """

    numbers: tuple[str, ...]
    allowed: str
    predictors: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    continuous: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every column the model reads, numbers first."""
        return (*self.numbers, *self.labels)


def model_data(frame: pd.DataFrame, columns: Columns) -> dict[str, np.ndarray]:
    """The number columns a model reads, each checked, as float arrays (NaN where missing).

    Raises
    ------
    InputError
        Naming absent columns, a column that is not numbers, holds an infinite or too large
        value (:func:`numeric`), or a predictor with one observed value.
    """
    absent = [c for c in columns.names if c not in frame.columns]
    if absent:
        raise InputError("data columns", ", ".join(absent), columns.allowed)
    values = {name: numeric(frame, name) for name in columns.numbers}
    for name in columns.predictors:
        seen = np.unique(values[name][~np.isnan(values[name])])
        if seen.size == 1:
            raise InputError(
                f"data column {name}",
                f"{seen[0]:g} in all {int((~np.isnan(values[name])).sum())} observed rows",
                "a predictor whose values vary: with one value its coefficient is not "
                "identified by the data (the fit would report the prior); drop the predictor "
                "from the model or fit data where it varies",
            )
    return values


def _is_code(value: float) -> bool:
    """A typical missing-value code: 9, 99, ..., 999999 or 88, ..., 888888, either sign."""
    if value != round(value) or not 1 <= abs(value) < 1e6:
        return False
    digits = set(str(int(abs(value))))
    return digits == {"9"} or (digits == {"8"} and abs(value) >= 10)


#: At most this many distinct whole values make a column look categorical.
FEW_CATEGORIES = 7


def categorical_warnings(frame: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Plain words for continuous outcomes whose values look binary or ordinal.

    A column of 2 to :data:`FEW_CATEGORIES` distinct whole values fitted as normal is most
    likely a binary or ordinal variable, which the model declares with ``model.ordered``.
    """
    lines = []
    for name in names:
        if name not in frame.columns:
            continue
        values = numeric(frame, name)
        seen = np.unique(values[~np.isnan(values)])
        if not 2 <= seen.size <= FEW_CATEGORIES or not np.all(seen == np.round(seen)):
            continue
        k = seen.size
        shown = ", ".join(f"{v:g}" for v in seen)
        if k == 2 and set(seen) == {0.0, 1.0}:
            how = f"declare it binary: model.ordered=[{name}]"
        elif np.array_equal(seen, np.arange(k)):
            how = f"declare it ordinal: 'model.ordered={{{name}: {k}}}'"
        else:
            how = f"recode it to 0..{k - 1} and declare it: 'model.ordered={{{name}: {k}}}'"
        lines.append(
            f"column {name} holds only the values {shown}, and is fitted as a continuous "
            f"(normal) variable; {how} (probit; model.link=logit for the logit)"
        )
    return lines


def sentinel_warnings(frame: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Plain words for typical missing-value codes that lie far outside a column's values.

    A code is flagged when it is beyond the range of the column's other observed values by
    more than 3 interquartile ranges of them (their SD when the IQR is 0): -999 among values
    of -3..3 is, and 99 among codes 1..5; -99 among values of -200..200 is not, nor is 9
    among 1..5 (4 beyond the range, 2 IQRs: a value as likely as a code).
    """
    found: list[tuple[str, float, int, int, float, float]] = []
    for name in names:
        if name not in frame.columns:
            continue
        values = numeric(frame, name)
        seen = values[~np.isnan(values)]
        codes = [float(v) for v in np.unique(seen) if _is_code(float(v))]
        rest = seen[~np.isin(seen, codes)]
        if not codes or rest.size < 3:
            continue
        q1, q3 = np.percentile(rest, [25, 75])
        spread = (q3 - q1) or float(rest.std())
        low, high = float(rest.min()), float(rest.max())
        for code in codes:
            gap = max(low - code, code - high)
            if gap > 0 and gap > 3 * spread:
                rows = np.flatnonzero(values == code)
                found.append((name, code, rows.size, int(rows[0]) + 1, low, high))
    lines = [
        f"column {name}: {code:g} in {count} rows (first in row {row} of the data) lies far "
        f"outside its other values ({low:.3g} to {high:.3g}); if it means 'missing', declare it: "
        f"missing={code:g}"
        for name, code, count, row, low, high in found
    ]
    codes = sorted({f[1] for f in found})
    if len(codes) > 1:
        listed = ", ".join(f"{c:g}" for c in codes)
        lines.append(f"to declare them all: missing='[{listed}]'")
    return lines


def missing_codes(text: str | None) -> list[Any]:
    """``missing=[-999, "."]`` (YAML): the values that mean 'missing' in a user's table."""
    import yaml

    if text is None:
        return []
    try:
        codes = yaml.safe_load(text)
    except yaml.YAMLError:
        codes = None
    codes = codes if isinstance(codes, list) else [codes]
    if not codes or any(isinstance(c, bool) or not isinstance(c, (int, float, str)) for c in codes):
        raise InputError("missing", text, 'a code or a list of codes, e.g. missing=[-999, "."]')
    return codes


def read_table(path: Path, codes: Sequence[Any]) -> pd.DataFrame:
    """A user's .csv or .parquet table with its missing-value codes read as NaN.

    Raises
    ------
    InputError
        When the file is empty, cannot be read as a table, or has a header but no rows.
        (The columns a model reads are checked by :func:`model_data`.)
    """
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, na_values=[str(c) for c in codes])
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputError(
            "data", str(path), "a table with a header row and data rows (the file is empty)"
        ) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # parser, Arrow and I/O errors
        text = " ".join(str(exc).split())[:200]
        raise InputError(
            "data", str(path), f"a readable {path.suffix[1:]} table ({text})"
        ) from None
    if len(frame) == 0:
        raise InputError(
            "data",
            str(path),
            f"a table with data rows (it has a header of {len(frame.columns)} columns and no rows)",
        )
    if codes:
        frame = frame.replace(list(codes), np.nan)
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        for col in text:  # a column with "." was read as text: numbers now
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted
    return frame
