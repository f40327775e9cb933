"""What the report needs from the replication records, read one condition at a time.

The summary holds every measure, but not the true values, the intervals behind a coverage
figure (for zip plots) or per-fit diagnostics (ESS and R-hat distributions, why fits failed).
:func:`digest` streams the batch files of a study directory condition by condition (each file
verified by :func:`simstudy.store.check_batch_file`) and keeps only small per-fit tables and
the intervals of the panels asked for, so memory is bounded by the largest condition.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from simstudy.store import batch_files, check_batch_file

#: Columns read from each batch file.
COLUMNS = (
    "rep",
    "estimator",
    "parameter",
    "truth",
    "estimate",
    "se",
    "lower",
    "upper",
    "ess_bulk",
    "rhat",
    "n_divergent",
    "status",
    "error",
    "seconds",
)
#: Records reduced together (several small conditions, or one large one).
CHUNK_ROWS = 250_000
#: Intervals of one zip-plot panel: (condition_id, estimator, parameter).
PanelKey = tuple[str, str, str]


@dataclass(frozen=True)
class Digest:
    """Small tables made from the replication records.

    Attributes
    ----------
    truth
        ``condition_id``, ``estimator``, ``parameter``, ``truth`` (mean over replications, so
        SBC's per-replication truths become their mean), ``truth_varies``.
    fits
        One row per fit (``condition_id``, ``estimator``, ``rep``): ``status``, ``error`` (the
        first failed row's), ``rhat`` (largest over estimands), ``ess`` (smallest bulk ESS),
        ``divergent`` (any divergent transition), ``seconds``.
    intervals
        Per requested panel: ``rep``, ``estimate``, ``se``, ``lower``, ``upper``, ``truth`` of
        its successful replications.
    conditions
        How many condition directories were read.
    """

    truth: pd.DataFrame
    fits: pd.DataFrame
    intervals: dict[PanelKey, pd.DataFrame]
    conditions: int


def _condition_of(path: Path) -> str:
    return path.parent.name.split("=", 1)[1]


def read_condition(files: Iterable[Path], columns: Collection[str] = COLUMNS) -> pd.DataFrame:
    """The records of one condition's batch files, only ``columns`` (each file verified)."""
    files = list(files)
    for f in files:
        check_batch_file(f)
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    present = [c for c in columns if c in dataset.schema.names]
    return dataset.to_table(columns=present).to_pandas()


def digest(
    study_dir: Path,
    condition_ids: Collection[str] | None = None,
    reps: int | None = None,
    panels: Collection[PanelKey] = (),
) -> Digest | None:
    """Stream a study's records into a :class:`Digest`; None when it has no batch files.

    Parameters
    ----------
    study_dir
        A study directory (``replications/condition=<id>/batch-*.parquet`` below it).
    condition_ids
        Read only these conditions (the summary's); default all.
    reps
        Use only replications ``< reps`` (the study's current design).
    panels
        ``(condition_id, estimator, parameter)`` whose intervals to keep, for zip plots.
    """
    files = batch_files(study_dir)
    if not files:
        return None
    wanted = set(panels)
    truths, fits, intervals, n = [], [], {}, 0
    buffer: list[pd.DataFrame] = []
    buffered = 0

    def flush() -> None:
        nonlocal buffer, buffered
        if buffer:
            frame = pd.concat(buffer, ignore_index=True)
            truths.append(_truth(frame))
            fits.append(_fits(frame))
        buffer, buffered = [], 0

    for cond_id, group in groupby(files, key=_condition_of):
        if condition_ids is not None and cond_id not in condition_ids:
            continue
        frame = read_condition(group)
        if reps is not None:
            frame = frame[frame["rep"] < reps]
        if frame.empty:
            continue
        n += 1
        frame = frame.assign(condition_id=cond_id)
        if wanted:
            ok = frame[frame["status"] == "ok"]
            for (est, par), rows in ok.groupby(["estimator", "parameter"], sort=False):
                key = (cond_id, str(est), str(par))
                if key in wanted:
                    cols = ["rep", "estimate", "se", "lower", "upper", "truth"]
                    intervals[key] = rows[cols].reset_index(drop=True)
        # Conditions are reduced together, CHUNK_ROWS records at a time: pandas' cost is per
        # call, and memory stays bounded by a chunk (or the largest condition).
        buffer.append(frame.drop(columns=["estimate", "se", "lower", "upper"], errors="ignore"))
        buffered += len(frame)
        if buffered >= CHUNK_ROWS:
            flush()
    flush()
    if not truths:
        return None
    return Digest(
        pd.concat(truths, ignore_index=True), pd.concat(fits, ignore_index=True), intervals, n
    )


def _truth(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.groupby(["condition_id", "estimator", "parameter"], sort=False)["truth"]
    out = g.agg(["mean", "min", "max"]).reset_index()
    out["truth_varies"] = ~np.isclose(out["min"], out["max"], equal_nan=True)
    return out.rename(columns={"mean": "truth"}).drop(columns=["min", "max"])


def _fits(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["condition_id", "estimator", "rep"]
    frame = frame.assign(
        failed=frame["status"] != "ok", divergent=frame["n_divergent"].fillna(0) > 0
    )
    out = (
        frame.groupby(keys, sort=True)
        .agg(
            failed=("failed", "any"),
            rhat=("rhat", "max"),
            ess=("ess_bulk", "min"),
            divergent=("divergent", "any"),
            seconds=("seconds", "first"),
        )
        .reset_index()
    )
    # the first message of each failed fit
    failed = frame[frame["failed"]]
    if "error" in failed.columns:
        failed = failed.assign(error=failed["error"].fillna(""))
        errors = failed[failed["error"] != ""].drop_duplicates(keys)[[*keys, "error"]]
        out = out.merge(errors, on=keys, how="left")
    else:
        out["error"] = ""
    out["error"] = out["error"].fillna("")
    return out
