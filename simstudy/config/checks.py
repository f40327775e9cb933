"""What a run needs beyond a valid config: a fittable design, a machine, a place to write."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simstudy.config.settings import BATCHED_SAMPLERS, ModelSettings, SamplerSettings, StudyPlan
from simstudy.config.study import FitPlan
from simstudy.config.values import size_bytes
from simstudy.errors import InputError
from simstudy.spec import ModelInfo

#: Memory a worker process takes before it holds any data (Python, JAX, compiled programs).
WORKER_BASE_BYTES = 512 * 2**20


#: Local worker processes per core this process may use, at most.
WORKERS_PER_CORE = 4


def machine_memory() -> int:
    """Bytes of memory here: the physical memory, or a cgroup's limit where that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def available_cores() -> int:
    """Cores this process may use (CPU affinity, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def gib(n: float) -> str:
    """Bytes as GiB for messages."""
    return f"{n / 2**30:,.1f} GiB"


def info_of(plan: StudyPlan | FitPlan, models: Mapping[str, ModelInfo]) -> ModelInfo:
    """What the plan's model declares (a syntax model's, compiled from its structure)."""
    from simstudy.spec import info as spec_info

    if plan.model.kind == "spec":
        return spec_info.model_info(
            plan.model.name, plan.model.structure, plan.model.params, fitting=True
        )
    return models[plan.model.name]


def declared_info(raw_model: Any, models: Mapping[str, ModelInfo]) -> ModelInfo | None:
    """What a model section declares before validation (its estimators and samplers), or None.

    For choices made on the composed config before it is validated (the sampler an estimator
    needs, the default estimator): a syntax model's from its ``estimators:``, a family's from
    ``models``; None for an unknown name, which validation then refuses.
    """
    from simstudy.spec import info as spec_info

    raw_model = raw_model if isinstance(raw_model, Mapping) else {}
    if spec_info.is_spec(raw_model):
        return spec_info.declared(raw_model)
    return models.get(raw_model.get("name"))


def check_runnable(plan: StudyPlan, models: Mapping[str, ModelInfo]) -> None:
    """Refuse a valid config that cannot run well here (:class:`InputError`, exit code 2).

    Checked before any work starts: every level of a size factor is at least the model's
    minimum for the study's estimators (``ModelInfo.min_size``), no more local workers than
    :data:`WORKERS_PER_CORE` per core, and the memory a worker needs for the largest
    condition (``ModelInfo.footprint``: its data sets, and the draws its chains store) times
    the workers fits in this machine's memory (:func:`machine_memory`) and in
    ``executor.memory_limit`` where that is a size. Depends on the machine, so a stored
    study's manifest is not checked by it (``simstudy status`` and ``replay`` keep working).
    """
    info = info_of(plan, models)
    _check_minimum(plan, info)
    _check_resources(plan, info)


def _check_minimum(plan: StudyPlan, info: ModelInfo) -> None:
    if info.min_size is None:
        return
    for factor, (low, why) in info.min_size(plan.model.structure, plan.estimators).items():
        for i, level in enumerate(plan.factors.get(factor, ())):
            if level < low:
                raise InputError(
                    f"study.factors.{factor}[{i}]",
                    level,
                    f"{factor} >= {low:g}, the minimum of model {info.name} for the estimators "
                    f"{', '.join(plan.estimators)}: {why}",
                )


def worker_bytes(
    plan: StudyPlan, info: ModelInfo, warmup: int | None = None, draws: int | None = None
) -> tuple[float, str]:
    """Memory one worker needs for the study's largest condition, and how it adds up.

    8 bytes per value: ``executor.batch_size`` data sets, and per replication fitted at once
    (``sampler.vectorize`` for the batched samplers) and chain twice a data set's values (the
    sampler's state) and the values it stores for every warm-up and sampling sweep.
    """
    setting: dict[str, Any] = dict(plan.model.params)
    for name, levels in plan.factors.items():
        numbers = [v for v in levels if isinstance(v, int | float) and not isinstance(v, bool)]
        setting[name] = max(numbers) if numbers else levels[0]
    groups: dict[SamplerSettings, list[str]] = {}
    for e in plan.estimators:  # estimators on one sampler's settings are fitted one by one
        groups.setdefault(plan.sampler_of(e), []).append(e)
    footprints = []
    for s, estimators in groups.items():
        sampled = any(e in info.samplers for e in estimators)
        batched = sampled and s.name in BATCHED_SAMPLERS and plan.kind != "sbc"
        settings = dataclasses.replace(
            s,
            warmup=s.warmup if warmup is None else warmup,
            draws=s.draws if draws is None else draws,
        )
        footprints.append(
            _footprint_bytes(
                info,
                plan.model,
                dict(setting),
                estimators,
                settings,
                plan.executor.batch_size,
                s.vectorize if batched else 1,
            )
        )
    return max(footprints, key=lambda f: f[0])


def fit_bytes(plan: FitPlan, info: ModelInfo, sizes: Mapping[str, float]) -> tuple[float, str]:
    """Memory ``simstudy fit`` needs for a data set of these ``sizes`` (``N``, ``J`` ...)."""
    setting = {**plan.model.params, **sizes}
    return _footprint_bytes(info, plan.model, setting, [plan.estimator], plan.sampler, 1, 1)


def _footprint_bytes(
    info: ModelInfo,
    model: ModelSettings,
    setting: dict[str, Any],
    estimators: Sequence[str],
    s: SamplerSettings,
    batch: int,
    lanes: int,
) -> tuple[float, str]:
    """The worker memory formula of :func:`worker_bytes`, for one setting."""
    if info.footprint is None:
        return float(WORKER_BASE_BYTES), "not estimated for this model"
    if model.structure:
        setting["structure"] = model.structure
    data, per_draw = info.footprint(setting, estimators)
    sampled = any(e in info.samplers for e in estimators)
    steps = s.warmup + s.draws
    chains = s.chains if sampled else 1
    values = batch * data + lanes * chains * (2 * data + (steps * per_draw if sampled else 0))
    how = (
        f"{batch} data sets of {data:,.0f} values"
        + (
            f", {lanes} x {chains} chains storing {steps:,} sweeps x {per_draw:,.0f} values"
            if sampled
            else ""
        )
        + ", 8 bytes each"
    )
    return WORKER_BASE_BYTES + 8.0 * values, how


#: What the driver holds per planned batch, and per record of a condition while summarising
#: it (the records and their working copies); sizes measured with tracemalloc and pandas.
TASK_BYTES = 512


RECORD_BYTES = 1024


def driver_bytes(plan: StudyPlan, info: ModelInfo) -> tuple[float, str]:
    """Memory the driver needs: its planned batches, and the largest condition's records.

    Records per replication are estimated as one per estimator and model parameter (the
    estimands are of that order).
    """
    n_conditions = 1
    for levels in plan.factors.values():
        n_conditions *= len(levels)
    n_batches = n_conditions * -(-plan.reps // plan.executor.batch_size)
    per_rep = len(plan.estimators) * max(1, len(info.params))
    need = n_batches * TASK_BYTES + plan.reps * per_rep * RECORD_BYTES
    how = (
        f"{n_batches:,} batches to plan, and {plan.reps:,} replications x about {per_rep} "
        "records to summarise per condition"
    )
    return float(need), how


def _check_driver(plan: StudyPlan, info: ModelInfo) -> None:
    """``study.reps`` bounded by the driver's memory, like the sizes by the workers'."""
    need, how = driver_bytes(plan, info)
    cap = machine_memory() / 2  # the other half for the workers a local cluster starts
    if need > cap:
        most = int(plan.reps * cap / need)
        raise InputError(
            "study.reps",
            plan.reps,
            f"at most about {most:,} here: the run needs about {gib(need)} in its driver "
            f"({how}), more than half this machine's memory ({gib(cap)}). Run more "
            "replications as separate studies, or on a larger machine",
        )


def _check_resources(plan: StudyPlan, info: ModelInfo) -> None:
    ex, cores = plan.executor, available_cores()
    _check_driver(plan, info)
    if ex.name == "local" and ex.n_workers is not None and ex.n_workers > WORKERS_PER_CORE * cores:
        raise InputError(
            "executor.n_workers",
            ex.n_workers,
            f"at most {WORKERS_PER_CORE * cores}: {WORKERS_PER_CORE} per core, and this machine "
            f"gives simstudy {cores} (each local worker is a process of its own)",
        )
    here = ex.name in ("local", "synchronous")  # workers on this machine
    machine = float(machine_memory())
    cap, where = machine, "this machine's memory"
    limit = getattr(ex, "memory_limit", "auto")
    if limit not in (None, "auto"):
        size = float(size_bytes(limit) or 0)
        if not here or size < cap:
            cap, where = size, f"executor.memory_limit ({limit})"
    elif not here:
        return  # workers elsewhere: their machines' memory is not known here
    need, how = worker_bytes(plan, info)
    if cap < machine and need <= machine:
        # a limit below what the data and draws alone take (the process itself is not
        # counted here: a limit that small is what fault tests set on purpose)
        if need - WORKER_BASE_BYTES > cap:
            raise InputError(
                "executor.memory_limit",
                limit,
                f"a size of at least {gib(need)}, or auto: a worker needs about that for the "
                f"largest condition ({how}, and {gib(WORKER_BASE_BYTES)} for the process)",
            )
        cap = machine
    if need > cap:
        s = plan.sampler
        field_name, value = None, None
        if s.warmup + s.draws > 2000 and worker_bytes(plan, info, 1000, 1000)[0] <= cap:
            field_name, value = ("sampler.draws", s.draws)
            if s.warmup > s.draws:
                field_name, value = ("sampler.warmup", s.warmup)
        else:
            for factor in ("N", "J", "cluster_size"):
                if factor in plan.factors:
                    levels = list(plan.factors[factor])
                    i = levels.index(max(levels))
                    field_name, value = f"study.factors.{factor}[{i}]", levels[i]
                    break
        if field_name is None:
            field_name, value = "sampler.vectorize", s.vectorize
        raise InputError(
            field_name,
            value,
            f"a size that fits in memory: the largest condition needs about {gib(need)} per "
            f"worker ({how}), more than {where}, {gib(cap)}. Use smaller sizes, fewer "
            "sampler.draws, or smaller sampler.vectorize and executor.batch_size",
        )
    workers = (ex.n_workers or cores) if ex.name == "local" else 1
    if here and workers * need > machine:
        most = max(1, int(machine // need))
        shown = ex.n_workers if ex.n_workers is not None else f"{workers} (one per core)"
        raise InputError(
            "executor.n_workers",
            shown,
            f"at most {most} workers: each needs about {gib(need)} for the largest condition "
            f"({how}) and this machine's memory is {gib(machine)}",
        )


def check_results_dir(
    directory: Path, field_name: str = "results_dir", shown: str | None = None
) -> None:
    """Refuse a results directory that cannot be created or written to; leave nothing behind.

    Creates the missing directories and a probe file in ``directory``, then removes what it
    created: a path through a regular file, a read-only file system or a directory without
    write permission is an :class:`InputError` (exit code 2) before any work starts, its
    value ``shown`` (default: ``directory``).
    """
    directory = Path(directory)
    shown = str(directory) if shown is None else shown
    missing, existing = [], directory
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(
            field_name, shown, f"a directory path ({existing} is a file, not a directory)"
        )
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".simstudy-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            field_name,
            shown,
            f"a directory simstudy can create and write in ({reason}: {exc.filename or directory})",
        ) from None
    finally:
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
