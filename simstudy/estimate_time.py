"""How long a run will take: ``simstudy show``'s estimate, before the run.

Compilation is kept apart from fitting: a program is compiled once per condition (per worker
process, unless the persistent cache shares it), while fitting grows with the replications.
``show`` times a pilot (``--pilot K``) or reads the study's stored fits, only those made with
the same sampler and model settings and of conditions in this design. The ETA while a run runs
is :mod:`simstudy.execute.eta`'s.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simstudy.errors import InputError
from simstudy.execute.eta import batch_fit_seconds, compile_seconds

Records = list[dict[str, Any]]


def _n(count: int, word: str) -> str:
    """``3 workers``, ``1 worker``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


# --- before a run: the study's stored fits --------------------------------------------------


@dataclass
class StoredTimes:
    """Mean seconds of a fit by (condition id, estimator), and the stored fits left out, why."""

    per_fit: dict[tuple[str, str], float] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def stored_times(plan: Any, condition_ids: Sequence[str]) -> StoredTimes:
    """Fit times from the study's stored records that tell this plan's time.

    Only batches written under the manifest's config whose sampler and model settings are the
    plan's (the fits' sizes and lengths), and only conditions of the plan's design (its factor
    levels, N among them), are read. Without a manifest, only batches of the plan's own config.
    """
    import pyarrow.parquet as pq

    from simstudy.config import config_hash
    from simstudy.store import batch_files, batch_state, folder_condition, read_manifest

    out = StoredTimes()
    files = batch_files(plan.study_dir) if plan.study_dir.is_dir() else []
    if not files:
        return out
    numbers = plan.numbers_config()
    try:
        manifest = read_manifest(plan.study_dir)
    except InputError as exc:
        out.ignored.append(f"all {len(files)} stored batches: {exc}")
        return out
    if manifest is not None:
        changed = [
            f"{section}.{key}: {manifest.numbers.get(section, {}).get(key)!r} -> {value!r}"
            for section in ("sampler", "model")
            for key, value in numbers[section].items()
            if manifest.numbers.get(section, {}).get(key) != value
        ]
        if changed:
            out.ignored.append(
                f"all {len(files)} stored batches: made with other sampler or model settings "
                f"({'; '.join(changed[:3])})"
            )
            return out
    digest = manifest.config_hash if manifest else config_hash(numbers)
    wanted = set(condition_ids)
    other_config = other_design = 0
    tables = []
    for path in files:
        if folder_condition(path) not in wanted:
            other_design += 1
        elif batch_state(path).config_hash != digest:
            other_config += 1
        else:
            columns = ["condition_id", "rep", "estimator", "status", "seconds"]
            tables.append(pq.read_table(path, columns=columns).to_pandas())
    if other_design:
        out.ignored.append(
            f"{other_design} stored batches of conditions not in this design (other factor levels)"
        )
    if other_config:
        out.ignored.append(f"{other_config} stored batches written under another config")
    if tables:
        import pandas as pd

        stored = pd.concat(tables)
        ok = stored[stored["status"] == "ok"].drop_duplicates(["condition_id", "rep", "estimator"])
        means = ok.groupby(["condition_id", "estimator"])["seconds"].mean()
        out.per_fit = {key: float(v) for key, v in means.items() if math.isfinite(v)}
    return out


def workers_of(settings: Any) -> int:
    """The workers a run on these executor settings gets; 0 when its scheduler decides.

    ``executor.n_workers``, else one per core here (``local``), SLURM's jobs × cores.
    """
    from simstudy.config import available_cores

    if settings.n_workers:
        return int(settings.n_workers)
    if settings.name == "local":
        return available_cores()
    if settings.name == "slurm" and settings.slurm is not None:
        return int(settings.slurm.maximum_jobs * settings.slurm.cores)
    return 0


def _among(workers: int) -> str:
    """``divided among 4 workers``, or what to do when the count is the scheduler's."""
    if workers < 1:
        return "for one worker: divide by the run's workers (its scheduler's, not known yet)"
    return f"divided among {_n(workers, 'worker')}"


def stored_lines(plan: Any, condition_ids: Sequence[str], stored: StoredTimes) -> list[str]:
    """``simstudy show``'s time from stored fits: fitting time where every estimator has one."""
    workers = workers_of(plan.executor)
    timed = [c for c in condition_ids if all((c, e) in stored.per_fit for e in plan.estimators)]
    lines = []
    if timed:
        seconds = sum(stored.per_fit[(c, e)] for c in timed for e in plan.estimators) * plan.reps
        means = {
            e: sum(stored.per_fit[(c, e)] for c in timed) / len(timed) for e in plan.estimators
        }
        lines.append(
            f"fitting, from this study's stored fits (same sampler and model settings) of "
            f"{len(timed)} of {_n(len(condition_ids), 'condition')}: "
            f"{seconds / max(workers, 1):,.0f} s ({seconds:,.0f} s of fits {_among(workers)}; "
            "per fit "
            + ", ".join(f"{e} {s:.3g} s" for e, s in means.items())
            + "); compilation comes on top"
        )
    if len(timed) < len(condition_ids):
        lines.append(
            f"time: not known before a run for {_n(len(condition_ids) - len(timed), 'condition')} "
            "(no stored fits of them with these settings); `simstudy show --pilot 2 ...` "
            "times a pilot of 2 replications per condition"
        )
    lines += [f"ignored: {why}" for why in stored.ignored]
    return lines


# --- before a run: a pilot ------------------------------------------------------------------


@dataclass(frozen=True)
class PilotTiming:
    """What the pilot of one condition took.

    Attributes
    ----------
    cond_id
        The condition.
    compile_s
        Seconds compiling its programs (or loading them from JAX's persistent cache).
    run_s
        Seconds running its replications once compiled (simulation, fits, summaries).
    lanes
        Replications fitted, with the padding of vectorized programs (``run_s`` is theirs).
    fits, failed
        Fits (replication × estimator) of the pilot, and how many failed.
    """

    cond_id: str
    compile_s: float
    run_s: float
    lanes: int
    fits: int
    failed: int


def lanes(plan: Any, reps: int, batch_size: int) -> int:
    """Replications a run fits, with the padding lanes of a vectorized sampler."""
    from simstudy.config import BATCHED_SAMPLERS
    from simstudy.design import padded_lanes

    if plan.kind == "sbc":
        return reps
    widest = max(
        (s.vectorize for s in map(plan.sampler_of, plan.estimators) if s.name in BATCHED_SAMPLERS),
        default=1,
    )
    return reps + padded_lanes(reps, batch_size, widest)


def pilot_condition(plan: Any, condition: Mapping[str, Any], reps: int) -> PilotTiming:
    """Run ``reps`` replications of a condition, its compilation timed apart (a worker's task)."""
    from simstudy.design import condition_id
    from simstudy.engine import replicate
    from simstudy.execute.runner import fit_counts

    compiled = compile_seconds()
    start = time.perf_counter()
    records = replicate.run_batch(plan, condition, list(range(reps)))
    wall = time.perf_counter() - start
    compile_s = compile_seconds() - compiled
    fits, failed = fit_counts(records)
    return PilotTiming(
        condition_id(condition),
        compile_s,
        max(wall - compile_s, batch_fit_seconds(records)),
        lanes(plan, reps, reps),
        fits,
        failed,
    )


def check_pilot(reps: int | None) -> None:
    """Exit 2 unless ``--pilot`` is absent or a number of replications of at least 1."""
    if reps is not None and (not isinstance(reps, int) or reps < 1):
        raise InputError("--pilot", reps, "a whole number of replications per condition, >= 1")


#: Executors a pilot runs on as configured; for the others (clusters elsewhere) it runs here.
PILOT_EXECUTORS = ("synchronous", "local")


def run_pilot(
    plan: Any, conditions: Sequence[Mapping[str, Any]], reps: int
) -> tuple[list[PilotTiming], int, str]:
    """Time ``reps`` replications of each condition; write nothing of the study's.

    They run on the plan's executor when it is ``synchronous`` or ``local``, else in this
    process (a pilot starts no cluster elsewhere). The pilot's plan points at a temporary
    results directory, removed afterwards, never at the study's.

    Returns
    -------
    timings, workers, where
        The timings in the conditions' order, the workers a run gets (0: not known before it
        starts, e.g. a scheduler's), and where the pilot ran.
    """
    from simstudy.execute.pools import open_pool

    check_pilot(reps)
    settings = plan.executor
    if settings.name not in PILOT_EXECUTORS:
        settings = dataclasses.replace(settings, name="synchronous", n_workers=1)
    with tempfile.TemporaryDirectory(prefix="simstudy-pilot-") as tmp:
        pilot = dataclasses.replace(plan, reps=reps, results_dir=Path(tmp), executor=settings)
        with open_pool(settings) as pool:
            handles = [pool.submit(pilot_condition, pilot, dict(c), reps) for c in conditions]
            timings = [h.result() for h in handles]
            workers = pool.n_workers
    if settings is not plan.executor:
        where = f"this process (executor {plan.executor.name} is not started)"
        return timings, workers_of(plan.executor), where
    return timings, workers, f"executor {settings.name}"


@dataclass(frozen=True)
class Estimate:
    """A run's time from a pilot: compilation and fitting apart, in seconds."""

    compile_s: float
    fit_s: float

    @property
    def total_s(self) -> float:
        """Compilation and fitting together."""
        return self.compile_s + self.fit_s


def extrapolate(timings: Sequence[PilotTiming], run_lanes: int, workers: int) -> Estimate:
    """The full run's time: each condition compiled once, its ``run_lanes`` fitted on ``workers``.

    A condition's time per lane is its pilot's run time over the pilot's lanes.
    """
    compile_s = sum(t.compile_s for t in timings)
    fit_s = sum(t.run_s / t.lanes * run_lanes for t in timings) / max(workers, 1)
    return Estimate(compile_s, fit_s)


def pilot_lines(
    plan: Any,
    rows: Sequence[Mapping[str, Any]],
    timings: Sequence[PilotTiming],
    workers: int,
    k: int,
    where: str,
) -> list[str]:
    """``simstudy show --pilot k``'s report: per condition, then the extrapolated run time."""
    from simstudy import catalog
    from simstudy.engine import persistent_cache_dir

    table = [
        {
            **row,
            "compile_s": f"{t.compile_s:.2f}",
            "per_rep_s": f"{t.run_s / t.lanes:.3g}",
            "failed_fits": f"{t.failed}/{t.fits}",
        }
        for row, t in zip(rows, timings, strict=True)
    ]
    run_lanes = lanes(plan, plan.reps, plan.executor.batch_size)
    estimate = extrapolate(timings, run_lanes, workers)
    per_rep = sum(t.run_s / t.lanes for t in timings) / max(len(timings), 1)
    lines = [
        f"pilot: {_n(k, 'replication')} per condition on {where}, in a temporary directory",
        catalog.table(table),
        f"compilation: {estimate.compile_s:,.1f} s (once per condition; "
        f"{estimate.compile_s / max(len(timings), 1):.1f} s on average)",
        f"fitting: {estimate.fit_s:,.1f} s ({per_rep:.3g} s per replication on average × "
        f"{plan.reps} reps × {_n(len(timings), 'condition')}, {_among(workers)})",
        f"estimate: about {estimate.total_s:,.0f} s (compilation {estimate.compile_s:,.0f} s + "
        f"fitting {estimate.fit_s:,.0f} s)",
    ]
    if workers > 1 and len(timings) > 1:
        lines.append(
            f"note: {_n(workers, 'worker')} compile different conditions at once, so less of "
            "the compilation is wall time"
        )
    cache = persistent_cache_dir()
    if cache:
        lines.append(
            f"note: the pilot's programs are in JAX's persistent cache ({cache}): a run with "
            "the same settings loads them instead of compiling"
        )
    failed = sum(t.failed for t in timings)
    if failed:
        lines.append(f"note: {failed} of the pilot's fits failed (see failed_fits)")
    return lines


def time_lines(plan: Any, conditions: Sequence[Mapping[str, Any]], pilot: int | None) -> list[str]:
    """``simstudy show``'s time section: from a pilot of ``pilot`` reps, else from stored fits."""
    from simstudy.design import condition_id

    ids = [condition_id(c) for c in conditions]
    if pilot is not None:
        timings, workers, where = run_pilot(plan, conditions, pilot)
        rows = [{"condition_id": cid, **c} for cid, c in zip(ids, conditions, strict=True)]
        return pilot_lines(plan, rows, timings, workers, pilot, where)
    return stored_lines(plan, ids, stored_times(plan, ids))
