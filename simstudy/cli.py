"""The ``simstudy`` command: the one place that composes config, executor, engine and store.

Exit codes: 0 success; 1 the run finished but some condition was stopped early; 2 bad input
(config, paths, data), reported in one paragraph before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simstudy.config_search import (
    PACKAGE_CONF,
    checked_dir,
    given_tree,
    giving,
    group_files,
    search_dirs,
)
from simstudy.errors import InputError

EXIT_OK, EXIT_STOPPED, EXIT_INPUT = 0, 1, 2


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def config_dirs() -> list[Path]:
    """The config trees in search order: the user's, then the package's (``search_dirs``)."""
    return search_dirs(given_tree())


def _check_group_choices(dirs: Sequence[Path], overrides: Sequence[str]) -> None:
    """Name an unknown config-group option (``executor=foo``) before Hydra does, plainly."""
    for item in overrides:
        if item.startswith("~"):  # a deletion, e.g. ~model.structure.factors
            continue
        if "=" not in item:
            raise InputError(
                "override", item, "KEY=VALUE (e.g. study.reps=100 or executor=synchronous)"
            )
        key, value = item.split("=", 1)
        group = key.lstrip("+~")
        if any((d / group).is_dir() for d in dirs) and "." not in group and value:
            options = group_files(dirs, group)
            if value not in options:
                raise InputError(group, value, "one of " + ", ".join(options))


#: Keys whose values are free text (model syntax), quoted for Hydra's override grammar.
_TEXT_KEYS = ("model.syntax",)


def quote_text(override: str) -> str:
    """``model.syntax=y ~ x`` as Hydra reads it (``~``, ``(`` and ``|`` need quotes there)."""
    key, eq, value = override.partition("=")
    if not eq or key.lstrip("+") not in _TEXT_KEYS or value[:1] in ("'", '"'):
        return override
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def compose(overrides: Sequence[str]) -> Any:
    """Compose ``config.yaml`` with command-line overrides (Hydra's compose API).

    Configs are searched in the user's tree first, then in the package's (:func:`config_dirs`).
    The working directory is never changed and nothing is written by Hydra.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from simstudy.config_search import initialized

    dirs = config_dirs()
    _check_group_choices(dirs, overrides)
    overrides = [quote_text(o) for o in overrides]
    errors = (HydraException, OmegaConfBaseException)
    try:
        with initialized(dirs):
            try:
                return hydra_compose("config", overrides=list(overrides))
            except errors as first:
                replaced = replace_mappings(overrides)
                if replaced == list(overrides):
                    raise
                try:  # KEY={...}: the user replaces a whole mapping
                    return hydra_compose("config", overrides=replaced)
                except errors:
                    raise first from None
    except errors as exc:
        text = " ".join(str(exc).split())
        raise InputError(
            "overrides",
            " ".join(overrides),
            f"a valid Hydra override list ({text}). To replace a whole mapping, write "
            "KEY={a: 1, b: 2} for a KEY the config has",
        ) from None


def replace_mappings(overrides: Sequence[str]) -> list[str]:
    """``KEY={...}`` as Hydra's delete-then-add (``~KEY``, ``+KEY={...}``): a replacement.

    Hydra merges a mapping into the existing one, which the structured config refuses for new
    keys; a user who writes a whole mapping means it to replace the old one.
    """
    out: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key[:1] not in "+~" and value.lstrip().startswith("{"):
            out += [f"~{key}", f"+{key}={value}"]
        else:
            out.append(item)
    return out


def compose_raw(overrides: Sequence[str], estimators: Sequence[str] | None = None) -> dict:
    """Compose to plain containers, picking the sampler the estimators need if none is chosen.

    A model's MCMC estimators run on one kind of sampler (``nuts`` or ``chees``, or ``gibbs``);
    when the user names no ``sampler=`` and the composed default does not fit, the needed one is
    composed instead, so that ``simstudy run study=sbc model=cfa`` needs no ``sampler=gibbs``.
    """
    from omegaconf import OmegaConf

    from simstudy.config import INTERCHANGEABLE, declared_info
    from simstudy.models import model_infos

    raw = OmegaConf.to_container(compose(overrides), resolve=True)
    if any(o.lstrip("+").startswith("sampler=") for o in overrides):
        return raw
    info = declared_info(raw.get("model"), model_infos())
    if info is None:
        return raw
    study = raw.get("study") or {}
    if estimators is None:
        estimators = study.get("estimators")
        if estimators is None and study.get("type") == "sbc":
            estimators = info.posteriors
    needed = {info.samplers.get(e) for e in estimators or []} - {None}
    composed = raw.get("sampler", {}).get("name")
    if len(needed) == 1 and composed not in INTERCHANGEABLE[next(iter(needed))]:
        raw = OmegaConf.to_container(compose([*overrides, f"sampler={needed.pop()}"]), resolve=True)
    return raw


def load_plan(overrides: Sequence[str]) -> Any:
    """Compose and validate a study from overrides, and check that it can run here.

    :func:`~simstudy.config.check_runnable`: sizes the estimators can fit, and workers and
    memory this machine has (a stored manifest is not checked for them).
    """
    from simstudy.config import check_runnable, plan_from_dict
    from simstudy.models import model_infos

    plan = plan_from_dict(compose_raw(overrides), model_infos())
    check_runnable(plan, model_infos())
    return plan


def check_results_dir(plan: Any) -> None:
    """Exit 2 unless the plan's study directory can be created and written to.

    :func:`simstudy.config.check_results_dir`: before any work, leaving nothing behind.
    """
    from simstudy.config import check_results_dir as check

    check(plan.study_dir, shown=str(plan.results_dir))


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


def _conditions(plan: Any) -> list[dict[str, Any]]:
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
    from simstudy.aggregate import ConvergencePolicy
    from simstudy.aggregate.precision import target_reached
    from simstudy.aggregate.stream import read_condition
    from simstudy.store import condition_dir

    agg = plan.aggregate
    policy = ConvergencePolicy(agg.policy, agg.rhat_max, agg.ess_min, agg.allow_divergent)

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

    from simstudy.aggregate import ConvergencePolicy
    from simstudy.aggregate.precision import target_reached
    from simstudy.aggregate.stream import read_condition
    from simstudy.design import condition_id
    from simstudy.store import condition_dir

    agg = plan.aggregate
    policy = ConvergencePolicy(agg.policy, agg.rhat_max, agg.ess_min, agg.allow_divergent)
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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that the run cleans up (lock, cluster)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def cmd_run(overrides: Sequence[str]) -> int:
    """Run (or resume) the study the overrides describe."""
    import signal

    from simstudy.aggregate import ConvergencePolicy, summarise_path
    from simstudy.aggregate.tables import Layout, write_tables
    from simstudy.aggregate.terminal import print_summary
    from simstudy.config import BATCHED_SAMPLERS, config_hash
    from simstudy.design import condition_id, padded_lanes
    from simstudy.engine import replicate
    from simstudy.execute.pools import open_pool
    from simstudy.execute.progress import RunProgress
    from simstudy.execute.runner import StopRule, plan_tasks, run_tasks
    from simstudy.models import family_of
    from simstudy.store import (
        Manifest,
        RunLock,
        batch_files,
        count_records,
        read_manifest,
        read_stopped,
        replication_schema,
        software_versions,
        write_manifest,
        write_stopped,
    )

    plan = load_plan(overrides)
    check_results_dir(plan)
    conditions = _conditions(plan)
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
    try:
        previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous_sigterm = None
    lock = RunLock(study_dir)
    started = time.time()
    report = manifest = None
    runs: list[dict[str, Any]] = []
    try:
        lock.acquire()
        if lock.taken_over:
            _say(f"[simstudy] took over {lock.path}, left by a run that is gone: {lock.taken_over}")
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
            _say(
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
            _say(f"[simstudy] recomputing {path}: {why}")
        if len(todo.unusable) > 5:
            _say(f"[simstudy] ... and {len(todo.unusable) - 5} more batch files to recompute")
        for cid in todo.skipped_conditions:
            _say(
                f"[simstudy] condition {cid} was stopped by an earlier run and is not run: "
                f"{stopped_before[cid]['reason']} (retry_stopped=true runs it again)"
            )
        tasks, skipped = todo.todo, todo.done
        reached = _precision_check(plan, study_dir) if plan.target else None
        if reached is not None:  # conditions whose stored batches reach the target already
            pending = {t.cond_id for t in tasks}  # one check per condition, not per batch
            enough = {c for c in pending if reached(c) is not None}
            tasks = [t for t in tasks if t.cond_id not in enough]
        _say(
            f"[simstudy] study {plan.name}: {len(conditions)} conditions × {plan.reps} reps × "
            f"{len(plan.estimators)} estimators; {len(tasks)} batches to run, "
            f"{skipped} finished earlier"
        )
        width = plan.sampler.vectorize if plan.kind != "sbc" else 1
        padding = padded_lanes(plan.reps, batch_size, width)
        samplers = family_of(plan.model).info.samplers
        batched = plan.sampler.name in BATCHED_SAMPLERS
        if padding and batched and any(e in samplers for e in plan.estimators):
            _say(
                f"[simstudy] note: {padding} padded lanes per condition, sampled and discarded "
                f"(study.reps = {plan.reps} in batches of {batch_size}, fitted "
                f"sampler.vectorize = {width} at a time); reps and batch_size that are "
                f"multiples of {width} avoid them"
            )
        clock = time.monotonic()
        if tasks:
            with open_pool(plan.executor) as pool:
                if pool.dashboard_link:
                    _say(f"[simstudy] Dask dashboard: {pool.dashboard_link}")
                progress = RunProgress(len(tasks), skipped, workers=pool.n_workers)
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
        agg = plan.aggregate
        policy = ConvergencePolicy(agg.policy, agg.rhat_max, agg.ess_min, agg.allow_divergent)
        summary = None
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
        import logging

        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        if manifest is not None and lock.held:
            runs[-1] = _run_record(plan, started, what, report)
            write_manifest(study_dir, dataclasses.replace(manifest, runs=runs))
        _say(
            f"\n[simstudy] {what}: every finished batch is kept in {study_dir / 'replications'}; "
            "run the same command again to resume"
        )
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        lock.release()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    elapsed = time.monotonic() - clock
    n_records, n_failed = count_records(study_dir)
    if summary is not None:
        title = f"{plan.name}: performance (MCSE)"
        print_summary(summary, list(plan.factors), title, layout)
        print(
            f"replications: {study_dir / 'replications'}  ({n_records} records, {n_failed} failed)"
        )
        print(f"summary:      {study_dir / 'summary.parquet'}")
        print(f"tables:       {study_dir / 'tables'}/*.md, *.tex")
    else:
        print("no replications are stored yet: nothing to summarise")
    if report is None:
        print("nothing to run: every batch was finished earlier")
        failing = _say_failures(plan, study_dir, design_ids)
        return EXIT_STOPPED if todo.skipped_conditions or failing else EXIT_OK
    print(
        f"this run: {report.batches_written} batches written, {skipped} skipped as finished, "
        f"{report.fits} fits ({report.failed_fits} failed) in {elapsed:.1f}s"
    )
    if report.timed_out:
        print(
            f"{report.timed_out} batches ran past executor.fit_timeout="
            f"{plan.executor.fit_timeout:g} s per replication: their fits are recorded as "
            "failed, with the reason"
        )
    for cid, why in report.reached.items():
        print(f"condition {cid}: enough replications, {why}")
    if report.batches_not_needed:
        print(f"{report.batches_not_needed} batches not needed: conditions reached the target")
    for cid, why in report.stopped.items():
        print(f"condition {cid} stopped early: {why}")
    for why in report.lost.values():
        print(f"batch not computed (lost to the machine, not a model failure): {why}")
    if report.no_workers:
        from simstudy.execute.watchdog import batches_left

        print(
            f"run stopped: {report.no_workers}; {len(report.left)} batches left "
            f"({batches_left(report.left)}); finished batches are kept: run the same command "
            "again to resume"
        )
    failing = _say_failures(plan, study_dir, design_ids)
    if report.stopped or report.lost:
        print(
            f"{report.batches_not_run + len(report.lost)} batches were not run; "
            + ("fix the cause and run again with retry_stopped=true; " if report.stopped else "")
            + ("run the same command again to compute the lost batches" if report.lost else "")
        )
        return EXIT_STOPPED
    return EXIT_STOPPED if failing or report.no_workers else EXIT_OK


def _say_failures(plan: Any, study_dir: Path, design_ids: set[str]) -> list[str]:
    """Print the failed fits per estimator and the conditions that fail the run; return them.

    Whatever ``study.min_reps_for_stop`` is, a condition with no successful fit of an
    estimator, or more failed fits than ``study.max_failure_rate``, makes the run exit 1.
    """
    from simstudy.aggregate.failures import failure_report
    from simstudy.store import fit_failures

    failures = fit_failures(study_dir, design_ids, plan.reps)
    lines, failing = failure_report(failures, plan.max_failure_rate)
    if lines:
        print("failed fits (the records say why, column error): " + "; ".join(lines))
    for line in failing:
        print(f"FAILED {line}")
    return failing


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Summarise replication records into summary.parquet, tables and a printout."""
    from simstudy.aggregate import ConvergencePolicy, summarise_path, summary_factors
    from simstudy.aggregate.tables import FORMATS, Layout, write_tables
    from simstudy.aggregate.terminal import print_notes, print_tables
    from simstudy.config import check_results_dir as check_writable
    from simstudy.design import condition_id
    from simstudy.store import read_manifest

    path = Path(args.input)
    if not path.exists():
        raise InputError("INPUT", str(path), "an existing results directory, .parquet or .csv file")
    if path.is_file() and path.suffix not in (".csv", ".parquet"):
        raise InputError("INPUT", str(path), "a results directory, .parquet or .csv file")
    if not 0 < args.level < 1:
        raise InputError("--level", args.level, "a number in (0, 1)")
    if args.policy not in ("all", "converged"):
        raise InputError("--policy", args.policy, "all or converged")
    if not 1 <= args.rhat_max < math.inf:
        raise InputError("--rhat-max", args.rhat_max, "a number >= 1")
    if not 0 <= args.ess_min < math.inf:
        raise InputError("--ess-min", args.ess_min, "a number >= 0")
    if args.truth is not None and not math.isfinite(args.truth):
        raise InputError("--truth", args.truth, "a finite number")
    if path.is_dir():
        out = Path(args.out) if args.out else path / "summary.parquet"
    else:
        out = Path(args.out) if args.out else path.with_name(path.stem + "-summary.parquet")
    tables = (
        Path(args.tables)
        if args.tables
        else out.with_name(
            out.stem.replace("summary", "tables") if "summary" in out.stem else out.stem + "-tables"
        )
    )
    if out.suffix not in (".parquet", ".csv") or out.is_dir():
        raise InputError("--out", str(out), "a path for a .parquet or .csv file")
    formats = _names("--format", args.format, FORMATS) or ["md", "tex"]
    check_writable(out.parent, "--out", shown=str(out))
    check_writable(tables, "--tables")
    reference = args.reference
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None and reference is None:
        study = manifest.config["study"]
        reference = manifest.config.get("aggregate", {}).get("reference") or study["estimators"][0]
    design, levels, order = None, None, None
    if manifest is not None:  # the study's current design, not all that lies in the directory
        _, plan = _study_plan(path)
        design = ({condition_id(c) for c in _conditions(plan)}, plan.reps)
        levels, order = dict(plan.factors), list(plan.estimators)
    if args.by is not None and path.is_dir():
        raise InputError(
            "--by", args.by, "only for a .csv/.parquet file (a study knows its factors)"
        )
    by = _names("--by", args.by) or None
    policy = ConvergencePolicy(args.policy, args.rhat_max, args.ess_min, args.allow_divergent)
    started = time.monotonic()
    summary = summarise_path(
        path,
        reference=reference,
        policy=policy,
        truth=args.truth,
        level=args.level,
        design=design,
        by=by,
        dedupe=args.dedupe,
    )
    if summary.attrs.get("duplicates_dropped"):
        print(
            f"--dedupe: dropped {summary.attrs['duplicates_dropped']} repeated rows (the first "
            "row of each condition, rep, estimator and parameter is kept)"
        )
    if args.reference is not None and args.reference not in set(summary["estimator"]):
        known = ", ".join(sorted(set(summary["estimator"])))
        raise InputError("--reference", args.reference, f"an estimator in the records: {known}")
    factors = summary_factors(summary)
    layout = Layout(
        levels=levels,
        estimators=_names("--estimators", args.estimators, sorted(set(summary["estimator"])))
        or order,
        parameters=_names("--parameters", args.parameters, sorted(set(summary["parameter"])))
        or None,
        measures=_names("--measures", args.measures, sorted(set(summary["measure"]))) or None,
    )
    if out.suffix == ".csv":
        summary.to_csv(out, index=False)
    else:
        summary.to_parquet(out, index=False)
    written = write_tables(summary, factors, tables, layout, formats)
    print_tables(summary, factors, layout=layout)
    print_notes(summary, factors)
    print(f"summary: {out}  ({len(summary)} rows, {time.monotonic() - started:.1f}s)")
    print(f"tables:  {tables}/ ({len(written)} files: {', '.join(formats)})")
    return EXIT_OK


def _names(option: str, text: str | None, allowed: Sequence[str] | None = None) -> list[str]:
    """A comma-separated option as a list (empty when not given), each name checked."""
    if text is None:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(option, text, "one or more comma-separated names")
    for name in names:
        if allowed is not None and name not in allowed:
            raise InputError(option, name, "one of " + ", ".join(allowed))
    return names


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html (self-contained) and report.md beside a study's summary.parquet."""
    from simstudy.report import Limits, write_report

    names = ("max_rows", "max_panels", "zip_reps", "zip_panels")
    for name in names:
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", getattr(args, name), "a number >= 1")
    limits = Limits(**{name: getattr(args, name) for name in names})
    paths = write_report(Path(args.results_dir), limits)
    print(f"report:  {paths.html}")
    print(f"         {paths.markdown}")
    print(f"figures: {paths.html.parent / 'figures'}/ ({len(paths.figures)} files: PNG and PDF)")
    print(f"written in {paths.seconds:.1f}s")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Say how far a study directory has got, and which files a run would recompute."""
    from simstudy.execute.runner import plan_tasks
    from simstudy.store import read_stopped

    study_dir = Path(args.results_dir)
    manifest, plan = _study_plan(study_dir)
    stopped = read_stopped(study_dir)
    todo = plan_tasks(
        study_dir, _conditions(plan), plan.reps, manifest.batch_size, manifest.config_hash
    )
    total = len(todo.todo) + todo.done
    print(
        f"study {manifest.study} ({study_dir}): {todo.done}/{total} batches finished, "
        f"{len(todo.todo)} to run"
    )
    for path, why in todo.unusable.items():
        print(f"  to recompute: {path}: {why}")
    beyond = _beyond_design(study_dir, plan)
    if beyond:
        print(
            f"  kept beyond the current design (not summarised; replay and simulate reach "
            f"them): {'; '.join(beyond)}"
        )
    for cid, entry in stopped.items():
        print(
            f"  condition {cid} stopped early after {entry.get('reps_run', '?')} reps: "
            f"{entry.get('reason', '')}"
        )
    if manifest.runs:
        last = manifest.runs[-1]
        print(f"  last run: {last.get('started')} on {last.get('host')}, {last.get('status')}")
    return EXIT_OK


def _beyond_design(study_dir: Path, plan: Any) -> list[str]:
    """Stored conditions and reps outside the current design, one phrase each."""
    from simstudy.design import condition_id

    design = {condition_id(c) for c in _conditions(plan)}
    out = []
    for cid, (condition, reps) in _reachable(study_dir, plan).items():
        if cid not in design:
            levels = ", ".join(f"{k}={v}" for k, v in condition.items())
            out.append(f"condition {cid} ({levels}) reps 0-{reps - 1}")
        elif reps > plan.reps:
            out.append(f"condition {cid} reps {plan.reps}-{reps - 1}")
    return out


def _study_plan(study_dir: Path) -> tuple[Any, Any]:
    from simstudy.config import plan_from_dict
    from simstudy.models import model_infos
    from simstudy.store import read_manifest

    manifest = read_manifest(study_dir)
    if manifest is None:
        raise InputError("RESULTS_DIR", str(study_dir), "a study directory with a manifest.json")
    return manifest, plan_from_dict(manifest.config, model_infos())


def _reachable(study_dir: Path, plan: Any) -> dict[str, tuple[dict[str, Any], int]]:
    """``condition_id -> (condition, reps)``: the current design's, and every stored one.

    A stored condition or replication outside the current design (its reps or levels were
    lowered) stays reachable by ``status``, ``replay`` and ``simulate``.
    """
    from simstudy.design import condition_id
    from simstudy.store import stored_conditions

    out = {condition_id(c): (c, plan.reps) for c in _conditions(plan)}
    for cid, (condition, reps) in stored_conditions(study_dir, list(plan.factors)).items():
        if condition_id(condition) != cid:  # factors renamed since: its seeds are not ours
            continue
        current = out.get(cid, (condition, 0))
        out[cid] = (current[0], max(current[1], reps))
    return out


def _pick(study_dir: Path, plan: Any, cond: str | None, rep: int | None) -> Any:
    """The reachable conditions, with ``--condition`` and ``--rep`` checked against them."""
    reachable = _reachable(study_dir, plan)
    if cond is not None and cond not in reachable:
        raise InputError("--condition", cond, "one of " + ", ".join(reachable))
    if cond is not None and rep is not None and not 0 <= rep < reachable[cond][1]:
        raise InputError(
            "--rep", rep, f"an integer in [0, {reachable[cond][1]}) for condition {cond}"
        )
    return reachable


def cmd_replay(args: argparse.Namespace) -> int:
    """Recompute one replication from a study's manifest and compare it with the stored rows."""
    from simstudy.engine.replicate import run_batch
    from simstudy.store import read_replications

    study_dir = Path(args.results_dir)
    _, plan = _study_plan(study_dir)
    conditions = {
        cid: c for cid, (c, _) in _pick(study_dir, plan, args.condition, args.rep).items()
    }
    save = getattr(args, "save", None)
    simulated = None
    if save is not None:  # refused before any fitting: an unwritable DIR, a model without a table
        from simstudy.config import check_results_dir as check_writable
        from simstudy.engine.replicate import _simulate
        from simstudy.export import keyed_frame

        check_writable(Path(save), "--save")
        simulated = _simulate(plan, conditions[args.condition], args.rep)
        if not isinstance(simulated, list):
            keyed_frame(plan.model, simulated.dataset, simulated.base)
    # run_batch, not run_replication: with sampler.vectorize the replication is fitted in the
    # same compiled program (its lane padded) as in the study, so its numbers are identical.
    fresh = pd.DataFrame(run_batch(plan, conditions[args.condition], [args.rep]))
    stored = read_replications(study_dir)
    if not stored.empty:
        stored = stored[(stored["condition_id"] == args.condition) & (stored["rep"] == args.rep)]
    cols = ["estimator", "parameter", "estimate", "se", "lower", "upper", "status"]
    print(fresh[cols].to_string(index=False))
    code = _compare_replay(fresh, stored)
    if save is not None:
        _save_replay(plan, simulated, fresh, Path(save))
    return code


def _compare_replay(fresh: pd.DataFrame, stored: pd.DataFrame) -> int:
    """Say whether a recomputed replication equals its stored rows (exit 0, else 1)."""
    if stored.empty:
        print("(this replication is not stored yet)")
        return EXIT_OK
    key = ["estimator", "parameter"]
    both = fresh.merge(stored, on=key, suffixes=("", "_stored"))
    equal = pd.Series(True, index=both.index)
    for c in ("estimate", "se", "lower", "upper"):
        equal &= (both[c] == both[f"{c}_stored"]) | (both[c].isna() & both[f"{c}_stored"].isna())
    if equal.all():
        print("identical to the stored replication")
        return EXIT_OK
    differing = both[~equal].groupby("estimator").size()
    counts = both.groupby("estimator").size()
    which = ", ".join(f"{e} ({n} of {counts[e]} estimands)" for e, n in differing.items())
    print(f"DIFFERS from the stored replication: {which}")
    return EXIT_STOPPED


def _save_replay(plan: Any, simulated: Any, fresh: pd.DataFrame, directory: Path) -> None:
    """``replay --save``: the replication's data set (Parquet) and posteriors (NetCDF).

    Each MCMC estimator's draws are summarised again and compared with the replayed rows, so
    that the file says whether it holds the draws behind the replication's numbers.
    """
    from simstudy.engine.summary import summarise_draws
    from simstudy.export import inference_data, keyed_frame, replication_draws, write_table

    if isinstance(simulated, list):  # the DGM failed: its rows say why
        print(f"nothing saved: the data set could not be simulated ({simulated[0]['error']})")
        return
    directory.mkdir(parents=True, exist_ok=True)
    base = simulated.base
    stem = f"{base['condition_id']}-rep{base['rep']}"
    frame = keyed_frame(plan.model, simulated.dataset, base)
    write_table(frame, directory / f"{stem}.parquet")
    print(f"data set:  {directory / f'{stem}.parquet'} ({len(frame)} rows)")
    draws = replication_draws(plan, simulated)
    if not draws:
        print("posterior: none written (no estimator of this study draws from a posterior)")
    for name, fit in draws.items():
        attrs = {
            "study": plan.name,
            **{k: base[k] for k in ("condition_id", "rep", "seed")},
            "estimator": name,
            "sampler": plan.sampler.name,
            "point_estimate": plan.point_estimate,
        }
        path = directory / f"{stem}-{name}.nc"
        inference_data(fit, frame, attrs).to_netcdf(str(path))
        chains, n_draws = next(iter(fit.draws.values())).shape[:2]
        rows = fresh[fresh["estimator"] == name].set_index("parameter")["estimate"]
        summary = summarise_draws(fit.draws, plan.level, plan.point_estimate)
        same = all(
            summary[p].estimate == rows[p]
            or (math.isnan(summary[p].estimate) and math.isnan(rows[p]))
            for p in rows.index
        )
        note = (
            "their summary is the replayed estimates"
            if same
            else "NOTE: their summary differs from the replayed estimates"
        )
        print(
            f"posterior: {path} ({name}: {chains} chains x {n_draws} draws of "
            f"{len(fit.draws)} estimands; {note})"
        )


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write the data sets of a study's replications as CSV or Parquet (Mplus's REPSAVE).

    The data are those the study fitted: each simulated from its replication's seed as in
    the study (:func:`simstudy.engine.replicate._simulate`). Exit 1 when a data set could not
    be simulated (the study recorded that replication as failed too).
    """
    from simstudy.config import check_results_dir as check_writable
    from simstudy.engine.replicate import _simulate
    from simstudy.export import SUFFIXES, keyed_frame, write_table

    study_dir = Path(args.results_dir)
    _, plan = _study_plan(study_dir)
    reachable = _pick(study_dir, plan, None if args.all else args.condition, args.rep)
    if (
        args.all
        and args.rep is not None
        and not 0 <= args.rep < min(n for _, n in reachable.values())
    ):
        raise InputError(
            "--rep", args.rep, f"an integer in [0, {min(n for _, n in reachable.values())})"
        )
    conditions = {cid: c for cid, (c, _) in reachable.items()}
    out = Path(args.out)
    if out.suffix not in SUFFIXES or out.is_dir():
        raise InputError("--out", args.out, "a file path ending in .csv or .parquet")
    if "*" in out.parent.as_posix() or out.name.count("*") > 1:
        raise InputError("--out", args.out, "a path with at most one '*', in the file name")
    check_writable(out.parent, "--out", shown=str(out))
    chosen = list(conditions) if args.all else [args.condition]
    per_rep = "*" in out.name
    frames, written, failed = [], [], []
    n_sets = 0
    for cid in chosen:
        reps = range(reachable[cid][1]) if args.rep is None else [args.rep]
        n_sets += len(reps)
        for rep in reps:
            simulated = _simulate(plan, conditions[cid], rep)
            if isinstance(simulated, list):  # failed rows, as the study stored them
                failed.append(f"condition {cid} rep {rep}: {simulated[0]['error']}")
                continue
            frame = keyed_frame(plan.model, simulated.dataset, simulated.base)
            if per_rep:
                label = f"{cid}-{rep}" if args.all else str(rep)
                path = out.with_name(out.name.replace("*", label))
                write_table(frame, path)
                written.append((path, len(frame)))
            else:
                frames.append(frame)
    if frames:
        table = pd.concat(frames, ignore_index=True)
        write_table(table, out)
        written.append((out, len(table)))
    n_sets -= len(failed)
    rows = sum(n for _, n in written)
    where = (
        str(written[0][0])
        if len(written) == 1
        else f"{len(written)} files, {written[0][0]} ... {written[-1][0]}"
    )
    if written:
        print(f"{n_sets} data sets of study {plan.name} ({rows} rows): {where}")
    for line in failed:
        print(f"not written (its simulation failed in the study too): {line}")
    return EXIT_STOPPED if failed else EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Residuals from imputed latent scores of one replication of a latent interaction study.

    The model is a spec with a structural product term: its compiled Gibbs chain imputes the
    scores (:func:`simstudy.diagnostics.latent_residuals.imputer_of`).

    Writes RESULTS_DIR/diagnostics/residuals-<condition>-<rep>.png, .pdf and .parquet
    (:mod:`simstudy.diagnostics.latent_residuals`); ``simstudy report`` shows the figures.
    """
    from simstudy.config import check_results_dir as check_writable
    from simstudy.design import condition_id, expand_grid
    from simstudy.diagnostics.latent_residuals import diagnose_replication, imputer_of

    study_dir = Path(args.results_dir)
    _, plan = _study_plan(study_dir)
    imputer = imputer_of(plan)
    if isinstance(imputer, str):
        raise InputError("model", plan.model.name, imputer)
    conditions = {condition_id(c): c for c in expand_grid(plan.factors, plan.exclude)}
    if args.condition not in conditions:
        raise InputError("--condition", args.condition, "one of " + ", ".join(conditions))
    if not 0 <= args.rep < plan.reps:
        raise InputError("--rep", args.rep, f"an integer in [0, {plan.reps})")
    most = plan.sampler.chains * plan.sampler.draws
    if not 2 <= args.imputations <= most:
        raise InputError(
            "--imputations",
            args.imputations,
            f"an integer in [2, {most}] (at most sampler.chains x sampler.draws states)",
        )
    directory = study_dir / "diagnostics"
    check_writable(directory, "RESULTS_DIR/diagnostics")
    done = diagnose_replication(
        plan, conditions[args.condition], args.rep, args.imputations, directory
    )
    cols = ["model", "formula", "r2", "curvature", "curvature_se"]
    shown = done.diagnostics.models[[*cols, "curvature_lower", "curvature_upper"]]
    print(
        f"residuals of condition {args.condition}, rep {args.rep}, from {args.imputations} "
        f"imputations of the latent scores ({done.seconds:.1f}s, compilation included):"
    )
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        "curvature: the coefficient of z^2 (z: standardised predicted value) in the residuals' "
        "regression, pooled by Rubin's rules; far from 0 without the product term and near 0 "
        "with it points to a latent interaction"
    )
    for path in done.paths:
        print(f"written: {path}")
    return EXIT_OK


def cmd_list(topics: Sequence[str]) -> int:
    """Print what exists: models, studies, estimators, samplers, executors, experiments."""
    from simstudy import catalog

    for topic in topics or catalog.TOPICS:
        if topic not in catalog.TOPICS:
            raise InputError("simstudy list", topic, "one of " + ", ".join(catalog.TOPICS))
    dirs = config_dirs()
    where = ", then ".join(str(d) for d in dirs)
    for topic in topics or catalog.TOPICS:
        print(f"{topic} ({where}):" if topic != "estimators" else "estimators:")
        print(catalog.table(catalog.rows_for(topic, dirs)))
        print()
    print("Use them as overrides: simstudy run study=NAME model=NAME sampler=NAME executor=NAME")
    return EXIT_OK


def cmd_check(estimator: str, overrides: Sequence[str]) -> int:
    """Print an estimator's fits to two simulated data sets and what is wrong with them."""
    from simstudy.checkcmd import check_estimator

    if not estimator.isidentifier():
        raise InputError("estimator", estimator, "an estimator name (letters, digits, _)")
    plan = load_plan([*overrides, f"study.estimators=[{estimator}]"])
    table, problems = check_estimator(plan, estimator)
    if not table.empty:
        print(table.to_string(index=False))
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{estimator}: " + ("passes" if not problems else f"{len(problems)} problem(s)"))
    return EXIT_OK if not problems else 1


def cmd_show(overrides: Sequence[str], pilot: int | None = None) -> int:
    """Print a study's composed config, its design grid and what running it takes.

    Its time comes from a pilot of ``pilot`` replications per condition, run in a temporary
    directory (:mod:`simstudy.estimate_time`), else from the study's stored fits; nothing else
    is run.
    """
    from omegaconf import OmegaConf

    from simstudy import catalog
    from simstudy.config import check_runnable, plan_from_dict
    from simstudy.design import condition_id
    from simstudy.estimate_time import check_pilot, time_lines
    from simstudy.models import model_infos

    check_pilot(pilot)
    raw = compose_raw(overrides)
    plan = plan_from_dict(raw, model_infos())
    check_runnable(plan, model_infos())
    conditions = _conditions(plan)
    rows = [{"condition_id": condition_id(c), **c} for c in conditions]
    print(f"# composed config ({', then '.join(str(d) for d in config_dirs())})")
    print(OmegaConf.to_yaml(raw).rstrip())
    print(f"\n# design grid: {len(rows)} conditions")
    print(catalog.table(rows))
    print("\n# cost")
    for line in catalog.cost(plan, len(rows)):
        print(line)
    print("\n# time")
    sys.stdout.flush()
    for line in time_lines(plan, conditions, pilot):
        print(line)
    print(f"results: {plan.study_dir}")
    return EXIT_OK


def cmd_fit(arguments: Sequence[str]) -> int:
    """``simstudy fit``: see :mod:`simstudy.fitcmd`."""
    from simstudy.fitcmd import cmd_fit as fit

    return fit(arguments)


_EPILOG = """\
examples:
  simstudy run                                 the default study on a local Dask cluster
  simstudy run study=latent_interaction study.reps=50
  simstudy run +experiment=smoke executor=synchronous
  simstudy list studies                        what can be run
  simstudy show study=cfa_ordinal              config, conditions and cost, without running
  simstudy aggregate results/missing_x --reference ols_cc
  simstudy report results/missing_x            report.html, report.md and figures/
  simstudy fit model=latent_interaction data=items.csv
  simstudy fit model=spec 'model.syntax=y ~ 1 + x + (1 + x | g)' data=d.csv missing=[-999]

Configs are Hydra's: GROUP=OPTION picks a file of conf/GROUP/, KEY=VALUE sets a value,
KEY={a: 1} replaces a whole mapping. Exit codes: 0 done, 1 a condition stopped early,
2 bad input (nothing was run or changed).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``simstudy`` command."""
    from simstudy import __version__, catalog

    parser = argparse.ArgumentParser(
        prog="simstudy",
        description="Monte Carlo simulation studies of Bayesian estimators: simulate data sets "
        "from known models, fit them, and report bias, coverage, RMSE and MCMC efficiency "
        "with Monte Carlo standard errors.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"simstudy {__version__}")
    parser.add_argument(
        "--config-dir",
        default=None,
        metavar="DIR",
        help="a directory of your own configs (e.g. just study/my_study.yaml and "
        "model/my_model.yaml, or a full copy of conf/), searched before the configs shipped "
        "with simstudy: yours win where both have a file of the same name; default: "
        "$SIMSTUDY_CONFIG_DIR, else only the configs shipped with simstudy",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a study, or resume it where it stopped",
        description="Run a study (default: conf/study/missing_x.yaml) or resume it: finished "
        "batches are kept. Results go to RESULTS_DIR/STUDY_NAME/ (results_dir=PATH).",
    )
    run.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides, e.g. study=cfa_ordinal study.reps=100 executor=synchronous",
    )
    show = sub.add_parser(
        "show",
        help="print a study's composed config, conditions and cost; run nothing",
        description="A dry run: the composed config, every condition with its condition_id "
        "and factor levels, and the fits, batches and programs the run would take.",
    )
    show.add_argument(
        "--pilot",
        type=int,
        default=None,
        metavar="K",
        help="time the run from a pilot: K replications of each condition, on the configured "
        "executor, in a temporary directory (the study's results are not touched); prints "
        "compilation and fitting apart",
    )
    show.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="as for run")
    lst = sub.add_parser(
        "list",
        help="list models, studies, estimators, samplers, executors, experiments",
        description="What can be named in a run: config files and registered estimators.",
    )
    lst.add_argument(
        "topics",
        nargs="*",
        metavar="TOPIC",
        help="any of: " + ", ".join(catalog.TOPICS),
    )
    agg = sub.add_parser(
        "aggregate",
        help="summarise replication records into performance measures with MCSEs",
        description="Summarise a results directory, or any .parquet/.csv in the replication "
        "schema (results of other software too), into summary.parquet and tables.",
    )
    agg.add_argument(
        "input", help="results directory, or a .parquet/.csv in the replication schema"
    )
    agg.add_argument("--reference", default=None, help="estimator to compare with (default: first)")
    agg.add_argument("--policy", default="all", help="all | converged (default all)")
    agg.add_argument("--rhat-max", type=float, default=1.01, help="converged: R-hat at most this")
    agg.add_argument(
        "--ess-min", type=float, default=400.0, help="converged: bulk ESS at least this"
    )
    agg.add_argument(
        "--allow-divergent", action="store_true", help="converged: keep divergent fits"
    )
    agg.add_argument("--truth", type=float, default=None, help="true value, if the input has none")
    agg.add_argument(
        "--level", type=float, default=0.95, help="interval level if lower/upper absent"
    )
    agg.add_argument(
        "--out", default=None, help="summary .parquet or .csv (default Parquet beside the input)"
    )
    agg.add_argument("--tables", default=None, help="directory for the tables")
    agg.add_argument(
        "--format", default=None, help="table formats, comma-separated: md, tex, csv (md,tex)"
    )
    agg.add_argument(
        "--by",
        default=None,
        help="design-factor columns of a .csv/.parquet, comma-separated (others are ignored)",
    )
    agg.add_argument(
        "--dedupe",
        action="store_true",
        help="keep the first of repeated (condition, rep, estimator, parameter) rows (default: "
        "refuse them)",
    )
    agg.add_argument("--estimators", default=None, help="tables: these estimators, in this order")
    agg.add_argument("--parameters", default=None, help="tables: these estimands, in this order")
    agg.add_argument("--measures", default=None, help="tables: only these measures' columns")
    fit = sub.add_parser(
        "fit",
        help="fit a model's estimator to your own data set",
        description="Fit one estimator of a model to a CSV/Parquet data set and write its "
        "summary (a posterior summary, or a closed form's estimates): simstudy fit "
        "model=NAME data=PATH [estimator=NAME] [out=PATH.parquet] [missing=-999]. model= is "
        "required. The default output, DATA-ESTIMATOR-fit.parquet beside the data, is never "
        "replaced: out= naming an existing file replaces it.",
    )
    fit.add_argument(
        "arguments",
        nargs="*",
        help="model=NAME, data=PATH, out=PATH, estimator=, seed=, level=, missing=CODES, "
        "Hydra overrides",
    )
    check = sub.add_parser(
        "check",
        help="whether an estimator (your own too) keeps the contract, on two simulated data sets",
        description="Simulate the study's first condition twice (replications 0 and 1) and fit "
        "ESTIMATOR to each, the first twice: it passes when every fit returns its declared "
        "estimands with finite estimates and standard errors, the same numbers for the same "
        "data and key and other numbers for other data. Exit 0 when it passes, 1 when not.",
    )
    check.add_argument("estimator", help="an estimator of the study's model (model.estimators)")
    check.add_argument("overrides", nargs="*", help="config overrides, e.g. study=NAME")
    status = sub.add_parser("status", help="how far a study directory has got")
    status.add_argument("results_dir")
    replay = sub.add_parser(
        "replay", help="recompute one replication and compare it with the stored one"
    )
    replay.add_argument("results_dir")
    replay.add_argument("--condition", required=True, help="condition_id")
    replay.add_argument("--rep", required=True, type=int)
    replay.add_argument(
        "--save",
        default=None,
        metavar="DIR",
        help="also write the replication's data set (DIR/<condition>-rep<R>.parquet) and the "
        "posterior draws of each MCMC estimator as ArviZ InferenceData "
        "(DIR/<condition>-rep<R>-<estimator>.nc)",
    )
    simulate = sub.add_parser(
        "simulate",
        help="write a study's simulated data sets as CSV or Parquet (as Mplus REPSAVE)",
        description="Write the data sets a study's replications fitted (the same seeds, the "
        "same numbers) as a table: columns condition_id, rep, seed and the model's variables "
        "(empty where missing), the columns `simstudy fit` reads. A '*' in --out writes one "
        "file per replication, '*' replaced by the rep (by <condition>-<rep> with --all).",
    )
    simulate.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    which = simulate.add_mutually_exclusive_group(required=True)
    which.add_argument("--condition", default=None, help="condition_id (simstudy show lists them)")
    which.add_argument("--all", action="store_true", help="every condition of the study")
    simulate.add_argument(
        "--rep", type=int, default=None, help="one replication (default: all of the study's reps)"
    )
    simulate.add_argument(
        "--out", required=True, metavar="FILE", help="a .csv or .parquet path; '*': one per rep"
    )
    diagnose = sub.add_parser(
        "diagnose",
        help="residuals of the latent interaction model from imputed latent scores",
        description="For one replication of a latent interaction study (a model in the "
        "syntax with a structural product term, y ~ x + m + x:m): draw M imputations of the "
        "latent scores from the posterior of its compiled Gibbs chain (the states "
        "fs_imputation analyses; the study's seed and sampler settings), fit y's regression by OLS "
        "to each, without and with the product term, and plot residuals against predicted "
        "values averaged over the imputations, with binned means and a curvature statistic "
        "(Rubin-pooled z^2 coefficient). Writes "
        "RESULTS_DIR/diagnostics/residuals-<condition>-<rep>.png, .pdf and .parquet; "
        "simstudy report shows the figures.",
    )
    diagnose.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    diagnose.add_argument(
        "--condition", required=True, help="condition_id (simstudy show lists them)"
    )
    diagnose.add_argument("--rep", required=True, type=int, help="the replication")
    diagnose.add_argument(
        "--imputations",
        type=int,
        default=20,
        metavar="M",
        help="imputations of the latent scores (default 20, fs_imputation's M)",
    )
    report = sub.add_parser(
        "report",
        help="write report.html and report.md of a study directory",
        description="Write RESULTS_DIR/report.html (one self-contained file: ADEMP summary, "
        "figures, performance tables with MCSEs, convergence overview), report.md and "
        "figures/*.png, *.pdf, from summary.parquet, manifest.json and the replications.",
    )
    report.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    report.add_argument(
        "--max-rows", type=int, default=200, help="rows a table shows (default 200)"
    )
    report.add_argument(
        "--max-panels", type=int, default=12, help="panels a figure holds (default 12)"
    )
    report.add_argument(
        "--zip-reps", type=int, default=100, help="intervals a zip-plot panel draws (default 100)"
    )
    report.add_argument(
        "--zip-panels",
        type=int,
        default=16,
        help="zip-plot panels (coverage figures furthest from nominal first; default 16)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simstudy`` console script."""
    args = build_parser().parse_args(argv)
    try:
        tree = None
        if args.config_dir is not None:
            tree = checked_dir("--config-dir", args.config_dir)
        elif (Path.cwd() / "conf" / "config.yaml").is_file() and not os.environ.get(
            "SIMSTUDY_CONFIG_DIR"
        ):
            if (Path.cwd() / "conf").resolve() != PACKAGE_CONF:
                _say(f"[simstudy] using {PACKAGE_CONF}; pass --config-dir conf to use ./conf")
        with giving(tree):
            return _dispatch(args)
    except InputError as exc:
        _say(f"simstudy: error: {exc}")
        return EXIT_INPUT


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        # each rank of `srun -n K simstudy run ... executor=slurm_runner` takes its part there
        from simstudy.execute.clusters import run_in_allocation

        return run_in_allocation(args.overrides, cmd_run, compose_raw)
    if args.command == "show":
        return cmd_show(args.overrides, args.pilot)
    if args.command == "list":
        return cmd_list(args.topics)
    if args.command == "aggregate":
        return cmd_aggregate(args)
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "diagnose":
        return cmd_diagnose(args)
    if args.command == "fit":
        return cmd_fit(args.arguments)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "check":
        return cmd_check(args.estimator, args.overrides)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
