"""Running a study: the manifest, the lock, the batches on a pool, the summary. Prints nothing.

:func:`run_study` is what ``simstudy run`` and :meth:`simstudy.api.Study.run` do: it checks
the results directory against the plan (exit 2 before any work where they disagree), takes
the study's lock, writes the manifest, plans the batches still to run, runs them on the
executor's pool (compile tasks first where workers can share programs), records conditions a
stop rule or the precision target ended, aggregates what is stored into ``summary.parquet``
and the tables, and returns what happened (:class:`RunOutcome`). Notices during the run go
to ``notify``; progress to what ``make_progress`` makes; the terminal output is the CLI's.
An interruption (``KeyboardInterrupt``, or a subclass the caller raises on SIGTERM) is
recorded in the manifest and raised again.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simstudy.errors import InputError


@dataclass
class RunOutcome:
    """What a run did.

    Attributes
    ----------
    plan, study_dir
        The study run and its directory.
    summary
        The performance measures of every stored replication (None: nothing stored yet).
    layout
        How the tables lay out the summary (the CLI's terminal tables use it too).
    report
        The runner's report (None: nothing was left to run).
    skipped
        Batches finished by earlier runs.
    skipped_conditions
        Conditions an earlier run stopped and this one did not run (``retry_stopped``).
    design_ids
        The ids of the design's conditions.
    seconds
        Wall time of the batches.
    """

    plan: Any
    study_dir: Path
    summary: Any
    layout: Any
    report: Any
    skipped: int
    skipped_conditions: list[str]
    design_ids: set[str]
    seconds: float


def _no_notices(text: str) -> None:
    return None


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _compile_tasks(plan: Any, pool: Any) -> list[Any]:
    """One compile task per fitting unit of a condition, where workers can share programs.

    Several workers share what one compiled through JAX's persistent cache; without the
    cache, or with one worker, each worker compiles what it fits, and nothing is gained.
    """
    from simstudy.engine import persistent_cache_dir, replicate

    if not plan.executor.compile_first or pool.n_workers < 2 or plan.kind == "sbc":
        return []
    if persistent_cache_dir() is None:
        return []
    return [
        functools.partial(replicate.compile_unit, plan, name=name)
        for name in replicate.compiled_units(plan)
    ]


def conditions_of(plan: Any) -> list[dict[str, Any]]:
    """The study's conditions; exit 2 when its exclude rules leave none."""
    from simstudy.design import expand_grid

    conditions = expand_grid(plan.factors, plan.exclude)
    if not conditions:
        raise InputError(
            "study.exclude",
            [dict(e) for e in plan.exclude],
            "rules that leave at least one condition",
        )
    return conditions


def convergence_policy(plan: Any, **changes: Any) -> Any:
    """The plan's ``aggregate`` rule for which fits count (``changes``: fields replaced)."""
    from simstudy.aggregate import ConvergencePolicy

    agg = plan.aggregate
    fields = {
        "kind": agg.policy,
        "rhat_max": agg.rhat_max,
        "ess_min": agg.ess_min,
        "allow_divergent": agg.allow_divergent,
    }
    return ConvergencePolicy(**{**fields, **{k: v for k, v in changes.items() if v is not None}})


def design_of(plan: Any) -> tuple[set[str], int]:
    """The design's condition ids and reps: what a summary counts (stored extras left out)."""
    from simstudy.design import condition_id

    return {condition_id(c) for c in conditions_of(plan)}, plan.reps


def _lost_batch(plan: Any, pool: Any, task: Any, exc: BaseException) -> str:
    """Why a batch was lost to the machine: the condition, the error, the workers' memory."""
    limit = pool.memory_limit() if hasattr(pool, "memory_limit") else None
    if limit:
        memory = f"each worker may use {limit / 2**30:.2f} GiB (executor.memory_limit)"
    elif getattr(pool, "memory_known", True):
        memory = "workers have no memory limit"
    else:
        memory = "the workers' memory limit is not known (no worker was alive to ask)"
    condition = ", ".join(f"{k}={v}" for k, v in task.condition.items())
    return (
        f"condition {task.cond_id} ({condition}), batch {task.k} (reps {task.start}-"
        f"{task.stop - 1}): {type(exc).__name__}: its workers died while running it, e.g. "
        f"killed or out of memory; {memory}. Fewer workers (executor.n_workers) or smaller "
        "batches (executor.batch_size) give each more room"
    )


def _run_record(plan: Any, started: float, status: str, report: Any = None) -> dict[str, Any]:
    """One entry of the manifest's history of runs."""
    import socket

    entry: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "status": status,
        "host": socket.gethostname(),
        "executor": plan.executor.name,
        "reps": plan.reps,
        "factors": {k: list(v) for k, v in plan.factors.items()},
    }
    if report is not None:
        entry.update(
            batches_written=report.batches_written,
            fits=report.fits,
            failed_fits=report.failed_fits,
            timed_out_batches=report.timed_out,
            lost_batches=len(report.lost),
            left_batches=len(report.left),
            stopped=sorted(report.stopped),
        )
    return entry


def _precision_check(plan: Any, study_dir: Path) -> Any:
    """``cond_id -> why | None``: whether a condition's stored reps reach ``study.target``."""
    from simstudy.aggregate.precision import target_reached
    from simstudy.aggregate.stream import read_condition
    from simstudy.store import condition_dir

    policy = convergence_policy(plan)

    def check(cond_id: str) -> str | None:
        folder = condition_dir(study_dir, cond_id)
        if not folder.is_dir() or not any(folder.glob("batch-*.parquet")):
            return None
        records = read_condition(folder)
        records = records[records["rep"] < plan.reps]
        ok, why = target_reached(records, plan.target, plan.reference, policy)
        return why if ok else None

    return check


def _write_precision(plan: Any, study_dir: Path, conditions: Sequence[dict[str, Any]]) -> None:
    """``precision.json``: per condition, the reps run and why they stopped (the report's)."""
    import json

    from simstudy.aggregate.precision import target_reached
    from simstudy.aggregate.stream import read_condition
    from simstudy.design import condition_id
    from simstudy.store import condition_dir

    policy = convergence_policy(plan)
    out = {}
    for condition in conditions:
        cid = condition_id(condition)
        folder = condition_dir(study_dir, cid)
        if not folder.is_dir() or not any(folder.glob("batch-*.parquet")):
            out[cid] = {"condition": condition, "reps": 0, "reached": False, "why": "not run"}
            continue
        records = read_condition(folder)
        records = records[records["rep"] < plan.reps]
        ok, why = target_reached(records, plan.target, plan.reference, policy)
        n = int(records["rep"].nunique())
        if not ok and n >= plan.reps:
            why = f"the cap study.reps={plan.reps} reached: {why}"
        out[cid] = {"condition": condition, "reps": n, "reached": ok, "why": why}
    target = dataclasses.asdict(plan.target)
    text = json.dumps({"target": target, "conditions": out}, indent=2, default=str)
    (study_dir / "precision.json").write_text(text)


def _refuse_stray(todo: Any, study_dir: Path) -> None:
    """Exit 2 for an unusable batch file that no batch of the design rewrites.

    It would stop the summary, and only the user may delete it.
    """
    targets = {t.target(study_dir) for t in todo.todo}
    stray = [(path, why) for path, why in todo.unusable.items() if path not in targets]
    if stray:
        path, why = stray[0]
        raise InputError(
            "results_dir",
            str(study_dir),
            f"a study directory whose batch files are this study's: {path} cannot be used "
            f"({why}) and no batch of the current design replaces it"
            + (f" (and {len(stray) - 1} more)" if len(stray) > 1 else "")
            + "; move it out of the study directory",
        )


def run_study(
    plan: Any,
    notify: Callable[[str], None] = _no_notices,
    make_progress: Callable[[int, int, int], Any] | None = None,
) -> RunOutcome:
    """Run (or resume) ``plan``'s study (module docstring); what happened, printed nowhere.

    ``make_progress(tasks, skipped, workers)``: the progress display of the batches (the
    runner updates it as it goes; closed at the end); None: no display.
    """
    from simstudy.aggregate import summarise_path
    from simstudy.aggregate.tables import Layout, write_tables
    from simstudy.config import BATCHED_SAMPLERS, check_results_dir, config_hash
    from simstudy.design import condition_id, padded_lanes
    from simstudy.engine import replicate
    from simstudy.execute.pools import open_pool
    from simstudy.execute.runner import StopRule, plan_tasks, run_tasks
    from simstudy.models import family_of
    from simstudy.store import (
        Manifest,
        RunLock,
        batch_files,
        read_manifest,
        read_stopped,
        replication_schema,
        software_versions,
        write_manifest,
        write_stopped,
    )

    check_results_dir(plan.study_dir, shown=str(plan.results_dir))
    conditions = conditions_of(plan)
    study_dir = plan.study_dir
    numbers = plan.numbers_config()
    digest = config_hash(numbers)
    existing = read_manifest(study_dir)
    if existing and existing.config_hash != digest and not plan.fresh:
        changes = "; ".join(_differences(existing.numbers, numbers)[:5])
        raise InputError(
            "study.name",
            plan.name,
            f"a study whose config matches the results already in {study_dir} "
            f"(changed: {changes}). Use a new study.name, or fresh=true to delete those "
            "results and start over",
        )
    lock = RunLock(study_dir)
    started = time.time()
    report = manifest = None
    runs: list[dict[str, Any]] = []
    try:
        lock.acquire()
        if lock.taken_over:
            gone = lock.taken_over
            notify(f"[simstudy] took over {lock.path}, left by a run that is gone: {gone}")
        if plan.fresh:
            for name in ("replications", "summary.parquet", "manifest.json", "stopped.json"):
                target = study_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            existing = None
        batch_size = existing.batch_size if existing else plan.executor.batch_size
        if batch_size != plan.executor.batch_size:
            notify(
                f"[simstudy] resuming with batch_size={batch_size} from the manifest "
                f"(executor.batch_size={plan.executor.batch_size} applies to fresh runs)"
            )
        stopped_before = {} if plan.retry_stopped else read_stopped(study_dir)
        design_ids = {condition_id(c) for c in conditions}
        skip = [cid for cid in stopped_before if cid in design_ids]
        todo = plan_tasks(study_dir, conditions, plan.reps, batch_size, digest, skip)
        foreign = {p: why for p, why in todo.unusable.items() if "config hash" in why}
        if foreign and existing is None:
            first, why = next(iter(foreign.items()))
            raise InputError(
                "results_dir",
                str(study_dir),
                f"a study directory whose batches match this config: {len(foreign)} batch "
                f"files were written under another (e.g. {first}: {why}) and there is no "
                "manifest.json to say which. Use a new study.name, or fresh=true to delete "
                "those results and start over",
            )
        _refuse_stray(todo, study_dir)
        runs = (existing.runs if existing else []) + [_run_record(plan, started, "running")]
        manifest = Manifest(
            plan.name, digest, batch_size, numbers, plan.to_config(), software_versions(), runs
        )
        write_manifest(study_dir, manifest)
        for path, why in list(todo.unusable.items())[:5]:
            notify(f"[simstudy] recomputing {path}: {why}")
        if len(todo.unusable) > 5:
            notify(f"[simstudy] ... and {len(todo.unusable) - 5} more batch files to recompute")
        for cid in todo.skipped_conditions:
            notify(
                f"[simstudy] condition {cid} was stopped by an earlier run and is not run: "
                f"{stopped_before[cid]['reason']} (retry_stopped=true runs it again)"
            )
        tasks, skipped = todo.todo, todo.done
        reached = _precision_check(plan, study_dir) if plan.target else None
        if reached is not None:  # conditions whose stored batches reach the target already
            pending = {t.cond_id for t in tasks}  # one check per condition, not per batch
            enough = {c for c in pending if reached(c) is not None}
            tasks = [t for t in tasks if t.cond_id not in enough]
        notify(
            f"[simstudy] study {plan.name}: {len(conditions)} conditions × {plan.reps} reps × "
            f"{len(plan.estimators)} estimators; {len(tasks)} batches to run, "
            f"{skipped} finished earlier"
        )
        samplers = family_of(plan.model).info.samplers
        batched = [
            plan.sampler_of(e).vectorize
            for e in plan.estimators
            if e in samplers and plan.sampler_of(e).name in BATCHED_SAMPLERS
        ]
        width = max(batched, default=1) if plan.kind != "sbc" else 1
        padding = padded_lanes(plan.reps, batch_size, width)
        if padding:
            notify(
                f"[simstudy] note: {padding} padded lanes per condition, sampled and discarded "
                f"(study.reps = {plan.reps} in batches of {batch_size}, fitted "
                f"sampler.vectorize = {width} at a time); reps and batch_size that are "
                f"multiples of {width} avoid them"
            )
        clock = time.monotonic()
        if tasks:
            with open_pool(plan.executor) as pool:
                if pool.dashboard_link:
                    notify(f"[simstudy] Dask dashboard: {pool.dashboard_link}")
                progress = make_progress and make_progress(len(tasks), skipped, pool.n_workers)
                try:
                    report = run_tasks(
                        pool,
                        tasks,
                        study_dir=study_dir,
                        schema=replication_schema(plan.factor_kinds, sbc=plan.kind == "sbc"),
                        run_fn=functools.partial(replicate.run_batch, plan),
                        fail_fn=functools.partial(replicate.failed_batch, plan),
                        stop_rule=StopRule(plan.max_failure_rate, plan.min_reps_for_stop),
                        n_estimators=len(plan.estimators),
                        config_hash=digest,
                        window=plan.executor.window,
                        progress=progress,
                        warm=_compile_tasks(plan, pool),
                        fit_timeout=plan.executor.fit_timeout,
                        resubmits=plan.executor.retries,
                        describe_loss=functools.partial(_lost_batch, plan, pool),
                        reached=reached,
                        per_condition=pool.n_workers if reached else None,
                    )
                finally:
                    if progress is not None:
                        progress.close()
        if plan.target is not None:
            _write_precision(plan, study_dir, conditions)
        if report is not None and report.stopped:
            stopped = {k: v for k, v in read_stopped(study_dir).items() if k not in report.stopped}
            for cid, why in report.stopped.items():
                stopped[cid] = {"reason": why, "reps_run": report.reps_run.get(cid, 0)}
            write_stopped(study_dir, stopped)
        elif plan.retry_stopped:
            write_stopped(study_dir, {})
        policy = convergence_policy(plan)
        summary = layout = None
        if batch_files(study_dir):  # none when every batch was lost to the machine
            summary = summarise_path(
                study_dir, reference=plan.reference, policy=policy, design=(design_ids, plan.reps)
            )
            summary.to_parquet(study_dir / "summary.parquet", index=False)
            layout = Layout(levels=dict(plan.factors), estimators=list(plan.estimators))
            write_tables(summary, list(plan.factors), study_dir / "tables", layout)
        unfinished = report is not None and (report.lost or report.stopped or report.no_workers)
        outcome = "partial" if unfinished else "finished"
        runs[-1] = _run_record(plan, started, outcome, report)
        write_manifest(study_dir, dataclasses.replace(manifest, runs=runs))
    except KeyboardInterrupt as exc:
        what = getattr(exc, "reason", "interrupted")  # the caller's SIGTERM says "terminated"
        if manifest is not None and lock.held:
            runs[-1] = _run_record(plan, started, what, report)
            write_manifest(study_dir, dataclasses.replace(manifest, runs=runs))
        raise
    finally:
        lock.release()
    return RunOutcome(
        plan,
        study_dir,
        summary,
        layout,
        report,
        skipped,
        list(todo.skipped_conditions),
        design_ids,
        time.monotonic() - clock,
    )
