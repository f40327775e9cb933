"""Run a study's batches through a bounded sliding window, resuming what is finished.

The runner knows batches, files and counts, nothing of models: it is handed ``run_fn(condition,
reps) -> records`` and ``fail_fn(condition, reps, error) -> records`` by the command line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from simstudy.design import batches, condition_id
from simstudy.execute.pools import Pool
from simstudy.execute.progress import RunProgress
from simstudy.store import batch_path, batch_reps, write_batch

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class BatchTask:
    """Replications ``[start, stop)`` of one condition, written as batch ``k``."""

    condition: dict[str, Any]
    cond_id: str
    k: int
    start: int
    stop: int


@dataclass
class StopRule:
    """Stop a condition whose share of failed fits passes a limit.

    Attributes
    ----------
    max_failure_rate
        Largest tolerated share of failed fits (replication × estimator).
    min_reps
        Replications of a condition needed before the rule is applied.
    """

    max_failure_rate: float
    min_reps: int


@dataclass
class RunReport:
    """What a run did."""

    batches_written: int = 0
    batches_skipped: int = 0
    batches_not_run: int = 0
    fits: int = 0
    failed_fits: int = 0
    stopped: dict[str, str] = field(default_factory=dict)


def plan_tasks(
    study_dir: Path, conditions: Sequence[Mapping[str, Any]], reps: int, batch_size: int
) -> tuple[list[BatchTask], int]:
    """The batches still to run, and how many are already finished on disk.

    A batch is finished when its file exists and covers exactly its rep range.
    """
    todo, done = [], 0
    for condition in conditions:
        cid = condition_id(condition)
        for k, start, stop in batches(reps, batch_size):
            if batch_reps(batch_path(study_dir, cid, k)) == (start, stop):
                done += 1
            else:
                todo.append(BatchTask(dict(condition), cid, k, start, stop))
    return todo, done


def _fit_counts(records: Records) -> tuple[int, int]:
    """(fits, failed fits) in a batch's records; a fit is one replication × estimator."""
    status: dict[tuple[int, str], bool] = {}
    for r in records:
        key = (r["rep"], r["estimator"])
        status[key] = status.get(key, False) or r["status"] != "ok"
    return len(status), sum(status.values())


def _after(fn: Callable[..., Records], condition: dict[str, Any], reps: list[int], *_ready: Any):
    """``fn(condition, reps)``, as a task that waits for the tasks passed in ``_ready``."""
    return fn(condition, reps)


def run_tasks(
    pool: Pool,
    tasks: Sequence[BatchTask],
    *,
    study_dir: Path,
    schema: pa.Schema,
    run_fn: Callable[[dict[str, Any], list[int]], Records],
    fail_fn: Callable[[dict[str, Any], list[int], str], Records],
    stop_rule: StopRule,
    n_estimators: int,
    window: int | None = None,
    progress: RunProgress | None = None,
    warm: Sequence[Callable[[dict[str, Any]], Any]] = (),
) -> RunReport:
    """Submit batches through a sliding window and write each as it completes.

    Parameters
    ----------
    pool
        Where tasks run.
    tasks
        Batches to run (see :func:`plan_tasks`).
    study_dir
        The study's output directory.
    schema
        Arrow schema of the replication records.
    run_fn, fail_fn
        Produce a batch's records; records for a batch whose task raised.
    stop_rule
        When to give up on a condition.
    n_estimators
        Estimators per replication (to turn fits into replications for the stop rule).
    window
        Tasks in flight at once; default two per worker.
    progress
        Progress display, updated per batch.
    warm
        Functions of a condition run once per condition, as tasks of their own, before its
        batches (which wait for them): e.g. compiling the condition's programs, one per
        worker at a time, for the batches to load. They must not raise.

    Returns
    -------
    RunReport
    """
    report = RunReport()
    window = window or 2 * pool.n_workers
    queue = deque(tasks)
    inflight: dict[Any, BatchTask] = {}
    fits: dict[str, list[int]] = {}
    finished = pool.completed()
    warmed: dict[str, list[Any]] = {}

    def fill() -> None:
        while queue and len(inflight) < window:
            task = queue.popleft()
            if task.cond_id in report.stopped:
                report.batches_not_run += 1
                continue
            if task.cond_id not in warmed:
                warmed[task.cond_id] = [pool.submit(fn, task.condition) for fn in warm]
            reps = list(range(task.start, task.stop))
            handle = pool.submit(_after, run_fn, task.condition, reps, *warmed[task.cond_id])
            inflight[handle.key] = task
            finished.add(handle)

    fill()
    for handle in finished:
        task = inflight.pop(handle.key)
        reps = list(range(task.start, task.stop))
        try:
            records = handle.result()
        except Exception as exc:  # the task itself died, e.g. its worker was killed
            records = fail_fn(task.condition, reps, f"{type(exc).__name__}: {exc}")
        write_batch(
            batch_path(study_dir, task.cond_id, task.k), records, schema, (task.start, task.stop)
        )
        n_fits, n_failed = _fit_counts(records)
        report.batches_written += 1
        report.fits += n_fits
        report.failed_fits += n_failed
        counts = fits.setdefault(task.cond_id, [0, 0])
        counts[0] += n_fits
        counts[1] += n_failed
        if (
            task.cond_id not in report.stopped
            and counts[0] >= stop_rule.min_reps * n_estimators
            and counts[1] / counts[0] > stop_rule.max_failure_rate
        ):
            report.stopped[task.cond_id] = (
                f"{counts[1]} of {counts[0]} fits failed, more than max_failure_rate="
                f"{stop_rule.max_failure_rate:g}; first error: "
                + next((r["error"] for r in records if r["status"] != "ok"), "")
            )
        if progress is not None:
            progress.update(1, n_fits, n_failed)
        fill()
    return report
