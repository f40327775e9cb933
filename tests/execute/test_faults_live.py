"""Faults on real processes: interrupts, killed workers, hung fits, memory, executors.

``pytest -m faults`` (run by ``.ci/run``); the cheap checks of the same properties are in
``test_faults.py``.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import TINY, numbers, records_of

from simstudy.cli import main

pytestmark = pytest.mark.faults

SIMSTUDY = str(Path(sys.executable).with_name("simstudy"))
#: One MCMC estimator, one replication per batch, on two local workers: many small tasks.
LIVE = [
    *TINY,
    "executor=local",
    "executor.n_workers=2",
    "executor.batch_size=1",
    "study.reps=12",
    "study.factors.mechanism=[MAR]",
    "study.estimators=[ols_cc,bayes_cc]",
]


def _batches(study: Path) -> list[Path]:
    return sorted((study / "replications").rglob("batch-*.parquet"))


def _wait_for(study: Path, n: int, proc: subprocess.Popen, limit: float = 240) -> None:
    deadline = time.monotonic() + limit
    while len(_batches(study)) < n:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no batches written in time"
        time.sleep(0.05)


def _reference(tmp_path: Path, args: list[str]) -> pd.DataFrame:
    """An undisturbed run of the same study in this process (synchronous executor)."""
    root = tmp_path / "reference"
    assert main(["run", f"results_dir={root}", *args, "executor=synchronous"]) == 0
    return records_of(root / "tiny")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_how_to_resume_and_leaves_no_lock(tmp_path, sig):
    results = tmp_path / "results"
    cmd = [SIMSTUDY, "run", f"results_dir={results}", *LIVE]
    # Ctrl-C goes to the whole foreground process group: the driver and every worker. The
    # driver must start with SIGINT's default action, as in a terminal: under a background job
    # (as CI may run) this process ignores SIGINT, a child would inherit that and, as Unix
    # programs do, keep it. A handled signal is reset to the default on exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_for(results / "tiny", 2, proc)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), out
    assert "run the same command again to resume" in out
    assert "Traceback" not in out, out
    assert not (results / "tiny" / "run.lock").exists()
    assert len(out.splitlines()) < 15, out
    done = len(_batches(results / "tiny"))
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} finished earlier" in resumed.stderr
    pd.testing.assert_frame_equal(
        numbers(records_of(results / "tiny")), numbers(_reference(tmp_path, LIVE))
    )


def _workers(parent: int | None = None) -> list[psutil.Process]:
    """Dask worker processes under ``parent`` (default: this process)."""
    found = []
    for p in psutil.Process(parent).children(recursive=True):
        try:
            command = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            found.append(p)
    return found


def test_workers_killed_again_and_again_lose_no_replication(run_cli, tmp_path):
    """As an OOM killer or preempted nodes do: no batch becomes failed rows, and the rerun
    computes what was lost, equal to an undisturbed run."""
    # Enough batches that the run outlives several rounds of kills even with a warm compile
    # cache, and kills that start on progress (the first batch written), not after a fixed
    # sleep that a fast machine finishes the whole study in.
    args = [*LIVE, "study.reps=36"]
    study = tmp_path / "results" / "tiny"
    stop = threading.Event()
    kills = []

    def killer():
        while not stop.is_set() and not _batches(study):
            stop.wait(0.05)
        while not stop.is_set() and len(kills) < 12:
            for proc in _workers():
                try:
                    proc.kill()
                    kills.append(proc.pid)
                except psutil.NoSuchProcess:
                    pass
            stop.wait(1.5)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        rc, out = run_cli(*args, "executor.retries=0")
    finally:
        stop.set()
        thread.join()
    assert len(kills) >= 4, f"the workers were not killed again and again: {kills}"
    records = records_of(study)
    assert (records["status"] == "ok").all(), records[records["status"] != "ok"]["error"]
    if rc != 0:
        assert rc == 1 and "lost to the machine, not a model failure" in out, out
    rc, out = run_cli(*args)
    assert rc == 0, out
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(_reference(tmp_path, args)))


def _children_while(proc: subprocess.Popen) -> dict[int, psutil.Process]:
    """Worker processes of ``proc`` seen while it runs (collected in a thread until it ends)."""
    seen: dict[int, psutil.Process] = {}

    def watch() -> None:
        while proc.poll() is None:
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for child in children:
                seen.setdefault(child.pid, child)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    return seen  # filled in as the run goes


#: What the driver's terminal must not show when a worker is restarted on purpose.
NOISE = ("Traceback", "CommClosedError", "terminate called", "Aborted", "exception not rethrown")


def test_a_fit_past_fit_timeout_is_a_failed_row_and_its_worker_is_restarted(tmp_path):
    results = tmp_path / "results"
    args = [
        *LIVE,
        "study.reps=2",
        "study.estimators=[bayes_cc]",
        "sampler.warmup=2000000",  # minutes of sampling: far past the limit
        "executor.fit_timeout=4",
    ]
    started = time.monotonic()
    # A subprocess: the workers write to the driver's stderr, which capsys would not see.
    proc = subprocess.Popen(
        [SIMSTUDY, "run", f"results_dir={results}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = _children_while(proc)
    out, err = proc.communicate(timeout=300)
    # every fit failed: the run says so and exits 1, as a run whose fits all fail does
    assert proc.returncode == 1 and "no successful fit of bayes_cc" in out, out + err
    assert time.monotonic() - started < 240
    assert "ran past executor.fit_timeout=4 s" in out
    noise = [line for line in err.splitlines() if any(word in line for word in NOISE)]
    assert not noise, err
    records = records_of(results / "tiny")
    assert (records["status"] == "failed").all()
    assert records["error"].str.contains("fit_timeout").all()
    alive = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, "the restarted workers should be gone with the cluster"


def test_workers_that_never_come_back_stop_the_run_which_the_same_command_resumes(tmp_path):
    """Workers killed as fast as they start: Dask drops their nannies, simstudy starts new
    ones a few times, then the run stops (exit 1) naming the batches left; the rerun
    computes them, equal to an undisturbed run."""
    results = tmp_path / "results"
    study = results / "tiny"
    args = [*LIVE, "study.reps=36"]
    cmd = [SIMSTUDY, "run", f"results_dir={results}", *args, "executor.no_worker_timeout=10"]
    # Dask drops a nanny whose worker is not back within this time (default 15 s)
    env = {**os.environ, "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "3s"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    _wait_for(study, 1, proc)
    first_kill, kills = time.monotonic(), 0
    while proc.poll() is None and time.monotonic() - first_kill < 300:
        for child in _workers(proc.pid):
            try:
                child.kill()
                kills += 1
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.3)  # faster than a worker starts: Dask drops its nanny
    took = time.monotonic() - first_kill
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)
    reader.join(timeout=60)
    text = "".join(out)
    assert proc.returncode == 1, text
    assert took < 240, text
    assert kills >= 4, text
    (line,) = [x for x in text.splitlines() if x.startswith("run stopped:")]
    assert "no worker has been alive for 10 s" in line and "batches left (condition " in line
    assert "run the same command again to resume" in line
    assert "starting new ones" in text  # the dropped workers were replaced before giving up
    done = len(_batches(study))
    assert done < 36
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{done} finished earlier" in resumed.stderr
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(_reference(tmp_path, args)))


def test_a_worker_out_of_memory_is_reported_with_condition_and_memory(run_cli, tmp_path):
    rc, out = run_cli(*LIVE, "study.reps=1", "executor.memory_limit=200MB", "executor.retries=0")
    assert rc == 1, out
    assert "lost to the machine" in out and "0.19 GiB" in out and "memory" in out
    assert "condition " in out and "N=40" in out
    assert not _batches(tmp_path / "results" / "tiny")  # nothing stored as a model failure


def test_local_synchronous_and_replay_agree_bit_for_bit(run_cli, tmp_path, capsys):
    """The default study's sampler (ChEES, replications vectorised): the same numbers on two
    local workers, in this process, and replayed."""
    args = ["+experiment=smoke", "executor.dashboard=false", "study.estimators=[bayes_fiml]"]
    rc, out = run_cli(*args, "executor.n_workers=2", results=tmp_path / "local")
    assert rc == 0, out
    rc, out = run_cli(*args, "executor=synchronous", results=tmp_path / "sync")
    assert rc == 0, out
    local = records_of(tmp_path / "local" / "missing_x_smoke")
    sync = records_of(tmp_path / "sync" / "missing_x_smoke")
    pd.testing.assert_frame_equal(numbers(local), numbers(sync))
    study = tmp_path / "local" / "missing_x_smoke"
    cid = local["condition_id"].iloc[0]
    assert main(["replay", str(study), "--condition", cid, "--rep", "3"]) == 0
    assert "identical to the stored replication" in capsys.readouterr().out
