"""Studies on a real SLURM (``pytest -m slurm -n0``, after ``slurm/local-slurm.sh start``).

Workers are SLURM jobs (``executor=slurm``) or ranks of an ``srun`` step
(``executor=slurm_runner``); their numbers must be the local executor's, bit for bit, and a
worker that retires at its ``--lifetime`` in the middle of a batch must leave that batch to
another worker, every row written once. Skipped where SLURM does not answer (``sinfo``).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, numbers, records_of

pytestmark = pytest.mark.slurm


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


@pytest.fixture(scope="module", autouse=True)
def _needs_slurm():
    """Skip (before the module's other fixtures run) where SLURM does not answer."""
    if not _slurm_answers():
        pytest.skip(
            "SLURM is not running here (sinfo failed or is missing): slurm/local-slurm.sh start"
        )


#: One condition, two batches of three replications: small, and still two tasks.
STUDY = [*TINY, "study.factors.mechanism=[MAR]", "executor.batch_size=3"]
COLUMNS = ("estimate", "se", "lower", "upper", "ess_bulk", "ess_tail", "rhat", "n_divergent")


def _slurm_overrides(logs: Path) -> list[str]:
    return [
        "executor=slurm",
        "executor.scheduler_host=127.0.0.1",
        "executor.slurm.memory=2GB",
        "executor.slurm.maximum_jobs=2",
        f"executor.slurm.log_directory={logs}",
    ]


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    """The study on the local executor: the numbers every cluster must reproduce."""
    from simstudy.cli import main

    root = tmp_path_factory.mktemp("local")
    assert main(["run", f"results_dir={root}", *STUDY, "executor=local"]) == 0
    return records_of(root / "tiny")


def _assert_same_numbers(records, local_records):
    assert len(records) == len(local_records) == 6 * 2 * 4  # reps × estimators × parameters
    assert (records["status"] == "ok").all()
    pd.testing.assert_frame_equal(
        numbers(records, COLUMNS), numbers(local_records, COLUMNS), check_exact=True
    )


def test_slurm_jobs_give_the_local_numbers_bit_for_bit(run_cli, tmp_path, local_records):
    rc, out = run_cli(*STUDY, *_slurm_overrides(tmp_path / "logs"))
    assert rc == 0, out
    assert "SLURM: up to 2 jobs of 1 workers" in out
    _assert_same_numbers(records_of(tmp_path / "results" / "tiny"), local_records)
    logs = sorted((tmp_path / "logs").glob("simstudy-worker-*.err"))
    assert logs, "no SLURM job wrote a log: the workers were not SLURM jobs"


def test_slurm_runner_in_one_allocation_gives_the_local_numbers(tmp_path, local_records):
    """``srun -n 3``: rank 0 the scheduler, rank 1 the study, rank 2 the one worker."""
    exe = Path(sys.executable).with_name("simstudy")
    cmd = [
        "srun",
        "-n",
        "3",
        "--overcommit",  # three tasks on however few cores this machine has
        "--mem=6G",
        "-t",
        "10",
        str(exe),
        "run",
        f"results_dir={tmp_path / 'results'}",
        *STUDY,
        "executor=slurm_runner",
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _assert_same_numbers(records_of(tmp_path / "results" / "tiny"), local_records)
    assert not list(tmp_path.glob("scheduler-*.json")), "the scheduler file was left behind"
    # nothing to run: rank 1 never starts the pool, and still closes the scheduler and workers
    started = time.monotonic()
    again = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to run" in again.stdout + again.stderr
    assert time.monotonic() - started < 240


def test_the_driver_as_a_batch_job(tmp_path, local_records):
    """``sbatch slurm/run-study.sbatch ... executor=slurm``: the driver is a job of one core
    that submits the worker job (one, on this two-core machine) itself."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SIMSTUDY": str(Path(sys.executable).with_name("simstudy"))}
    proc = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--mem-per-cpu=3G",
            "-o",
            str(tmp_path / "driver-%j.out"),
            str(repo / "slurm" / "run-study.sbatch"),
            f"results_dir={tmp_path / 'results'}",
            *STUDY,
            *_slurm_overrides(tmp_path / "logs"),
            "executor.slurm.maximum_jobs=1",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    (out,) = tmp_path.glob("driver-*.out")
    assert proc.returncode == 0, proc.stderr + out.read_text()[-3000:]
    assert "SLURM: up to 1 jobs of 1 workers" in out.read_text()
    _assert_same_numbers(records_of(tmp_path / "results" / "tiny"), local_records)


def _batch_functions():
    """A batch that takes 6 s, logging where each attempt started and finished, and the
    records of a failed one: local functions, so that they travel to SLURM jobs by value
    (the jobs cannot import this module)."""

    def _slow_batch(log_dir: str, condition, reps):
        """A batch of ``reps`` that takes 6 s; each attempt leaves a file naming its worker."""
        worker = f"{os.environ.get('SLURM_JOB_ID')}.{os.getpid()}"  # job and worker process
        name = f"{condition['N']}__{reps[0]}__{worker}__{time.time_ns()}"
        (Path(log_dir) / name).write_text("")
        time.sleep(6)
        from simstudy.design import condition_id  # a batch's records name its condition

        return [
            {
                "study": "s",
                "condition_id": condition_id(condition),
                "N": condition["N"],
                "rep": r,
                "seed": r,
                "estimator": "e",
                "parameter": "b",
                "estimate": float(r),
                "status": "ok",
                "error": "",
                "seconds": 6.0,
            }
            for r in reps
        ]

    def _failed(condition, reps, error):
        return [
            {"rep": r, "estimator": "e", "parameter": "b", "status": "failed", "error": error}
            for r in reps
        ]

    return _slow_batch, _failed


@pytest.mark.parametrize(
    ("cores", "jobs"),
    [(1, 2), (2, 1)],
    ids=["two-jobs-of-one-worker", "one-job-of-two-workers"],
)
def test_a_worker_retired_mid_batch_leaves_its_batch_to_another(tmp_path, cores, jobs):
    """Workers retire 20 s after they start, in the middle of a 6 s batch; the batch is run
    again by another worker (one of a job adapt submitted in the retired one's place, or the
    retiring one's sibling), and written once."""
    from simstudy.config import executor_settings
    from simstudy.execute.pools import open_pool
    from simstudy.execute.runner import StopRule, plan_tasks, run_tasks
    from simstudy.store import read_replications, replication_schema

    settings = executor_settings(
        {
            "name": "slurm",
            "dashboard": False,
            "scheduler_host": "127.0.0.1",
            "slurm": {
                "cores": cores,
                "maximum_jobs": jobs,
                "memory": "1GB",
                "walltime": "00:15:00",
                "lifetime": 20,
                "lifetime_stagger": 0,
                "log_directory": str(tmp_path / "logs"),
            },
        }
    )
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    slow_batch, failed = _batch_functions()
    conditions = [{"N": 1}, {"N": 2}]
    tasks = plan_tasks(tmp_path, conditions, reps=10, batch_size=2, config_hash="h").todo
    assert len(tasks) == 10
    with open_pool(settings) as pool:
        report = run_tasks(
            pool,
            tasks,
            study_dir=tmp_path,
            schema=replication_schema({"N": "int"}),
            run_fn=functools.partial(slow_batch, str(attempts)),
            fail_fn=failed,
            stop_rule=StopRule(1.0, 100),
            n_estimators=1,
        )
    assert report.batches_written == 10
    assert report.failed_fits == 0
    rows = read_replications(tmp_path)
    assert sorted(zip(rows["N"], rows["rep"], strict=True)) == [
        (n, r) for n in (1, 2) for r in range(10)
    ]  # every row exactly once
    assert (rows["status"] == "ok").all()
    tries: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for path in attempts.iterdir():
        n, start, worker, ns = path.name.split("__")
        tries.setdefault((n, start), []).append((int(ns), worker))
    assert len(tries) == 10
    redone = {batch: sorted(t) for batch, t in tries.items() if len(t) > 1}
    assert redone, f"no batch was cut short by a retiring worker: {tries}"
    for batch, attempts_of in redone.items():  # the last try ran on another worker than the first
        assert attempts_of[-1][1] != attempts_of[0][1], (batch, attempts_of)
    slurm_jobs = {worker.split(".")[0] for t in tries.values() for _, worker in t}
    assert len(slurm_jobs) > jobs, f"no job replaced a retired one: {slurm_jobs}"


@pytest.fixture(autouse=True)
def _no_jobs_left():
    """Each test ends within 9 minutes (a cluster that never replaces a worker would hang it),
    and leaves no worker job behind."""

    def too_long(signum, frame):
        raise TimeoutError("a slurm test ran past 540 s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(540)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    deadline = time.monotonic() + 60
    user = os.environ.get("USER", "root")
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-u", user, "-n", "simstudy-worker"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if not out.strip():
            return
        time.sleep(1)
    pytest.fail(f"SLURM jobs left running after the test:\n{out}")
