"""Run a study's batches through a bounded sliding window, resuming what is finished.

The runner knows batches, files and counts, nothing of models: it is handed ``run_fn(condition,
reps) -> records`` and ``fail_fn(condition, reps, error) -> records`` by the command line.

Two kinds of trouble are kept apart. A fit that fails, or runs past ``fit_timeout``, is data:
its rows are written with ``status='failed'`` and the reason. A task lost to the machine (its
worker killed, out of memory, preempted, its connection gone) is not: it is resubmitted, and
when it keeps dying its batch is left unwritten, so that the next run computes it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from simstudy.design import batches, condition_id, runs
from simstudy.errors import InputError
from simstudy.execute.eta import BatchTime, batch_fit_seconds, compile_seconds
from simstudy.execute.pools import Pool
from simstudy.execute.progress import RunProgress
from simstudy.execute.watchdog import NoWorkers
from simstudy.store import batch_path, batch_state, condition_dir, write_batch

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class BatchTask:
    """Replications ``[start, stop)`` of one condition, part of batch ``k``, written to ``path``.

    ``path`` is batch ``k``'s file, or a part file beside it when a stored file of batch ``k``
    already holds some of its reps (see :func:`simstudy.store.batch_path`).
    """

    condition: dict[str, Any]
    cond_id: str
    k: int
    start: int
    stop: int
    path: Path | None = None

    def target(self, study_dir: Path) -> Path:
        """The file this task writes."""
        return self.path or batch_path(study_dir, self.cond_id, self.k)


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
    timed_out: int = 0
    stopped: dict[str, str] = field(default_factory=dict)
    #: Batches lost to the machine after every resubmission, ``(cond_id, k) -> why``; unwritten.
    lost: dict[tuple[str, int], str] = field(default_factory=dict)
    reps_run: dict[str, int] = field(default_factory=dict)
    #: Conditions that reached their precision target, ``cond_id -> why``.
    reached: dict[str, str] = field(default_factory=dict)
    batches_not_needed: int = 0
    #: Why the run stopped before its batches were done (no worker left), or "".
    no_workers: str = ""
    #: Batches ``(cond_id, k)`` neither written nor lost when the run stopped early; unwritten.
    left: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class TaskPlan:
    """The batches still to run, those finished on disk, and files that must be recomputed."""

    todo: list[BatchTask]
    done: int
    #: ``path -> why``: files present but unusable (corrupted, truncated, another config).
    unusable: dict[Path, str] = field(default_factory=dict)
    #: Conditions left out because an earlier run stopped them.
    skipped_conditions: list[str] = field(default_factory=list)


def plan_tasks(
    study_dir: Path,
    conditions: Sequence[Mapping[str, Any]],
    reps: int,
    batch_size: int,
    config_hash: str,
    skip: Sequence[str] = (),
) -> TaskPlan:
    """The batches still to run, and how many are already finished on disk.

    A condition's stored reps are those of its sound batch files (checksum, condition and
    ``config_hash`` match, whatever their names or rep ranges); a batch of the grid is
    finished when they hold all its reps. A file that covers more than the design needs (reps
    were lowered) is finished work and stays; reps a batch lacks are run into a part file
    beside its stored one, never by rewriting it. Unsound files are listed in ``unusable``
    and their batches planned again. Conditions in ``skip`` (stopped earlier) are not planned.
    Raises :class:`InputError` when two sound files hold the same reps of a condition.
    """
    plan = TaskPlan([], 0)
    for condition in conditions:
        cid = condition_id(condition)
        if cid in skip:
            plan.skipped_conditions.append(cid)
            continue
        stored = stored_reps(study_dir, cid, config_hash, plan.unusable)
        kept = set(stored.values())
        for k, start, stop in batches(reps, batch_size):
            lacking = [r for r in range(start, stop) if r not in stored]
            if not lacking:
                plan.done += 1
                continue
            for first, last in runs(lacking):
                own = batch_path(study_dir, cid, k)
                path = own if first == start and own not in kept else None
                path = path or batch_path(study_dir, cid, k, first)
                plan.todo.append(BatchTask(dict(condition), cid, k, first, last, path))
    return plan


def stored_reps(
    study_dir: Path, cond_id: str, config_hash: str, unusable: dict[Path, str]
) -> dict[int, Path]:
    """``rep -> file`` of a condition's sound batch files written under ``config_hash``.

    Files that are not sound (:func:`simstudy.store.batch_state`) or were written under
    another config go into ``unusable`` with the reason. Raises :class:`InputError` when two
    files hold a rep.
    """
    held: dict[int, Path] = {}
    for path in sorted(condition_dir(study_dir, cond_id).glob("batch-*.parquet")):
        state = batch_state(path)
        if state.problem:
            unusable[path] = state.problem
            continue
        if state.config_hash != config_hash:
            unusable[path] = (
                f"written under config hash {state.config_hash or '(none)'}, "
                f"not this study's {config_hash}"
            )
            continue
        assert state.reps is not None
        for rep in range(*state.reps):
            if rep in held:
                raise InputError(
                    "results_dir",
                    str(study_dir),
                    f"a study directory whose batch files hold each replication once: {path} "
                    f"and {held[rep]} both hold rep {rep} of condition {cond_id}; move the "
                    "copy away",
                )
            held[rep] = path
    return held


def fit_counts(records: Records) -> tuple[int, int]:
    """(fits, failed fits) in a batch's records; a fit is one replication × estimator."""
    status: dict[tuple[int, str], bool] = {}
    for r in records:
        key = (r["rep"], r["estimator"])
        status[key] = status.get(key, False) or r["status"] != "ok"
    return len(status), sum(status.values())


#: Exceptions that say the machine lost a task, not that its fits failed. Anything else a
#: task raises (run_fn turns model errors into rows) is a deterministic error: stored as data.
INFRASTRUCTURE_ERRORS = frozenset(
    {"KilledWorker", "CommClosedError", "CancelledError", "FutureCancelledError"}
)


def is_infrastructure(exc: BaseException) -> bool:
    """Whether a task's exception means its worker or connection was lost."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & INFRASTRUCTURE_ERRORS) or isinstance(
        exc, MemoryError | ConnectionError | CancelledError | TimeoutError
    )


@dataclass(frozen=True)
class Outcome:
    """What a batch task returns: its records, the worker to recycle if a fit hung, its time."""

    records: Records
    stuck_worker: str | None = None
    #: Wall seconds the batch ran on its worker, and those of them spent compiling.
    seconds: float = field(default=float("nan"), compare=False)
    compile_seconds: float = field(default=0.0, compare=False)


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


def _exit_unfinalised() -> None:
    """End this process, when it exits, before Python finalises it (a worker's, to restart).

    A thread still inside a compiled program cannot be stopped; the interpreter's shutdown
    would unwind it through XLA's C++ frames and abort the process (``terminate called``,
    ``FATAL: exception not rethrown``) on the driver's terminal. By the time exit handlers
    run, the worker has closed; handlers registered earlier are skipped.
    """

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(leave)


def run_guarded(
    fn: Callable[..., Records],
    fail_fn: Callable[[dict[str, Any], list[int], str], Records],
    timeout: float | None,
    condition: dict[str, Any],
    reps: list[int],
    *_ready: Any,
) -> Outcome:
    """``fn(condition, reps)`` with a time limit, as a task that waits for ``_ready`` tasks.

    A compiled program cannot be interrupted, so the batch runs in a daemon thread that this
    one waits for. Past ``timeout`` seconds its fits are recorded as failed, with the reason,
    and the worker is named in the outcome so that the driver restarts it (in the synchronous
    executor the thread is abandoned).
    """
    compiled, start = compile_seconds(), time.perf_counter()

    def timed(records: Records) -> Outcome:
        wall = time.perf_counter() - start
        return Outcome(records, seconds=wall, compile_seconds=compile_seconds() - compiled)

    if timeout is None:
        return timed(fn(condition, reps))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["records"] = fn(condition, reps)
        except BaseException as exc:  # handed to the waiting thread, raised there
            box["error"] = exc

    thread = threading.Thread(target=target, name="simstudy-batch", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        why = (
            f"fit_timeout: the batch of {len(reps)} replications ran past {timeout:.0f} s "
            f"(executor.fit_timeout per replication × {len(reps)}); its fits never finished"
        )
        worker = _worker_address()
        if worker is not None:  # the driver restarts this worker: let it end quietly
            _exit_unfinalised()
        return Outcome(fail_fn(condition, reps, why), worker or "this process")
    if "error" in box:
        raise box["error"]
    return timed(box["records"])


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
    config_hash: str = "",
    window: int | None = None,
    progress: RunProgress | None = None,
    warm: Sequence[Callable[[dict[str, Any]], Any]] = (),
    fit_timeout: float | None = None,
    resubmits: int = 1,
    describe_loss: Callable[[BatchTask, BaseException], str] | None = None,
    reached: Callable[[str], str | None] | None = None,
    per_condition: int | None = None,
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
        Produce a batch's records; records for a batch whose fits raised or timed out.
    stop_rule
        When to give up on a condition: its queued batches are not submitted and those
        waiting for a worker are cancelled.
    n_estimators
        Estimators per replication (to turn fits into replications for the stop rule).
    config_hash
        Written into each batch file (see :func:`simstudy.store.write_batch`).
    window
        Tasks in flight at once; default two per worker.
    progress
        Progress display, updated per batch.
    warm
        Functions of a condition run once per condition, as tasks of their own, before its
        batches (which wait for them): e.g. compiling the condition's programs, one per
        worker at a time, for the batches to load. They must not raise.
    fit_timeout
        Seconds per replication a batch may take (None: no limit); see :func:`run_guarded`.
    resubmits
        Times a batch lost to the machine is submitted again in this run before it is left
        for the next run.
    describe_loss
        Says why a batch was lost, for the report (default: the exception).
    reached
        For a precision target: called with a condition id after each of its batches is
        written, returns why the condition has enough replications (or None); its other
        batches are then not run (``RunReport.reached``).
    per_condition
        At most this many batches of one condition in flight (None: no limit), so that a
        condition that reaches its target early has few batches to cancel.

    When the pool says no worker is left (:class:`~simstudy.execute.watchdog.NoWorkers`), the
    run stops: the batches not written are in ``RunReport.left``, the reason in
    ``RunReport.no_workers``.

    Returns
    -------
    RunReport
    """
    report = RunReport()
    window = window or 2 * pool.n_workers
    queue = deque(tasks)
    inflight: dict[Any, tuple[BatchTask, Any]] = {}
    fits: dict[str, list[int]] = {}
    losses: dict[tuple[str, int], int] = {}
    cold: set[tuple[str, int]] = set()
    finished = pool.completed()
    warmed: dict[str, list[Any]] = {}

    def submit(task: BatchTask) -> None:
        if task.cond_id not in warmed:
            warmed[task.cond_id] = [pool.submit(fn, task.condition) for fn in warm]
        reps = list(range(task.start, task.stop))
        limit = None if fit_timeout is None else fit_timeout * len(reps)
        # A resubmitted batch waits for nothing: its warm task may have died with a worker.
        ready = () if (task.cond_id, task.k) in cold else warmed[task.cond_id]
        handle = pool.submit(run_guarded, run_fn, fail_fn, limit, task.condition, reps, *ready)
        inflight[handle.key] = (task, handle)
        finished.add(handle)

    def busy(cond_id: str) -> bool:
        if per_condition is None:
            return False
        return sum(t.cond_id == cond_id for t, _ in inflight.values()) >= per_condition

    def fill() -> None:
        waiting: deque[BatchTask] = deque()
        while queue and len(inflight) < window:
            task = queue.popleft()
            if task.cond_id in report.stopped:
                report.batches_not_run += 1
            elif task.cond_id in report.reached:
                report.batches_not_needed += 1
            elif busy(task.cond_id):
                waiting.append(task)
            else:
                submit(task)
        queue.extendleft(reversed(waiting))

    def cancel(cond_id: str) -> int:
        n = 0
        for key, (task, handle) in list(inflight.items()):
            if task.cond_id == cond_id and pool.cancel(handle):
                del inflight[key]
                n += 1
        return n

    def stop(cond_id: str, why: str) -> None:
        report.stopped[cond_id] = why
        report.batches_not_run += cancel(cond_id)

    def done() -> Iterator[Any]:
        try:
            yield from finished
        except NoWorkers as exc:  # nothing would ever finish: say what is left, and stop
            report.no_workers = str(exc)

    fill()
    for handle in done():
        if handle.key not in inflight:  # cancelled after a stop
            continue
        task, submitted = inflight.pop(handle.key)
        reps = list(range(task.start, task.stop))
        try:
            outcome = handle.result()
            records = outcome.records
        except NoWorkers as exc:  # its result went with its worker, and no worker is left
            inflight[handle.key] = (task, submitted)
            report.no_workers = str(exc)
            break
        except Exception as exc:
            if is_infrastructure(exc):
                key = (task.cond_id, task.k)
                if key not in cold and warmed.get(task.cond_id):
                    # it may be its warm task that died, not the batch: once more, free of it
                    cold.add(key)
                    queue.appendleft(task)
                    fill()
                    continue
                n = losses[key] = losses.get(key, 0) + 1
                if n <= resubmits:
                    queue.appendleft(task)
                else:
                    why = describe_loss(task, exc) if describe_loss else f"{type(exc).__name__}"
                    report.lost[(task.cond_id, task.k)] = why
                fill()
                continue
            # a deterministic error of the task itself (run_fn turns fit errors into rows)
            records = fail_fn(task.condition, reps, f"{type(exc).__name__}: {exc}")
            outcome = Outcome(records)
        if outcome.stuck_worker is not None:
            report.timed_out += 1
            pool.recycle(outcome.stuck_worker)
        write_batch(
            task.target(study_dir),
            records,
            schema,
            (task.start, task.stop),
            config_hash,
        )
        n_fits, n_failed = fit_counts(records)
        report.batches_written += 1
        report.fits += n_fits
        report.failed_fits += n_failed
        report.reps_run[task.cond_id] = report.reps_run.get(task.cond_id, 0) + len(reps)
        counts = fits.setdefault(task.cond_id, [0, 0])
        counts[0] += n_fits
        counts[1] += n_failed
        if (
            task.cond_id not in report.stopped
            and counts[0] >= stop_rule.min_reps * n_estimators
            and counts[1] / counts[0] > stop_rule.max_failure_rate
        ):
            stop(
                task.cond_id,
                f"{counts[1]} of {counts[0]} fits failed, more than max_failure_rate="
                f"{stop_rule.max_failure_rate:g}; first error: "
                + next((r["error"] for r in records if r["status"] != "ok"), ""),
            )
        elif reached is not None and task.cond_id not in report.reached:
            why = reached(task.cond_id)
            if why is not None:
                report.reached[task.cond_id] = why
                report.batches_not_needed += cancel(task.cond_id)
        if progress is not None:
            fit = batch_fit_seconds(records)
            timing = BatchTime(outcome.seconds, fit, outcome.compile_seconds)
            progress.update(1, n_fits, n_failed, timing)
        fill()
    if report.no_workers:
        for _, handle in inflight.values():
            pool.cancel(handle)
        over = {**report.stopped, **report.reached}
        waiting = [task for task, _ in inflight.values()] + list(queue)
        report.left = sorted((t.cond_id, t.k) for t in waiting if t.cond_id not in over)
    return report
