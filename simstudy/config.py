"""Study configuration: typed settings, validation, and conversion of a Hydra config to a plan.

Everything a run needs is checked here, before any work starts. Each problem raises
:class:`~simstudy.errors.InputError` naming the field, the bad value and what is allowed; the
command line turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from simstudy.errors import InputError
from simstudy.spec import ModelInfo

EXECUTORS = ("local", "synchronous", "slurm", "slurm_runner", "address", "kubernetes")
#: Executors whose workers run elsewhere, on a Dask cluster (``simstudy.execute.clusters``).
CLUSTER_EXECUTORS = ("slurm", "slurm_runner", "address", "kubernetes")
#: What a ``_target_`` in a config may name: nothing else is ever instantiated from config.
TARGET_PREFIXES = ("simstudy.", "dask_jobqueue.", "distributed.", "dask_kubernetes.")
SAMPLERS = ("nuts", "chees", "gibbs")
#: Samplers that fit ``sampler.vectorize`` replications together (NUTS fits one at a time: its
#: lanes would wait for the longest trajectory).
BATCHED_SAMPLERS = ("gibbs", "chees")
#: What an estimator's sampler (``ModelInfo.samplers``) may be replaced by: the HMC samplers
#: both take a NumPyro model function, the Gibbs sampler a model's own conditional updates.
INTERCHANGEABLE = {"nuts": ("nuts", "chees"), "chees": ("nuts", "chees"), "gibbs": ("gibbs",)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


STUDY_TYPES = ("simulation", "sbc")


def _check_sampler(info: ModelInfo, estimators: Sequence[str], sampler: SamplerSettings) -> None:
    for est in estimators:
        needed = info.samplers.get(est)
        if needed is not None and sampler.name not in INTERCHANGEABLE[needed]:
            allowed = " or ".join(f"'{name}'" for name in INTERCHANGEABLE[needed])
            raise InputError(
                "sampler.name",
                sampler.name,
                f"{allowed} for estimator {est} of model {info.name} (e.g. sampler={needed})",
            )


@dataclass(frozen=True)
class SamplerSettings:
    """MCMC settings shared by every sampled estimator of a study."""

    name: str = "nuts"
    chains: int = 2
    warmup: int = 500
    draws: int = 500
    target_accept: float = 0.8
    max_tree_depth: int = 10
    vectorize: int = 1  # replications per compiled program (Gibbs and ChEES estimators)

    def program(self) -> SamplerSettings:
        """The settings a compiled program depends on: the width is the program's own."""
        return dataclasses.replace(self, vectorize=1)


@dataclass(frozen=True)
class SlurmSettings:
    """``executor=slurm``: Dask workers as SLURM jobs, submitted by this process (the driver).

    One job is ``cores`` single-threaded worker processes (as local workers are); between
    ``minimum_jobs`` and ``maximum_jobs`` of them run at once (``cluster.adapt``). Each worker
    retires before its job's ``walltime`` (see :func:`simstudy.execute.clusters.lifetime`),
    and a new job replaces it.
    """

    _target_: str = "simstudy.execute.clusters.SLURMCluster"
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    interface: str | None = None
    python: str | None = None
    minimum_jobs: int | None = None
    maximum_jobs: int = 2
    lifetime: float | None = None
    lifetime_margin: float = 300.0
    lifetime_stagger: float = 120.0
    log_directory: str | None = "dask-worker-logs"
    local_directory: str | None = None


@dataclass(frozen=True)
class RunnerSettings:
    """``executor=slurm_runner``: the whole study inside one allocation (``srun -n K``)."""

    _target_: str = "dask_jobqueue.slurm.SLURMRunner"
    scheduler_file: str = "scheduler-{job_id}.json"
    interface: str | None = None
    local_directory: str | None = None


@dataclass(frozen=True)
class KubernetesSettings:
    """``executor=kubernetes``: a Dask cluster of single-threaded worker pods (Dask operator)."""

    _target_: str = "dask_kubernetes.operator.KubeCluster"
    name: str = "simstudy"
    namespace: str | None = None
    image: str | None = None
    cpu: str = "1"
    memory: str = "4Gi"
    env: dict[str, str] = field(default_factory=dict)
    scheduler_service_type: str = "ClusterIP"


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how batches run; none of this changes a replication's numbers."""

    name: str = "local"
    n_workers: int | None = None
    batch_size: int = 16
    window: int | None = None
    retries: int = 1
    dashboard: bool = True
    pin_cores: bool = True
    compile_first: bool = True
    #: Seconds one replication's fits may take on average; a batch gets this × its reps.
    fit_timeout: float | None = 600.0
    #: Seconds a run waits with no worker alive and none coming before it stops (None: forever).
    no_worker_timeout: float | None = 120.0
    #: Memory each local worker may use ("auto": the machine's memory shared out; "2GiB").
    memory_limit: str = "auto"
    #: Where the workers reach the driver's scheduler (``executor=slurm``); None: Dask's choice.
    scheduler_host: str | None = None
    #: A running Dask scheduler (``executor=address``), e.g. ``tcp://10.0.0.5:8786``.
    address: str | None = None
    slurm: SlurmSettings | None = None
    runner: RunnerSettings | None = None
    kubernetes: KubernetesSettings | None = None


@dataclass(frozen=True)
class AggregateSettings:
    """How replications are summarised; changing it needs no rerun (``simstudy aggregate``)."""

    reference: str | None = None
    policy: str = "all"
    rhat_max: float = 1.01
    ess_min: float = 400.0
    allow_divergent: bool = False


#: What a model is: declared in the syntax and compiled (``spec``), or a hand-written family.
ModelKind = Literal["spec", "family"]


@dataclass(frozen=True)
class ModelSettings:
    """The model of a study: its name, kind, default parameter values and prior settings.

    ``kind`` is decided once, where the model section is validated (:func:`_model`), and read
    everywhere else; it is derived from the config, so the manifest and the hash leave it out.
    """

    name: str
    params: dict[str, float]
    priors: dict[str, float]
    kind: ModelKind
    structure: dict[str, Any] = field(default_factory=dict)

    def as_config(self) -> dict[str, Any]:
        """The section as a config gives it (JSON-ready; ``kind`` is derived, so left out)."""
        out = asdict(self)
        del out["kind"]
        return out


#: Measures a precision target may name (those of every estimator, with an MCSE).
TARGET_MEASURES = (
    "bias",
    "rel_bias",
    "empse",
    "modelse",
    "mse",
    "rmse",
    "coverage",
    "be_coverage",
    "power",
    "width",
)


@dataclass(frozen=True)
class PrecisionTarget:
    """``study.target``: add batches to a condition until a measure's MCSE is this small.

    ``study.reps`` is then the cap. Which replications run never changes their numbers: rep
    ``r`` has the numbers it has in a run of fixed ``reps``.

    Attributes
    ----------
    measure
        The measure whose MCSE is watched (:data:`TARGET_MEASURES`).
    mcse
        The MCSE to reach, on the measure's scale (coverage 0.005 is half a point).
    parameters, estimators
        Whose MCSE must all be at most ``mcse``; empty: every estimand, every estimator.
    min_reps
        Replications before the target is checked (a coverage of 1 over 10 reps has MCSE 0).
    """

    measure: str
    mcse: float
    parameters: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    min_reps: int = 50


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: everything the executor and the replications need, as plain values."""

    name: str
    aims: str
    reps: int
    seed: int
    level: float
    estimators: tuple[str, ...]
    factors: dict[str, tuple[Any, ...]]
    exclude: tuple[dict[str, Any], ...]
    max_failure_rate: float
    min_reps_for_stop: int
    model: ModelSettings
    sampler: SamplerSettings
    executor: ExecutorSettings
    results_dir: Path = Path("results")
    fresh: bool = False
    retry_stopped: bool = False
    factor_kinds: dict[str, str] = field(default_factory=dict)
    aggregate: AggregateSettings = field(default_factory=AggregateSettings)
    kind: str = "simulation"
    point_estimate: str = "mean"
    target: PrecisionTarget | None = None

    @property
    def reference(self) -> str:
        """The estimator others are compared with: configured, or the study's first."""
        return self.aggregate.reference or self.estimators[0]

    @property
    def study_dir(self) -> Path:
        """Directory holding this study's outputs."""
        return Path(self.results_dir) / self.name

    def numbers_config(self) -> dict[str, Any]:
        """The settings that replication numbers depend on (design grid and reps excluded).

        Adding factor levels or replications keeps every finished batch valid; changing anything
        here does not, so the manifest stores its hash. (The study type enters only when it is
        not the default, so that manifests of plain simulation studies keep their hash.)
        """
        model = self.model.as_config()
        if not model["structure"]:
            del model["structure"]  # models without one keep the hash they had before it
        numbers = {
            "seed": self.seed,
            "level": self.level,
            "estimators": list(self.estimators),
            "model": model,
            "sampler": asdict(self.sampler),
        }
        if self.kind != "simulation":
            numbers["type"] = self.kind
        if self.point_estimate != "mean":  # the default keeps the hash it had before
            numbers["point_estimate"] = self.point_estimate
        return numbers

    def to_config(self) -> dict[str, Any]:
        """The validated config in the shape :func:`plan_from_dict` reads (JSON-ready).

        The manifest stores it, so a study directory can be replayed or inspected later.
        """
        return {
            "study": {
                "name": self.name,
                "type": self.kind,
                "aims": self.aims,
                "reps": self.reps,
                "seed": self.seed,
                "level": self.level,
                "point_estimate": self.point_estimate,
                "estimators": list(self.estimators),
                "factors": {k: list(v) for k, v in self.factors.items()},
                "exclude": [dict(e) for e in self.exclude],
                "max_failure_rate": self.max_failure_rate,
                "min_reps_for_stop": self.min_reps_for_stop,
                "target": None
                if self.target is None
                else {
                    **asdict(self.target),
                    "parameters": list(self.target.parameters) or "all",
                    "estimators": list(self.target.estimators) or "all",
                },
            },
            "model": self.model.as_config(),
            "sampler": asdict(self.sampler),
            "executor": asdict(self.executor),
            "aggregate": asdict(self.aggregate),
            "results_dir": str(self.results_dir),
            "fresh": self.fresh,
            "retry_stopped": self.retry_stopped,
        }


def config_hash(numbers: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-able mapping."""
    blob = json.dumps(numbers, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _section(raw: Any, name: str, allowed: Sequence[str] | None) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError(name, raw, "a mapping of settings")
    unknown = [] if allowed is None else sorted(set(raw) - set(allowed))
    if unknown:
        raise InputError(
            f"{name}.{unknown[0]}", raw[unknown[0]], "known keys are " + ", ".join(allowed)
        )
    return dict(raw)


def _int(name: str, value: Any, low: int, *, none_ok: bool = False) -> int | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or null" if none_ok else ""
        raise InputError(name, value, f"an integer >= {low}{extra}")
    return value


def _unit(name: str, value: Any, *, closed: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not ok:
        raise InputError(name, value, "a number in [0, 1]" if closed else "a number in (0, 1)")
    return float(value)


def _sampler(raw: Any) -> SamplerSettings:
    d = _section(raw, "sampler", [f.name for f in SamplerSettings.__dataclass_fields__.values()])
    name = d.get("name", "nuts")
    if name not in SAMPLERS:
        raise InputError("sampler.name", name, "one of " + ", ".join(SAMPLERS))
    target = d.get("target_accept", 0.8)
    # ChEES tunes its trajectory length from the spread of its chains
    chains = _int("sampler.chains", d.get("chains", 2), 2 if name == "chees" else 1)
    return SamplerSettings(
        name=name,
        chains=chains,
        warmup=_int("sampler.warmup", d.get("warmup", 500), 1),
        draws=_int("sampler.draws", d.get("draws", 500), 4),
        target_accept=_unit("sampler.target_accept", target, closed=False),
        max_tree_depth=_int("sampler.max_tree_depth", d.get("max_tree_depth", 10), 1),
        vectorize=_int("sampler.vectorize", d.get("vectorize", 1), 1),
    )


def _executor(raw: Any) -> ExecutorSettings:
    d = _section(raw, "executor", list(ExecutorSettings.__dataclass_fields__))
    name = d.get("name", "local")
    if name not in EXECUTORS:
        raise InputError("executor.name", name, "one of " + ", ".join(EXECUTORS))
    flags = {k: d.get(k, True) for k in ("dashboard", "pin_cores", "compile_first")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise InputError(f"executor.{key}", value, "true or false")
    return ExecutorSettings(
        name=name,
        n_workers=_int("executor.n_workers", d.get("n_workers"), 1, none_ok=True),
        batch_size=_int("executor.batch_size", d.get("batch_size", 16), 1),
        window=_int("executor.window", d.get("window"), 1, none_ok=True),
        retries=_int("executor.retries", d.get("retries", 1), 0),
        fit_timeout=_timeout("executor.fit_timeout", d.get("fit_timeout", 600.0)),
        no_worker_timeout=_timeout("executor.no_worker_timeout", d.get("no_worker_timeout", 120.0)),
        memory_limit=_memory_limit(d.get("memory_limit", "auto")),
        **flags,
        **_cluster_fields(d, name),
    )


def executor_settings(raw: Any) -> ExecutorSettings:
    """Validate an ``executor`` section alone (what the ranks of ``slurm_runner`` read)."""
    check_targets(raw, "executor")
    return _executor(raw)


def check_targets(raw: Any, where: str = "") -> None:
    """Refuse any ``_target_`` outside :data:`TARGET_PREFIXES`, anywhere in ``raw``.

    Nothing else may ever be instantiated from a config: a ``_target_`` names a class of
    simstudy, dask_jobqueue, distributed or dask_kubernetes, or it exits 2 naming the field.
    """
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_" and (
                not isinstance(value, str)
                or not value.startswith(TARGET_PREFIXES)
                or not re.fullmatch(r"[A-Za-z_][\w.]*", value)
            ):
                raise InputError(
                    path,
                    value,
                    "a dotted class name in simstudy, dask_jobqueue, distributed or "
                    "dask_kubernetes (nothing else is instantiated from a config)",
                )
            check_targets(value, path)
    elif isinstance(raw, (list, tuple)):
        for i, value in enumerate(raw):
            check_targets(value, f"{where}[{i}]")


_WALLTIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def walltime_seconds(text: Any) -> int | None:
    """Seconds in a SLURM time limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S; None if not one."""
    if not isinstance(text, str):
        return None
    m = _WALLTIME_RE.match(text.strip())
    if m is None:
        return None
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, se = ([*parts, 0, 0])[:3]
        return ((int(days) * 24 + h) * 60 + mi) * 60 + se
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


_BYTES_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(b|[kmgtp]i?b?)?\s*$", re.IGNORECASE)
_K8S_QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


def _text(name: str, value: Any, *, none_ok: bool = True, what: str = "a string") -> str | None:
    if value is None and none_ok:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(name, value, what + (" or null" if none_ok else ""))
    return value


def _seconds(name: str, value: Any, *, none_ok: bool = False, low: float = 0.0) -> float | None:
    if value is None and none_ok:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low:
        raise InputError(
            name, value, f"a number of seconds >= {low:g}" + (" or null" if none_ok else "")
        )
    return float(value)


def _lines(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputError(name, value, "a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InputError(f"{name}[{i}]", item, "a string")
    return tuple(value)


def _target(name: str, value: Any, default: str) -> str:
    value = default if value is None else value
    check_targets({"_target_": value}, name.rsplit("._target_", 1)[0])
    return value


def _slurm(raw: Any) -> SlurmSettings:
    keys = list(SlurmSettings.__dataclass_fields__)
    d = _section(raw or {}, "executor.slurm", keys)
    f = "executor.slurm."
    cores = _int(f + "cores", d.get("cores", 1), 1)
    memory = d.get("memory", "4GB")
    if not isinstance(memory, str) or not _BYTES_RE.match(memory):
        raise InputError(f + "memory", memory, 'memory per job, such as "4GB" or "16GiB"')
    walltime = d.get("walltime", "01:00:00")
    if walltime_seconds(walltime) is None:
        raise InputError(
            f + "walltime",
            walltime,
            'a SLURM time limit in quotes: "MM", "HH:MM:SS" or "D-HH:MM:SS"',
        )
    maximum = _int(f + "maximum_jobs", d.get("maximum_jobs", 2), 1)
    minimum = _int(f + "minimum_jobs", d.get("minimum_jobs"), 0, none_ok=True)
    if minimum is not None and minimum > maximum:
        raise InputError(f + "minimum_jobs", minimum, f"at most maximum_jobs ({maximum}) or null")
    margin = _seconds(f + "lifetime_margin", d.get("lifetime_margin", 300.0))
    stagger = _seconds(f + "lifetime_stagger", d.get("lifetime_stagger", 120.0))
    lifetime = _seconds(f + "lifetime", d.get("lifetime"), none_ok=True, low=1.0)
    if lifetime is None and walltime_seconds(walltime) - margin - stagger < 60:
        raise InputError(
            f + "walltime",
            walltime,
            f"a time limit longer than lifetime_margin + lifetime_stagger + 60 s "
            f"({margin + stagger + 60:g} s): workers retire that long before it",
        )
    return SlurmSettings(
        _target_=_target(f + "_target_", d.get("_target_"), SlurmSettings._target_),
        cores=cores,
        memory=memory,
        walltime=walltime,
        queue=_text(f + "queue", d.get("queue"), what="a partition name"),
        account=_text(f + "account", d.get("account"), what="an account name"),
        job_extra_directives=_lines(f + "job_extra_directives", d.get("job_extra_directives")),
        job_script_prologue=_lines(f + "job_script_prologue", d.get("job_script_prologue")),
        interface=_text(f + "interface", d.get("interface"), what="a network interface (ib0)"),
        python=_text(f + "python", d.get("python"), what="the workers' python executable"),
        minimum_jobs=minimum,
        maximum_jobs=maximum,
        lifetime=lifetime,
        lifetime_margin=margin,
        lifetime_stagger=stagger,
        log_directory=_text(f + "log_directory", d.get("log_directory", "dask-worker-logs")),
        local_directory=_text(f + "local_directory", d.get("local_directory")),
    )


def _runner(raw: Any) -> RunnerSettings:
    d = _section(raw or {}, "executor.runner", list(RunnerSettings.__dataclass_fields__))
    f = "executor.runner."
    scheduler_file = _text(
        f + "scheduler_file",
        d.get("scheduler_file", RunnerSettings.scheduler_file),
        none_ok=False,
        what="a file path on a file system every node sees ({job_id} is replaced)",
    )
    return RunnerSettings(
        _target_=_target(f + "_target_", d.get("_target_"), RunnerSettings._target_),
        scheduler_file=scheduler_file,
        interface=_text(f + "interface", d.get("interface"), what="a network interface (ib0)"),
        local_directory=_text(f + "local_directory", d.get("local_directory")),
    )


def _kubernetes(raw: Any) -> KubernetesSettings:
    keys = list(KubernetesSettings.__dataclass_fields__)
    d = _section(raw or {}, "executor.kubernetes", keys)
    f = "executor.kubernetes."
    name = d.get("name", "simstudy")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise InputError(f + "name", name, "a DNS label: lower-case letters, digits and '-'")
    image = _text(
        f + "image",
        d.get("image"),
        none_ok=False,
        what="a container image with this version of simstudy installed",
    )
    quantities = {}
    for key, default in (("cpu", "1"), ("memory", "4Gi")):
        value = d.get(key, default)
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(value, str) or not _K8S_QUANTITY_RE.match(value):
            raise InputError(f + key, value, 'a Kubernetes quantity such as "1", "500m", "4Gi"')
        quantities[key] = value
    env = d.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in env.items()
    ):
        raise InputError(f + "env", env, "a mapping of variable names to values")
    service = d.get("scheduler_service_type", "ClusterIP")
    if service not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise InputError(
            f + "scheduler_service_type", service, "ClusterIP, NodePort or LoadBalancer"
        )
    return KubernetesSettings(
        _target_=_target(f + "_target_", d.get("_target_"), KubernetesSettings._target_),
        name=name,
        namespace=_text(f + "namespace", d.get("namespace"), what="a namespace"),
        image=image,
        env={str(k): str(v) for k, v in env.items()},
        scheduler_service_type=service,
        **quantities,
    )


_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/:]+:\d+$")


def _cluster_fields(d: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The settings of the cluster executors (none for ``local`` and ``synchronous``)."""
    for section, owner in (("slurm", "slurm"), ("runner", "slurm_runner")):
        if d.get(section) is not None and name != owner:
            raise InputError(f"executor.{section}", d[section], f"nothing unless executor={owner}")
    if d.get("kubernetes") is not None and name != "kubernetes":
        raise InputError(
            "executor.kubernetes", d["kubernetes"], "nothing unless executor=kubernetes"
        )
    out: dict[str, Any] = {
        "scheduler_host": _text(
            "executor.scheduler_host",
            d.get("scheduler_host"),
            what="a host name or IP address the workers reach this machine at",
        ),
    }
    if d.get("scheduler_host") is not None and name != "slurm":
        raise InputError(
            "executor.scheduler_host", d["scheduler_host"], "null unless executor=slurm"
        )
    address = d.get("address")
    if name == "address":
        if not isinstance(address, str) or not _ADDRESS_RE.match(address):
            raise InputError(
                "executor.address",
                address,
                "the address of a running Dask scheduler, such as tcp://10.0.0.5:8786",
            )
        out["address"] = address
    elif address is not None:
        raise InputError("executor.address", address, "null unless executor=address")
    workers = d.get("n_workers")
    if name in ("slurm", "slurm_runner", "address") and workers is not None:
        derived = {
            "slurm": "slurm.maximum_jobs × slurm.cores",
            "slurm_runner": "the allocation's tasks less two (srun -n)",
            "address": "read from the scheduler",
        }[name]
        raise InputError(
            "executor.n_workers", workers, f"null: with executor={name} it is {derived}"
        )
    if name == "kubernetes" and workers is None:
        raise InputError("executor.n_workers", workers, "the number of worker pods (>= 1)")
    if name == "slurm":
        out["slurm"] = _slurm(d.get("slurm"))
    elif name == "slurm_runner":
        out["runner"] = _runner(d.get("runner"))
    elif name == "kubernetes":
        out["kubernetes"] = _kubernetes(d.get("kubernetes"))
    return out


def _timeout(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(name, value, "a number of seconds > 0, or null")
    if not math.isfinite(value):
        return None
    return float(value)


_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def size_bytes(text: str) -> int | None:
    """Bytes in a size such as ``"500MB"``, ``"2GiB"`` or ``"4G"``; None if it is not one."""
    m = _BYTES_RE.match(str(text))
    if m is None:
        return None
    unit = (m.group(2) or "").lower()
    binary = "i" in unit
    factor = 1024 ** "bkmgtp".index(unit[0]) if binary else _UNITS[unit[:1]]
    return int(float(str(text).strip()[: m.start(2) if m.group(2) else None]) * factor)


def _memory_limit(value: Any) -> str:
    if value == "auto":
        return "auto"
    size = size_bytes(value) if isinstance(value, str | int) else None
    if not size:
        raise InputError(
            "executor.memory_limit", value, '"auto" or a size such as "2GiB" or "500MB"'
        ) from None
    return str(value)


def _aggregate(raw: Any, estimators: Sequence[str]) -> AggregateSettings:
    d = _section(raw or {}, "aggregate", list(AggregateSettings.__dataclass_fields__))
    reference = d.get("reference")
    if reference is not None and reference not in estimators:
        raise InputError(
            "aggregate.reference",
            reference,
            "one of the study's estimators: " + ", ".join(estimators),
        )
    policy = d.get("policy", "all")
    if policy not in ("all", "converged"):
        raise InputError("aggregate.policy", policy, "'all' or 'converged'")
    rhat_max = d.get("rhat_max", 1.01)
    if isinstance(rhat_max, bool) or not isinstance(rhat_max, (int, float)) or rhat_max < 1:
        raise InputError("aggregate.rhat_max", rhat_max, "a number >= 1")
    ess_min = d.get("ess_min", 400.0)
    if isinstance(ess_min, bool) or not isinstance(ess_min, (int, float)) or ess_min < 0:
        raise InputError("aggregate.ess_min", ess_min, "a number >= 0")
    allow = d.get("allow_divergent", False)
    if not isinstance(allow, bool):
        raise InputError("aggregate.allow_divergent", allow, "true or false")
    return AggregateSettings(reference, policy, float(rhat_max), float(ess_min), allow)


def _structure(info: ModelInfo, raw: Any) -> dict[str, Any]:
    if info.check_structure is not None:
        return info.check_structure(raw)
    if raw:
        raise InputError("model.structure", raw, f"nothing: model {info.name} has none")
    return {}


def _model(
    raw: Any, models: Mapping[str, ModelInfo], *, fitting: bool = False
) -> tuple[ModelSettings, ModelInfo]:
    from simstudy.spec import info as spec_info  # pure Python: the syntax grammar, no JAX

    d = _section(raw, "model", ["name", "params", "priors", "structure", *spec_info.SPEC_KEYS])
    name = d.get("name")
    kind: ModelKind = "spec" if spec_info.is_spec(d) else "family"
    if kind == "spec":
        # a model declared in the syntax: its structure is the spec, its info built from it
        if not isinstance(name, str) or not name:
            raise InputError("model.name", name, "a name for the model (any text)")
        structure = spec_info.normalise(d)
        params_raw = _section(d.get("params", {}), "model.params", None)
        info = spec_info.model_info(name, structure, params_raw, fitting=fitting)
        d["priors"] = spec_info.with_prior_defaults(d.get("priors"))
    elif name not in models:
        raise InputError("model.name", name, "one of " + ", ".join(sorted(models)))
    else:
        info = models[name]
        structure = _structure(info, d.get("structure"))
    params = _section(d.get("params", {}), "model.params", list(info.params))
    missing = [p for p in info.params if p not in params]
    if missing:
        raise InputError(
            f"model.params.{missing[0]}", None, f"a value for {missing[0]} is required"
        )
    params = {k: info.params[k].check(f"model.params.{k}", v) for k, v in params.items()}
    priors = _section(d.get("priors", {}), "model.priors", list(info.priors))
    missing = [p for p in info.priors if p not in priors]
    if missing:
        raise InputError(
            f"model.priors.{missing[0]}", None, f"a value for {missing[0]} is required"
        )
    priors = {k: info.priors[k].check(f"model.priors.{k}", v) for k, v in priors.items()}
    settings = ModelSettings(
        name=name, params=params, priors=priors, kind=kind, structure=structure
    )
    return settings, info


def _check_estimator_priors(model: ModelSettings, estimators: Sequence[str]) -> None:
    """Priors some of a spec model's estimator kinds cannot take (its latent variances' for HMC)."""
    from simstudy.spec import info as spec_info

    if model.kind == "spec":
        spec_info.check_estimator_priors(model.structure, model.priors, estimators)


#: Point estimates a study can report from posterior draws (``study.point_estimate``).
POINT_ESTIMATES = ("mean", "median")

_STUDY_KEYS = (
    "name",
    "type",
    "aims",
    "reps",
    "seed",
    "level",
    "point_estimate",
    "estimators",
    "factors",
    "exclude",
    "max_failure_rate",
    "min_reps_for_stop",
    "target",
)


def _factors(raw: Any, info: ModelInfo) -> tuple[dict[str, tuple[Any, ...]], dict[str, str]]:
    specs = {**info.factors, **info.params}
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(
            "study.factors", raw, "a non-empty mapping of factor name to list of levels"
        )
    factors: dict[str, tuple[Any, ...]] = {}
    for name, levels in raw.items():
        where = f"study.factors.{name}"
        if name not in specs:
            allowed = ", ".join(specs)
            raise InputError(where, levels, f"a factor of model {info.name}: one of {allowed}")
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise InputError(where, levels, "a non-empty list of levels")
        checked = tuple(specs[name].check(f"{where}[{i}]", v) for i, v in enumerate(levels))
        if len(set(checked)) != len(checked):
            raise InputError(where, list(levels), "a list of distinct levels")
        factors[name] = checked
    required = [f for f in info.factors if f not in factors]
    if required:
        raise InputError(
            f"study.factors.{required[0]}", None, f"model {info.name} needs levels for it"
        )
    kinds = {name: specs[name].kind for name in factors}
    return factors, kinds


def _exclude(raw: Any, factors: Mapping[str, tuple[Any, ...]]) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise InputError("study.exclude", raw, "a list of {factor: level} mappings")
    out = []
    for i, entry in enumerate(raw):
        where = f"study.exclude[{i}]"
        if not isinstance(entry, Mapping) or not entry:
            raise InputError(where, entry, "a non-empty {factor: level} mapping")
        for key, value in entry.items():
            if key not in factors:
                raise InputError(
                    f"{where}.{key}", value, "a factor of the study: " + ", ".join(factors)
                )
            if value not in factors[key]:
                raise InputError(f"{where}.{key}", value, f"one of its levels {list(factors[key])}")
        out.append(dict(entry))
    return tuple(out)


def read_config_file(path: Path) -> dict[str, Any]:
    """One config file as plain containers, not composed or validated (for listing configs)."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return raw if isinstance(raw, dict) else {}


def plan_from_dict(raw: Mapping[str, Any], models: Mapping[str, ModelInfo]) -> StudyPlan:
    """Validate a plain config mapping (``study``, ``model``, ``sampler``, ``executor``).

    Parameters
    ----------
    raw
        The composed config as plain Python containers.
    models
        Known model families, by name.

    Returns
    -------
    StudyPlan

    Raises
    ------
    InputError
        On the first invalid setting.
    """
    check_targets(raw)
    top = _section(
        raw,
        "config",
        [
            "study",
            "model",
            "sampler",
            "executor",
            "aggregate",
            "results_dir",
            "fresh",
            "retry_stopped",
        ],
    )
    model, info = _model(top.get("model"), models)
    study = _section(top.get("study"), "study", _STUDY_KEYS)
    name = study.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError("study.name", name, "letters, digits, '_', '.', '-' (a directory name)")
    aims = study.get("aims", "")
    if not isinstance(aims, str):
        raise InputError("study.aims", aims, "a paragraph of text")
    kind = study.get("type", "simulation")
    if kind not in STUDY_TYPES:
        raise InputError("study.type", kind, "one of " + ", ".join(STUDY_TYPES))
    estimators = study.get("estimators")
    if kind == "sbc":
        if estimators is None:  # those that run on the study's sampler (else all: refused)
            chosen = (top.get("sampler") or {}).get("name")
            on_it = [
                e
                for e in info.posteriors
                if chosen in INTERCHANGEABLE.get(info.samplers.get(e, ""), (chosen,))
            ]
            estimators = on_it or list(info.posteriors)
        for i, est in enumerate(estimators or []):
            if est not in info.posteriors:
                allowed = f"an estimator of model {info.name} with a posterior: " + ", ".join(
                    info.posteriors
                )
                raise InputError(f"study.estimators[{i}]", est, allowed)
    if isinstance(estimators, str) or not isinstance(estimators, Sequence) or not estimators:
        raise InputError("study.estimators", estimators, "a non-empty list of estimator names")
    for i, est in enumerate(estimators):
        if est not in info.estimators:
            allowed = "an estimator of model " + info.name + ": " + ", ".join(info.estimators)
            raise InputError(f"study.estimators[{i}]", est, allowed)
    if len(set(estimators)) != len(estimators):
        raise InputError("study.estimators", list(estimators), "distinct estimator names")
    if info.check_priors is not None:
        info.check_priors(model.priors, kind == "sbc")
    _check_estimator_priors(model, estimators)
    seed = study.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError("study.seed", seed, "an integer in [0, 2^63)")
    factors, kinds = _factors(study.get("factors"), info)
    results_dir = top.get("results_dir", "results")
    if not isinstance(results_dir, str) or not results_dir:
        raise InputError("results_dir", results_dir, "a directory path")
    fresh = top.get("fresh", False)
    if not isinstance(fresh, bool):
        raise InputError("fresh", fresh, "true or false")
    retry_stopped = top.get("retry_stopped", False)
    if not isinstance(retry_stopped, bool):
        raise InputError("retry_stopped", retry_stopped, "true or false")
    sampler = _sampler(top.get("sampler", {}))
    _check_sampler(info, estimators, sampler)
    executor = _executor(top.get("executor", {}))
    if sampler.vectorize > executor.batch_size:
        raise InputError(
            "sampler.vectorize",
            sampler.vectorize,
            f"at most executor.batch_size ({executor.batch_size}): a task's replications are "
            "what can be fitted together",
        )
    return StudyPlan(
        name=name,
        aims=aims.strip(),
        reps=_int("study.reps", study.get("reps"), 1),
        seed=seed,
        level=_unit("study.level", study.get("level", 0.95), closed=False),
        estimators=tuple(estimators),
        factors=factors,
        exclude=_exclude(study.get("exclude"), factors),
        max_failure_rate=_unit(
            "study.max_failure_rate", study.get("max_failure_rate", 0.5), closed=True
        ),
        min_reps_for_stop=_int("study.min_reps_for_stop", study.get("min_reps_for_stop", 10), 1),
        model=model,
        sampler=sampler,
        executor=executor,
        results_dir=Path(results_dir),
        fresh=fresh,
        retry_stopped=retry_stopped,
        factor_kinds=kinds,
        aggregate=_aggregate(top.get("aggregate"), estimators),
        kind=kind,
        point_estimate=_point_estimate(study.get("point_estimate", "mean")),
        target=_target_precision(study.get("target"), estimators, kind),
    )


def _target_precision(raw: Any, estimators: Sequence[str], kind: str) -> PrecisionTarget | None:
    """Validate ``study.target`` (null: a fixed number of replications)."""
    if raw is None:
        return None
    if kind == "sbc":
        raise InputError("study.target", raw, "null for an SBC study (its ranks need every rep)")
    d = _section(raw, "study.target", list(PrecisionTarget.__dataclass_fields__))
    measure = d.get("measure")
    if measure not in TARGET_MEASURES:
        raise InputError("study.target.measure", measure, "one of " + ", ".join(TARGET_MEASURES))
    mcse = d.get("mcse")
    if isinstance(mcse, bool) or not isinstance(mcse, int | float) or not 0 < mcse < math.inf:
        raise InputError("study.target.mcse", mcse, "a number > 0 (the MCSE to reach)")
    chosen = []
    for key, allowed in (("parameters", None), ("estimators", estimators)):
        value = d.get(key, "all")
        if value == "all" or value is None:
            chosen.append(())
            continue
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise InputError(f"study.target.{key}", value, "all, or a non-empty list of names")
        for i, item in enumerate(value):
            if not isinstance(item, str) or (allowed is not None and item not in allowed):
                what = (
                    "one of the study's estimators: " + ", ".join(allowed) if allowed else "a name"
                )
                raise InputError(f"study.target.{key}[{i}]", item, what)
        chosen.append(tuple(value))
    return PrecisionTarget(
        measure,
        float(mcse),
        chosen[0],
        chosen[1],
        _int("study.target.min_reps", d.get("min_reps", 50), 2),
    )


def _point_estimate(value: Any) -> str:
    """Validate ``study.point_estimate``."""
    if value not in POINT_ESTIMATES:
        raise InputError("study.point_estimate", value, " or ".join(POINT_ESTIMATES))
    return value


def plan_from_config(cfg: DictConfig, models: Mapping[str, ModelInfo]) -> StudyPlan:
    """Validate a composed Hydra config into a :class:`StudyPlan`."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    return plan_from_dict(raw, models)


@dataclass(frozen=True)
class FitPlan:
    """A validated ``simstudy fit``: one model's estimator on a user's data set."""

    model: ModelSettings
    sampler: SamplerSettings
    estimator: str
    level: float
    seed: int
    #: The smallest data the estimator can fit: {size factor: (smallest level, why)}.
    minimum: dict[str, tuple[float, str]] = field(default_factory=dict)


def fit_plan_from_dict(
    raw: Mapping[str, Any],
    models: Mapping[str, ModelInfo],
    estimator: str | None,
    level: float = 0.95,
    seed: int = 0,
) -> FitPlan:
    """Validate the model and sampler sections of a config for fitting one data set."""
    model, info = _model(raw.get("model"), models, fitting=True)
    name = estimator or info.estimators[0]
    if name not in info.estimators:
        raise InputError(
            "estimator", name, f"an estimator of model {info.name}: " + ", ".join(info.estimators)
        )
    _check_estimator_priors(model, [name])
    sampler = _sampler(raw.get("sampler", {}))
    _check_sampler(info, [name], sampler)
    return FitPlan(
        model=model,
        sampler=sampler,
        estimator=name,
        level=_unit("level", level, closed=False),
        seed=_int("seed", seed, 0),
        minimum=dict(info.min_size(model.structure, [name])) if info.min_size else {},
    )


# --- what a run needs beyond a valid config: a fittable design, a machine, a place to write --

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
    s = plan.sampler
    sampled = any(e in info.samplers for e in plan.estimators)
    lanes = s.vectorize if sampled and s.name in BATCHED_SAMPLERS and plan.kind != "sbc" else 1
    return _footprint_bytes(
        info,
        plan.model,
        setting,
        plan.estimators,
        dataclasses.replace(
            s,
            warmup=s.warmup if warmup is None else warmup,
            draws=s.draws if draws is None else draws,
        ),
        plan.executor.batch_size,
        lanes,
    )


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
