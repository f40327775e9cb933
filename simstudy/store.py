"""Results on disk: the replication schema, atomic batch files, the manifest and the run lock.

Layout of a study directory::

    <results_dir>/<study>/
        manifest.json                          resolved config, its hash, batch size
        run.lock                               present while a run is writing
        replications/condition=<id>/batch-<k>.parquet
        summary.parquet                        written by the aggregator
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from simstudy.errors import InputError

_ARROW_KINDS = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}

#: The columns every replication file has after its design-factor columns, in order.
RECORD_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("rep", pa.int64()),
    ("seed", pa.int64()),
    ("estimator", pa.string()),
    ("parameter", pa.string()),
    ("truth", pa.float64()),
    ("estimate", pa.float64()),
    ("se", pa.float64()),
    ("lower", pa.float64()),
    ("upper", pa.float64()),
    ("ess_bulk", pa.float64()),
    ("ess_tail", pa.float64()),
    ("rhat", pa.float64()),
    ("n_divergent", pa.int64()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("seconds", pa.float64()),
)
MANIFEST = "manifest.json"
LOCK = "run.lock"


#: Extra columns of simulation-based-calibration studies.
SBC_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("sbc_rank", pa.int64()),
    ("sbc_draws", pa.int64()),
)


def replication_schema(factor_kinds: Mapping[str, str], sbc: bool = False) -> pa.Schema:
    """Arrow schema of replication records for a study with these design factors."""
    fields = [("study", pa.string()), ("condition_id", pa.string())]
    fields += [(name, _ARROW_KINDS[kind]) for name, kind in factor_kinds.items()]
    return pa.schema(fields + list(RECORD_FIELDS) + (list(SBC_FIELDS) if sbc else []))


def condition_dir(study_dir: Path, cond_id: str) -> Path:
    """Directory of one condition's batch files."""
    return Path(study_dir) / "replications" / f"condition={cond_id}"


def batch_path(study_dir: Path, cond_id: str, k: int) -> Path:
    """Path of batch ``k`` of a condition."""
    return condition_dir(study_dir, cond_id) / f"batch-{k:05d}.parquet"


def write_batch(
    path: Path, records: Sequence[Mapping[str, Any]], schema: pa.Schema, reps: tuple[int, int]
) -> None:
    """Write one batch atomically: a temporary file in the same directory, then a rename.

    The rep range ``[start, stop)`` goes into the file's metadata so that a resumed run can
    tell a finished batch from one written for a different range.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {b"simstudy.reps": json.dumps(list(reps)).encode()}
    table = pa.Table.from_pylist(list(records), schema=schema.with_metadata(meta))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def batch_reps(path: Path) -> tuple[int, int] | None:
    """The rep range a batch file covers, or None if it is missing or unreadable."""
    try:
        meta = pq.read_schema(path).metadata or {}
        start, stop = json.loads(meta[b"simstudy.reps"])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None
    return int(start), int(stop)


def read_replications(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All replication records under a study directory (or its ``replications/`` folder).

    ``columns``: read only these (all by default).
    """
    root = Path(path)
    if (root / "replications").is_dir():
        root = root / "replications"
    files = sorted(root.glob("condition=*/batch-*.parquet"))
    if not files:
        return pd.DataFrame()
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    return dataset.to_table(columns=list(columns) if columns else None).to_pandas()


def count_records(path: Path) -> tuple[int, int]:
    """(records, failed records) under a study directory, reading only the status column."""
    files = sorted(Path(path).glob("replications/condition=*/batch-*.parquet"))
    if not files:
        return 0, 0
    status = pads.dataset([str(f) for f in files], format="parquet").to_table(columns=["status"])
    column = status.column("status").to_pandas()
    return len(column), int((column != "ok").sum())


# --- manifest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What a study directory was produced with."""

    study: str
    config_hash: str
    batch_size: int
    numbers: dict[str, Any]
    config: dict[str, Any]
    software: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise, pretty-printed."""
        return json.dumps(self.__dict__, indent=2, sort_keys=True, default=str)


def software_versions() -> dict[str, str]:
    """Versions of simstudy (and its git commit in a checkout) and of the key libraries.

    Recorded in the manifest: a code change can change a replication's numbers, so results
    say what produced them.
    """
    import simstudy

    out = {"simstudy": simstudy.__version__}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(simstudy.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        out["simstudy_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    for lib in ("jax", "numpyro", "blackjax", "arviz", "dask", "distributed"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            pass
    return out


def read_manifest(study_dir: Path) -> Manifest | None:
    """The manifest of a study directory, or None if there is none."""
    path = Path(study_dir) / MANIFEST
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Manifest(
        raw["study"],
        raw["config_hash"],
        int(raw["batch_size"]),
        raw["numbers"],
        raw["config"],
        raw.get("software", {}),
    )


def write_manifest(study_dir: Path, manifest: Manifest) -> None:
    """Write the manifest atomically."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    tmp = study_dir / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.to_json())
    os.replace(tmp, study_dir / MANIFEST)


# --- lock -----------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a study directory, so that two runs never write the same batches.

    A lock left by a process that no longer exists on this host (a killed run) is taken over.
    """

    def __init__(self, study_dir: Path) -> None:
        self.path = Path(study_dir) / LOCK
        self._held = False

    def _stale(self) -> bool:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return True
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def acquire(self) -> None:
        """Take the lock or raise :class:`InputError` naming the run that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                raise InputError(
                    "results_dir",
                    str(self.path.parent),
                    f"a study directory no other run is using ({self.path} is held by "
                    f"{self.path.read_text().strip()}; remove it if that run is gone)",
                ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            self._held = True
            return
        raise InputError("results_dir", str(self.path.parent), "a lockable directory")

    def release(self) -> None:
        """Give the lock back."""
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
