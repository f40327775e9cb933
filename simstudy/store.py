"""Results on disk: the replication schema, atomic batch files, the manifest and the run lock.

Layout of a study directory::

    <results_dir>/<study>/
        manifest.json                          resolved config, its hash, batch size, runs
        run.lock                               present while a run is writing
        stopped.json                           conditions stopped early, and why
        replications/condition=<id>/batch-<k>.parquet
        replications/condition=<id>/.batch-<k>.parquet.sha256  the batch file's checksum
        summary.parquet                        written by the aggregator

A batch file carries the rep range it covers, its condition id and study, and the hash of the
config its numbers depend on in its Parquet metadata, and the SHA-256 of its bytes beside it: a
resumed run adopts a batch only when its checksum, its condition (that of the folder it lies in)
and its config hash match, so a corrupted, truncated, misplaced or foreign batch is recomputed,
never summarised. Nothing here is ever unpickled: JSON and Parquet only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Collection, Mapping, Sequence
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
STOPPED = "stopped.json"
CHECKSUM_SUFFIX = ".sha256"


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


def batch_path(study_dir: Path, cond_id: str, k: int, start: int | None = None) -> Path:
    """Path of batch ``k`` of a condition.

    ``start``: the first rep of a part of batch ``k`` that fills the reps its stored file lacks
    (written after ``study.reps`` grew past what the file covers): ``batch-<k>-r<start>``, so
    that the stored file is never rewritten.
    """
    part = "" if start is None else f"-r{start}"
    return condition_dir(study_dir, cond_id) / f"batch-{k:05d}{part}.parquet"


def write_batch(
    path: Path,
    records: Sequence[Mapping[str, Any]],
    schema: pa.Schema,
    reps: tuple[int, int],
    config_hash: str = "",
) -> None:
    """Write one batch atomically: a temporary file in the same directory, then a rename.

    The rep range ``[start, stop)``, ``config_hash`` and the records' condition id and study
    go into the file's metadata, so that a resumed run can tell a finished batch from one
    written for a different range, config or condition; the SHA-256 of the file's bytes is
    written beside it first (see :func:`batch_state`). Raises :class:`InputError` when the
    disk is full, after removing what it half wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        b"simstudy.reps": json.dumps(list(reps)).encode(),
        b"simstudy.config_hash": config_hash.encode(),
        b"simstudy.condition_id": _only(records, "condition_id", path).encode(),
        b"simstudy.study": _only(records, "study", path).encode(),
    }
    table = pa.Table.from_pylist(list(records), schema=schema.with_metadata(meta))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sidecar = _checksum_path(path)
    tmp_sum = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        tmp_sum.write_text(_sha256(tmp) + "\n")
        # The checksum first: a crash between the renames leaves a mismatch (recomputed),
        # never an unverified file.
        os.replace(tmp_sum, sidecar)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        tmp_sum.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise InputError(
                "results_dir",
                str(path.parent.parent.parent),
                f"a writable directory with free space (writing {path.name}: "
                f"{os.strerror(exc.errno)}); nothing finished is lost: free space and run "
                "the same command again to resume",
            ) from None
        raise


def _only(records: Sequence[Mapping[str, Any]], column: str, path: Path) -> str:
    """The one value of ``column`` in a batch's records ('' for no records)."""
    values = {str(r.get(column, "")) for r in records}
    if len(values) > 1:
        raise ValueError(f"a batch holds one {column}; {path.name} was given {sorted(values)}")
    return values.pop() if values else ""


def _checksum_path(path: Path) -> Path:
    # hidden, so that Parquet readers given the directory (pandas, pyarrow, DuckDB) skip it
    return path.with_name(f".{path.name}{CHECKSUM_SUFFIX}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BatchState:
    """What a batch file on disk is: its rep range and config hash, or why it is unusable."""

    reps: tuple[int, int] | None
    config_hash: str | None
    problem: str = ""
    study: str = ""


def folder_condition(path: Path) -> str | None:
    """The condition id a batch file's place names (``condition=<id>/``), if any."""
    name = Path(path).parent.name
    return name.split("=", 1)[1] if name.startswith("condition=") else None


def batch_state(path: Path) -> BatchState:
    """Read and verify a batch file: checksum, rep range, config hash, condition.

    ``problem`` is empty for a sound file, else says what is wrong ('missing', a checksum
    mismatch, unreadable metadata, records of another condition than its folder's); such a
    file must be recomputed, not read.
    """
    path = Path(path)
    if not path.exists():
        return BatchState(None, None, "missing")
    try:
        expected = _checksum_path(path).read_text().strip()
    except OSError:
        return BatchState(None, None, "no checksum beside it (written by an older simstudy?)")
    try:
        actual = _sha256(path)
    except OSError as exc:
        return BatchState(None, None, f"unreadable ({exc.strerror})")
    if actual != expected:
        return BatchState(None, None, "its bytes do not match its checksum (corrupted)")
    try:
        meta = pq.read_schema(path).metadata or {}
        start, stop = json.loads(meta[b"simstudy.reps"])
        digest = meta.get(b"simstudy.config_hash", b"").decode()
        study = meta.get(b"simstudy.study", b"").decode()
        held = _held_conditions(path, meta)
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        return BatchState(None, None, f"unreadable metadata ({type(exc).__name__})")
    place = folder_condition(path)
    if place is not None and held and held != {place}:
        return BatchState(
            None,
            None,
            f"it holds records of condition {', '.join(sorted(held))}, not of {place} whose "
            "folder it lies in (copied from elsewhere?)",
            study,
        )
    return BatchState((int(start), int(stop)), digest, "", study)


def _held_conditions(path: Path, meta: Mapping[bytes, bytes]) -> set[str]:
    """The condition ids a batch file holds: its metadata's, else its records' column."""
    named = meta.get(b"simstudy.condition_id", b"").decode()
    if named:
        return {named}
    schema = pq.read_schema(path)
    if "condition_id" not in schema.names:
        return set()
    column = pq.read_table(path, columns=["condition_id"]).column("condition_id")
    return {str(v) for v in column.unique().to_pylist()}


def batch_reps(path: Path) -> tuple[int, int] | None:
    """The rep range a sound batch file covers, or None if it is missing or unusable."""
    return batch_state(path).reps


def check_batch_file(path: Path, config_hash: str | None = None) -> None:
    """Raise :class:`InputError` naming ``path`` when a batch file in a study is unusable.

    Unusable is what a run would recompute: a checksum mismatch, unreadable metadata, records
    of another condition than its folder's, or (given the study's ``config_hash``, from its
    manifest) a batch written under another config. Files of other programs (no checksum
    beside them) are only checked for being Parquet.
    """
    path = Path(path)
    if _checksum_path(path).exists():
        state = batch_state(path)
        if not state.problem and config_hash and state.config_hash != config_hash:
            state = BatchState(
                None,
                None,
                f"written under config hash {state.config_hash or '(none)'}, not the "
                f"manifest's {config_hash}",
            )
        if not state.problem:
            return
        problem = state.problem
    else:
        try:
            pq.read_metadata(path)
            return
        except (OSError, pa.ArrowInvalid) as exc:
            problem = f"not a readable Parquet file ({exc})"
    raise InputError(
        "INPUT",
        str(path),
        f"sound batch files; this one is unusable: {problem}. `simstudy run` with the "
        "study's config recomputes it (or delete it)",
    )


def batch_files(path: Path) -> list[Path]:
    """The batch files under a study directory (or its ``replications/`` folder)."""
    root = Path(path)
    if (root / "replications").is_dir():
        root = root / "replications"
    return sorted(root.glob("condition=*/batch-*.parquet"))


def read_replications(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All replication records under a study directory (or its ``replications/`` folder).

    ``columns``: read only these (all by default). Every file is verified first
    (:func:`check_batch_file`, against the manifest's config hash where there is one): one
    that a run would recompute raises :class:`InputError` naming it.
    """
    files = batch_files(path)
    if not files:
        return pd.DataFrame()
    digest = manifest_hash(path)
    for f in files:
        check_batch_file(f, digest)
    dataset = pads.dataset([str(f) for f in files], format="parquet")
    return dataset.to_table(columns=list(columns) if columns else None).to_pandas()


def stored_conditions(
    study_dir: Path, factors: Sequence[str]
) -> dict[str, tuple[dict[str, Any], int]]:
    """``condition_id -> (condition, reps)`` of every condition with sound batches on disk.

    ``reps``: one past the highest rep its sound batch files hold. The condition's factor
    values are read from one row of its records (``factors``: the design-factor columns), so
    that conditions and reps an earlier, larger design left are reachable after the design
    shrank.
    """
    out: dict[str, tuple[dict[str, Any], int]] = {}
    for folder in sorted((Path(study_dir) / "replications").glob("condition=*")):
        cid = folder.name.split("=", 1)[1]
        sound = [(f, batch_state(f)) for f in sorted(folder.glob("batch-*.parquet"))]
        sound = [(f, st) for f, st in sound if not st.problem and st.reps is not None]
        if not sound:
            continue
        row = pq.read_table(sound[0][0], columns=list(factors)).slice(0, 1).to_pylist()
        if not row:
            continue
        out[cid] = (row[0], max(st.reps[1] for _, st in sound if st.reps))
    return out


def fit_failures(study_dir: Path, ids: Collection[str], reps: int) -> pd.DataFrame:
    """Fits and failed fits per condition and estimator, of the design's stored records.

    A fit is one replication × estimator; it failed when any of its rows did. Columns
    ``condition_id``, ``estimator``, ``fits``, ``failed``; reads four columns only.
    """
    columns = ["condition_id", "rep", "estimator", "status"]
    files = [f for f in batch_files(study_dir) if folder_condition(f) in ids]
    if not files:
        return pd.DataFrame(columns=[*columns[::2], "fits", "failed"])
    table = pads.dataset([str(f) for f in files], format="parquet").to_table(columns=columns)
    df = table.to_pandas()
    df = df[df["rep"] < reps]
    df["failed"] = df["status"] != "ok"
    per_fit = df.groupby(["condition_id", "estimator", "rep"], sort=False)["failed"].any()
    grouped = per_fit.groupby(level=["condition_id", "estimator"], sort=False)
    return grouped.agg(fits="size", failed="sum").reset_index()


def count_records(path: Path) -> tuple[int, int]:
    """(records, failed records) under a study directory, reading only the status column."""
    files = batch_files(path)
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
    #: One entry per run that wrote to the directory (start, end, what it did), oldest first.
    runs: list[dict[str, Any]] = field(default_factory=list)

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
    """The manifest of a study directory, or None if there is none.

    Raises :class:`InputError` naming the file when it is not a manifest simstudy wrote.
    """
    path = Path(study_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return Manifest(
            str(raw["study"]),
            str(raw["config_hash"]),
            int(raw["batch_size"]),
            dict(raw["numbers"]),
            dict(raw["config"]),
            dict(raw.get("software", {})),
            list(raw.get("runs", [])),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            "manifest",
            str(path),
            f"a manifest.json written by simstudy ({type(exc).__name__}: {exc}); restore it, "
            "or move it away and rerun with the study's config (finished batches whose config "
            "hash matches are kept)",
        ) from None


def manifest_hash(path: Path) -> str | None:
    """The config hash of the manifest of a study directory (or of its ``replications/``)."""
    root = Path(path)
    if root.name == "replications":
        root = root.parent
    manifest = read_manifest(root) if root.is_dir() else None
    return manifest.config_hash if manifest else None


def write_manifest(study_dir: Path, manifest: Manifest) -> None:
    """Write the manifest atomically."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    tmp = study_dir / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.to_json())
    os.replace(tmp, study_dir / MANIFEST)


# --- stopped conditions ---------------------------------------------------------------------


def read_stopped(study_dir: Path) -> dict[str, dict[str, Any]]:
    """Conditions an earlier run stopped early: ``{condition_id: {"reason", "reps", ...}}``."""
    path = Path(study_dir) / STOPPED
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {str(k): dict(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise InputError(
            "stopped.json", str(path), f"a JSON object written by simstudy ({exc})"
        ) from None


def write_stopped(study_dir: Path, stopped: Mapping[str, Mapping[str, Any]]) -> None:
    """Write (or, when empty, remove) the record of stopped conditions, atomically."""
    path = Path(study_dir) / STOPPED
    if not stopped:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{STOPPED}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stopped, indent=2, sort_keys=True))
    os.replace(tmp, path)


# --- lock -----------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a study directory, so that two runs never write the same batches.

    The lock file is created with its owner already in it (written aside, then hard-linked
    into place, which fails if it exists), so no run ever sees an empty lock. A lock left by a
    process that no longer exists on this host (a killed run) is taken over, and ``taken_over``
    says whose it was.
    """

    def __init__(self, study_dir: Path) -> None:
        self.path = Path(study_dir) / LOCK
        self._held = False
        self.taken_over: str | None = None

    def _owner(self) -> dict[str, Any] | None:
        try:
            owner = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _stale(self, owner: dict[str, Any] | None) -> bool:
        if owner is None:  # unreadable: not written by this class, which never leaves it so
            return True
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
        return False

    def acquire(self) -> None:
        """Take the lock or raise :class:`InputError` naming the run that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()})
        tmp = self.path.with_name(f".{LOCK}.{os.getpid()}.tmp")
        tmp.write_text(payload)
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    owner = self._owner()
                    if owner == {}:  # released meanwhile
                        continue
                    if self._stale(owner):
                        self.taken_over = json.dumps(owner) if owner else "an unreadable lock"
                        self.path.unlink(missing_ok=True)
                        continue
                    raise InputError(
                        "results_dir",
                        str(self.path.parent),
                        f"a study directory no other run is using ({self.path} is held by "
                        f"{json.dumps(owner)}; remove it if that run is gone)",
                    ) from None
                self._held = True
                return
        finally:
            tmp.unlink(missing_ok=True)
        raise InputError("results_dir", str(self.path.parent), "a lockable directory")

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._held

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
