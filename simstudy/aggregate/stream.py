"""Read replication records one condition at a time, so memory stays bounded by a condition.

A results directory is already split by condition (``condition=<id>/``). A single Parquet or
CSV file is first streamed into such a split (Arrow record batches, never the whole file in
memory), computing ``condition_id`` from the design factors when the file has none.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from simstudy.aggregate.prepare import RECORD_COLUMNS, check_columns, condition_ids
from simstudy.errors import InputError
from simstudy.store import check_batch_file, manifest_hash

BATCH_ROWS = 65_536
SPLIT_OPEN_FILES = 64


def _batches(path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if path.suffix == ".parquet":
        try:
            # A buffered stream: without it the reader keeps whole column chunks of every row
            # group it has passed (measured: 800 MiB of Arrow memory for a 10^7-row file).
            pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError("INPUT", str(path), f"a readable Parquet file ({exc})") from None
        return pf.schema_arrow, pf.iter_batches(batch_size=BATCH_ROWS)
    if path.suffix == ".csv":
        try:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError("INPUT", str(path), f"a readable CSV file ({exc})") from None
        return reader.schema, iter(reader)
    raise InputError("INPUT", str(path), "a results directory, .parquet or .csv file")


class _PartWriters:
    """Parquet writers, one per condition, at most ``limit`` open at a time.

    Each ``write`` is flushed as a row group at once, so memory holds one input batch, never a
    condition; a writer closed to make room is reopened as a new part file when needed.
    """

    def __init__(self, root: Path, schema: pa.Schema, limit: int = SPLIT_OPEN_FILES) -> None:
        self.root, self.schema, self.limit = root, schema, limit
        self.open: OrderedDict[str, pq.ParquetWriter] = OrderedDict()
        self.parts: dict[str, int] = {}

    def write(self, cond_id: str, table: pa.Table) -> None:
        writer = self.open.pop(cond_id, None)
        if writer is None:
            if len(self.open) >= self.limit:
                self.open.popitem(last=False)[1].close()
            k = self.parts.get(cond_id, 0)
            self.parts[cond_id] = k + 1
            folder = self.root / f"condition_id={cond_id}"
            folder.mkdir(exist_ok=True)
            writer = pq.ParquetWriter(folder / f"part-{k:05d}.parquet", self.schema)
        writer.write_table(table)
        self.open[cond_id] = writer

    def close(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


def _design_columns(names: Sequence[str], by: Sequence[str] | None, path: Path) -> list[str]:
    """The columns kept as design factors: ``by`` (each must exist), else every extra one."""
    extra = [c for c in names if c not in RECORD_COLUMNS and not _bookkeeping(c)]
    if by is None:
        return extra
    for name in by:
        if name not in names:
            raise InputError(
                "--by", name, f"a column of {path.name}: " + ", ".join(names) or "(none)"
            )
    return list(by)


def _check_factors(frame: pd.DataFrame, factors: Sequence[str], path: Path) -> None:
    """Refuse a 'factor' that is a measurement (a distinct value in most rows), unless --by."""
    if len(frame) < 20:
        return
    for name in factors:
        distinct = frame[name].nunique(dropna=False)
        if distinct > len(frame) / 2:
            raise InputError(
                f"INPUT column {name}",
                f"{distinct} distinct values in {len(frame)} rows",
                "design factors with few levels; name the design factors with --by "
                f"(e.g. --by {','.join(f for f in factors if f != name) or 'N'}), and other "
                "columns are ignored",
            )


def _bookkeeping(name: str) -> bool:
    """``condition_id``, or the index pandas stored beside the records (``to_parquet``)."""
    return name == "condition_id" or name.startswith("__index_level_")


@contextmanager
def split_by_condition(
    path: Path, truth: float | None = None, by: Sequence[str] | None = None
) -> Iterator[Path]:
    """A directory of ``condition_id=<id>/`` Parquet parts made from one file, streamed.

    ``by``: the design-factor columns; other columns outside the replication schema are
    dropped (without it every such column is a factor).
    """
    schema, batches = _batches(path)
    check_columns(schema.names, truth)
    factors = _design_columns(schema.names, by, path)
    dropped = [
        c
        for c in schema.names
        if c not in RECORD_COLUMNS and not _bookkeeping(c) and c not in factors
    ]
    checked = False
    with tempfile.TemporaryDirectory(prefix="simstudy-split-") as tmp:
        writers: _PartWriters | None = None
        try:
            for batch in batches:
                frame = batch.to_pandas().drop(columns=dropped).reset_index(drop=True)
                if not checked and by is None:
                    _check_factors(frame, factors, path)
                    checked = True
                if "condition_id" not in frame.columns:
                    frame["condition_id"] = condition_ids(frame, factors)
                frame["condition_id"] = frame["condition_id"].astype(str)
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writers is None:
                    writers = _PartWriters(Path(tmp), table.schema)
                table = table.cast(writers.schema)
                for cond_id, rows in frame.groupby("condition_id", sort=False).indices.items():
                    writers.write(str(cond_id), table.take(rows))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            # a later block of a CSV whose column changes type (numbers, then text)
            text = " ".join(str(exc).split())[:300]
            raise InputError(
                "INPUT", str(path), f"a table whose columns each hold one type ({text})"
            ) from None
        finally:
            if writers is not None:
                writers.close()
        if writers is None:
            raise InputError("INPUT", str(path), "a file with at least one record")
        yield Path(tmp)


def condition_parts(root: Path) -> list[Path]:
    """The per-condition directories of a results directory or of a split file."""
    if (root / "replications").is_dir():
        root = root / "replications"
    return sorted(p for p in root.iterdir() if p.is_dir() and "=" in p.name)


def read_condition(part: Path, config_hash: str | None = None) -> pd.DataFrame:
    """All records of one condition directory (each batch file verified first).

    ``config_hash``: the study manifest's; a batch written under another is refused.
    """
    files = sorted(part.glob("*.parquet"))
    for f in files:
        check_batch_file(f, config_hash)
    table = pads.dataset([str(f) for f in files], format="parquet").to_table()
    frame = table.to_pandas()
    if "condition_id" not in frame.columns:
        frame["condition_id"] = part.name.split("=", 1)[1]
    return frame


@contextmanager
def conditions(
    path: Path,
    truth: float | None = None,
    by: Sequence[str] | None = None,
    only: Collection[str] | None = None,
) -> Iterator[Iterator[pd.DataFrame]]:
    """Yield an iterator over the records of each condition of ``path``, one at a time.

    ``by``: design-factor columns of a single file (see :func:`split_by_condition`).
    ``only``: read only these condition ids (a study's current design); the others' files
    are neither read nor verified.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("INPUT", str(path), "an existing results directory, .parquet or .csv file")
    if path.is_dir():
        parts = condition_parts(path)
        if not parts:
            raise InputError(
                "INPUT", str(path), "a results directory with replications/condition=<id>/"
            )
        digest = manifest_hash(path)
        yield (read_condition(p, digest) for p in parts if _wanted(p, only))
        return
    with split_by_condition(path, truth, by) as root:
        yield (read_condition(p) for p in condition_parts(root) if _wanted(p, only))


def _wanted(part: Path, only: Collection[str] | None) -> bool:
    return only is None or part.name.split("=", 1)[1] in only
