"""The pipeline end to end on real executors: seeds, resume, failures, early stop."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, numbers, records_of

from simstudy.design import condition_id
from simstudy.store import read_manifest


# slow tier (default-tier time); the cheap check of the same: the same draws in any batch and
# lane: tests/test_vectorize.py
@pytest.mark.slow
def test_same_numbers_whatever_batch_size_and_worker_count(run_cli, tmp_path):
    runs = {  # one process with batches of 4; two worker processes with batches of 5
        "local-2-workers-batch-5": [
            "executor=local",
            "executor.n_workers=2",
            "executor.batch_size=5",
        ],
        "synchronous-batch-4": ["executor=synchronous", "executor.batch_size=4"],
    }
    results = {}
    for label, extra in runs.items():
        rc, out = run_cli(*TINY, *extra, results=tmp_path / label)
        assert rc == 0, out
        results[label] = records_of(tmp_path / label / "tiny")
    first = results["local-2-workers-batch-5"]
    assert len(first) == 2 * 6 * 2 * 4  # conditions × reps × estimators × parameters
    assert (first["status"] == "ok").all()
    assert first["ess_bulk"].notna().sum() == 2 * 6 * 4  # bayes_cc rows only
    for label, df in results.items():
        pd.testing.assert_frame_equal(numbers(df), numbers(first), obj=label)
    # batch files as the executor wrote them
    files = sorted(
        (tmp_path / "local-2-workers-batch-5" / "tiny" / "replications").rglob("*.parquet")
    )
    assert [f.name for f in files] == ["batch-00000.parquet", "batch-00001.parquet"] * 2
    summary = pd.read_parquet(tmp_path / "synchronous-batch-4" / "tiny" / "summary.parquet")
    assert {"bias", "coverage", "rmse", "failure_rate"} <= set(summary["measure"])


def test_resume_recomputes_only_deleted_batches(run_cli, tmp_path):
    args = [*TINY, "executor=synchronous", "executor.batch_size=2"]
    assert run_cli(*args)[0] == 0
    study = tmp_path / "results" / "tiny"
    before = records_of(study)
    files = sorted((study / "replications").rglob("batch-*.parquet"))
    assert len(files) == 6
    stamps = {f: f.stat().st_mtime_ns for f in files}
    deleted = [files[1], files[4]]
    for f in deleted:
        f.unlink()
    rc, out = run_cli(*args)
    assert rc == 0
    assert "2 batches to run, 4 finished earlier" in out
    for f in files:
        if f in deleted:
            assert f.exists()
        else:
            assert f.stat().st_mtime_ns == stamps[f], f"{f.name} was recomputed"
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(before))
    rc, out = run_cli(*args)
    assert "0 batches to run, 6 finished earlier" in out and "nothing to run" in out


def test_more_reps_and_levels_reuse_finished_batches(run_cli, tmp_path):
    base = [*TINY, "executor=synchronous", "executor.batch_size=4", "study.estimators=[ols_cc]"]
    assert run_cli(*base)[0] == 0
    study = tmp_path / "results" / "tiny"
    first = records_of(study)
    rc, out = run_cli(*base, "study.reps=8", "study.factors.N=[40,60]")
    assert rc == 0, out
    # Old conditions: batch 0 (reps 0-3) is kept, batch 1 grows from reps 4-5 to 4-7 and reruns;
    # the two new conditions run both of their batches.
    assert "6 batches to run, 2 finished earlier" in out
    grown = records_of(study)
    assert len(grown) == 4 * 8 * 4
    old = grown[grown["condition_id"].isin(first["condition_id"]) & (grown["rep"] < 6)]
    pd.testing.assert_frame_equal(numbers(old).reset_index(drop=True), numbers(first))


def test_changed_config_is_refused_unless_fresh(run_cli, tmp_path):
    args = [*TINY, "executor=synchronous", "study.estimators=[ols_cc]"]
    assert run_cli(*args)[0] == 0
    study = tmp_path / "results" / "tiny"
    before = {p: p.stat().st_mtime_ns for p in study.rglob("*") if p.is_file()}
    rc, out = run_cli(*args, "model.params.b1=0.7")
    assert rc == 2
    assert "study.name = 'tiny'" in out and "b1" in out and "fresh=true" in out
    assert {p: p.stat().st_mtime_ns for p in study.rglob("*") if p.is_file()} == before
    rc, out = run_cli(*args, "model.params.b1=0.7", "fresh=true")
    assert rc == 0, out
    assert set(records_of(study)["truth"][lambda s: s.index % 4 == 1]) == {0.7}
    assert read_manifest(study).numbers["model"]["params"]["b1"] == 0.7


def test_failing_replications_are_rows_and_the_study_goes_on(run_cli, tmp_path):
    # N = 7 with 50% MCAR: some replications have fewer than 4 complete cases
    args = [
        *TINY,
        "executor=synchronous",
        "study.estimators=[ols_cc]",
        "study.reps=30",
        "study.factors.N=[7]",
        "study.factors.missing_rate=[0.5]",
        "study.factors.mechanism=[MCAR]",
        "study.max_failure_rate=0.9",
    ]
    rc, out = run_cli(*args)
    assert rc == 0, out
    df = records_of(tmp_path / "results" / "tiny")
    assert len(df) == 30 * 4
    failed = df[df["status"] == "failed"]
    assert 0 < failed["rep"].nunique() < 30
    assert failed["error"].str.contains("complete cases").all()
    assert failed["estimate"].isna().all()
    summary = pd.read_parquet(tmp_path / "results" / "tiny" / "summary.parquet")
    rate = summary[summary["measure"] == "failure_rate"]["value"].iloc[0]
    assert rate == pytest.approx(failed["rep"].nunique() / 30)


def test_condition_past_failure_limit_stops_early(run_cli, tmp_path):
    args = [
        *TINY,
        "executor=synchronous",
        "executor.batch_size=2",
        "study.estimators=[ols_cc]",
        "study.reps=20",
        # N = 5 (ols_cc's minimum) with half of x missing: most fits have < 4 complete cases
        "study.factors.N=[5,40]",
        "study.factors.missing_rate=[0.5]",
        "study.factors.mechanism=[MCAR]",
        "study.min_reps_for_stop=4",
        "study.max_failure_rate=0.5",
    ]
    rc, out = run_cli(*args)
    assert rc == 1
    bad = condition_id({"N": 5, "missing_rate": 0.5, "mechanism": "MCAR"})
    assert f"condition {bad} stopped early" in out and "max_failure_rate=0.5" in out
    df = records_of(tmp_path / "results" / "tiny")
    assert df[df["N"] == 40]["rep"].nunique() == 20  # the healthy condition finished
    assert df[df["N"] == 5]["rep"].nunique() == 4  # stopped after min_reps_for_stop


# faults tier (a run killed by SIGKILL, two fresh processes); by default
# test_resume_recomputes_only_deleted_batches checks that a resume reuses finished batches
@pytest.mark.faults
def test_killed_run_resumes_without_recomputing(tmp_path):
    exe = Path(sys.executable).with_name("simstudy")
    results = tmp_path / "results"
    cmd = [
        str(exe),
        "run",
        f"results_dir={results}",
        *TINY,
        "executor=synchronous",
        "executor.batch_size=1",
        "study.reps=20",
        "study.factors.mechanism=[MAR]",
        "study.estimators=[bayes_cc]",
    ]
    replications = results / "tiny" / "replications"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if len(list(replications.rglob("batch-*.parquet"))) >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {f: f.stat().st_mtime_ns for f in replications.rglob("batch-*.parquet")}
    assert 3 <= len(done) < 20, "the run should have been killed halfway"
    assert (results / "tiny" / "run.lock").exists()  # left behind by the killed run
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{20 - len(done)} batches to run, {len(done)} finished earlier" in resumed.stderr
    for f, stamp in done.items():
        assert f.stat().st_mtime_ns == stamp
    df = records_of(results / "tiny")
    assert sorted(df["rep"].unique()) == list(range(20))
    assert not (results / "tiny" / "run.lock").exists()


def test_status_and_replay_reproduce_a_stored_replication(run_cli, tmp_path, capsys):
    from simstudy.cli import main

    args = [*TINY, "executor=synchronous", "study.factors.mechanism=[MAR]"]
    assert run_cli(*args)[0] == 0
    study = tmp_path / "results" / "tiny"
    assert main(["status", str(study)]) == 0
    assert "1/1 batches finished, 0 to run" in capsys.readouterr().out
    cid = records_of(study)["condition_id"].iloc[0]
    assert main(["replay", str(study), "--condition", cid, "--rep", "4"]) == 0
    assert "identical to the stored replication" in capsys.readouterr().out
    assert main(["replay", str(study), "--condition", "nope", "--rep", "4"]) == 2
    assert "--condition = 'nope'" in capsys.readouterr().err


def _thread_cores() -> list[int]:
    """The cores any thread of this process may run on."""
    tasks = os.listdir("/proc/self/task")
    return sorted({c for t in tasks for c in os.sched_getaffinity(int(t))})


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs Linux and at least two cores",
)
def test_local_cluster_pins_each_worker_and_its_threads_to_its_own_core():
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool

    def start_jax_then_report() -> list[int]:
        import jax
        import jax.numpy as jnp

        jax.block_until_ready(jnp.ones(4) + 1)  # starts XLA's thread pool after pinning
        return _thread_cores()

    cores = sorted(os.sched_getaffinity(0))[:2]
    with open_pool(ExecutorSettings(n_workers=2, dashboard=False)) as pool:
        pinned = pool.client.run(start_jax_then_report)
    assert sorted(tuple(c) for c in pinned.values()) == [(cores[0],), (cores[1],)]
    with open_pool(ExecutorSettings(n_workers=2, dashboard=False, pin_cores=False)) as pool:
        free = pool.client.run(_thread_cores)
    assert all(len(c) == len(os.sched_getaffinity(0)) for c in free.values())


def _faults_of_reused_blocks() -> int:
    """Minor page faults of a thread that mallocs, touches and frees the same blocks 200 times."""
    import ctypes
    import resource
    import threading

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    sizes = (300_000, 1_500_000, 5_000_000)  # like XLA's buffers: above glibc's mmap threshold
    out = {}

    def work() -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(200):
            blocks = [libc.malloc(s) for s in sizes]
            for block, size in zip(blocks, sizes, strict=True):
                ctypes.memset(block, 1, size)
            for block in blocks:
                libc.free(block)
        out["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out["faults"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_local_cluster_workers_reuse_freed_memory():
    """Workers keep freed blocks for reuse: only the first touch of each page faults."""
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool

    first_touch = (300_000 + 1_500_000 + 5_000_000) // 4096
    with open_pool(ExecutorSettings(n_workers=1, dashboard=False)) as pool:
        (faults,) = pool.client.run(_faults_of_reused_blocks).values()
    assert faults < 1.5 * first_touch
    # the same pattern under glibc's defaults (a fresh process) faults again and again
    code = "import test_execute as t; print(t._faults_of_reused_blocks())"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    default = int(subprocess.check_output([sys.executable, "-c", code], env=env, text=True))
    assert default > 1.5 * first_touch


def test_warm_tasks_run_once_per_condition_before_its_batches(tmp_path):
    """The runner's compile-first hook: each warm function once per condition, submitted
    before the condition's first batch, and the batch function sees only (condition, reps)."""
    from simstudy.execute.pools import SynchronousPool
    from simstudy.execute.runner import StopRule, plan_tasks, run_tasks
    from simstudy.store import replication_schema

    log = []
    conditions = [{"N": 1}, {"N": 2}]
    tasks = plan_tasks(tmp_path, conditions, reps=4, batch_size=2, config_hash="h").todo

    def run(condition, reps):
        log.append(("batch", condition["N"], tuple(reps)))
        return []

    report = run_tasks(
        SynchronousPool(),
        tasks,
        study_dir=tmp_path,
        schema=replication_schema({"N": "int"}),
        run_fn=run,
        fail_fn=lambda condition, reps, error: [],
        stop_rule=StopRule(1.0, 10),
        n_estimators=1,
        warm=[lambda condition: log.append(("warm", condition["N"]))],
    )
    assert report.batches_written == 4
    assert log == [
        ("warm", 1),
        ("batch", 1, (0, 1)),
        ("batch", 1, (2, 3)),
        ("warm", 2),
        ("batch", 2, (0, 1)),
        ("batch", 2, (2, 3)),
    ]
