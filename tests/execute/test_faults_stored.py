"""Stored work on a real local Dask cluster: a design shrunk then regrown, a foreign batch
copied with its checksum, a parameter that overflows (issue 27, items 1, 3 and 5).

``pytest -m faults``; the same properties on the synchronous executor are checked in the
default tier by ``test_stored_work.py``.
"""

import shutil

import pandas as pd
import pytest
from conftest import TINY, UNSIMULABLE, numbers, records_of

from simstudy.store import read_manifest

pytestmark = pytest.mark.faults

LOCAL = [
    *TINY,
    "executor=local",
    "executor.n_workers=2",
    "executor.batch_size=2",
    "study.estimators=[ols_cc,bayes_cc]",
]


def _files(study):
    return {p: p.read_bytes() for p in (study / "replications").rglob("*batch-*")}


def test_shrink_then_regrow_on_a_cluster_keeps_every_finished_batch(run_cli, tmp_path):
    assert run_cli(*LOCAL, "study.reps=6")[0] == 0
    study = tmp_path / "results" / "tiny"
    stored = _files(study)
    rc, out = run_cli(*LOCAL, "study.reps=3")
    assert rc == 0 and "recomputing" not in out and _files(study) == stored, out
    rc, out = run_cli(*LOCAL, "study.reps=8")
    assert rc == 0 and "recomputing" not in out, out
    assert all(_files(study)[p] == b for p, b in stored.items())
    reps = records_of(study).groupby(["condition_id", "estimator"])["rep"].unique()
    assert all(sorted(r) == list(range(8)) for r in reps)
    summary = pd.read_parquet(study / "summary.parquet")
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {8}


def test_a_foreign_batch_with_its_checksum_is_recomputed_on_a_cluster(run_cli, tmp_path):
    assert run_cli(*LOCAL)[0] == 0
    study = tmp_path / "results" / "tiny"
    before = records_of(study)
    source, target = sorted((study / "replications").glob("condition=*"))
    for name in ("batch-00001.parquet", ".batch-00001.parquet.sha256"):
        shutil.copy(source / name, target / name)
    rc, out = run_cli(*LOCAL)
    assert rc == 0 and "recomputing" in out and "holds records of condition" in out, out
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(before))


def test_a_data_set_that_cannot_be_simulated_is_failed_rows_on_a_cluster(run_cli, tmp_path):
    rc, out = run_cli(*LOCAL, *UNSIMULABLE)
    assert rc == 1 and "Traceback" not in out, out
    study = tmp_path / "results" / "tiny"
    records = records_of(study)
    assert set(records["status"]) == {"failed"} and len(records) > 0
    assert records["error"].str.startswith("simulate: ").all()
    assert read_manifest(study).runs[-1]["status"] == "finished"
