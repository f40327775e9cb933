import json
import os

import pyarrow as pa
import pytest

from simstudy.errors import InputError
from simstudy.store import (
    Manifest,
    RunLock,
    batch_path,
    batch_reps,
    read_manifest,
    read_replications,
    replication_schema,
    write_batch,
    write_manifest,
)


def _record(rep, **kw):
    base = {
        "study": "s",
        "condition_id": "abc",
        "N": 10,
        "mechanism": "MAR",
        "rep": rep,
        "seed": 1,
        "estimator": "e",
        "parameter": "y~x",
        "truth": 0.5,
        "estimate": 0.4,
        "se": 0.1,
        "lower": 0.2,
        "upper": 0.6,
        "ess_bulk": 100.0,
        "ess_tail": 90.0,
        "rhat": 1.0,
        "n_divergent": 0,
        "status": "ok",
        "error": "",
        "seconds": 0.1,
    }
    return {**base, **kw}


def test_batch_round_trip_with_rep_range(tmp_path):
    schema = replication_schema({"N": "int", "mechanism": "str"})
    path = batch_path(tmp_path, "abc", 3)
    write_batch(
        path, [_record(6), _record(7, status="failed", estimate=float("nan"))], schema, (6, 8)
    )
    assert path.name == "batch-00003.parquet"
    assert batch_reps(path) == (6, 8)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp left
    df = read_replications(tmp_path)
    assert list(df.columns) == schema.names
    assert df["rep"].tolist() == [6, 7]
    assert df["status"].tolist() == ["ok", "failed"]


def test_schema_rejects_wrong_types(tmp_path):
    schema = replication_schema({"N": "int"})
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_batch(batch_path(tmp_path, "a", 0), [_record(0, N="ten")], schema, (0, 1))
    assert batch_reps(batch_path(tmp_path, "a", 0)) is None


def test_batch_reps_of_missing_or_corrupt_file(tmp_path):
    assert batch_reps(tmp_path / "nope.parquet") is None
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    assert batch_reps(bad) is None


def test_manifest_round_trip(tmp_path):
    m = Manifest("s", "abcd", 5, {"seed": 1}, {"study": {"name": "s"}})
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    assert read_manifest(tmp_path / "other") is None


def test_lock_excludes_a_second_run_and_takes_over_a_dead_one(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(InputError, match="held by"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / "run.lock").exists()
    # a lock left by a process that is gone (pid far beyond pid_max) is stale
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 2**30, "host": os.uname().nodename}))
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
