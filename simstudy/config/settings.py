"""The settings a validated config becomes: constants, the settings dataclasses and the plan."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

EXECUTORS = ("local", "synchronous", "slurm", "slurm_runner", "address", "kubernetes")


#: Executors whose workers run elsewhere, on a Dask cluster (``simstudy.execute.clusters``).
CLUSTER_EXECUTORS = ("slurm", "slurm_runner", "address", "kubernetes")


SAMPLERS = ("nuts", "chees", "gibbs")


#: Samplers that fit ``sampler.vectorize`` replications together (NUTS fits one at a time: its
#: lanes would wait for the longest trajectory).
BATCHED_SAMPLERS = ("gibbs", "chees")


#: What an estimator's sampler (``ModelInfo.samplers``) may be replaced by: the HMC samplers
#: both take a NumPyro model function, the Gibbs sampler a model's own conditional updates.
INTERCHANGEABLE = {"nuts": ("nuts", "chees"), "chees": ("nuts", "chees"), "gibbs": ("gibbs",)}


STUDY_TYPES = ("simulation", "sbc")


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
    samplers: dict[str, SamplerSettings] = field(default_factory=dict)
    fresh: bool = False
    retry_stopped: bool = False
    factor_kinds: dict[str, str] = field(default_factory=dict)
    aggregate: AggregateSettings = field(default_factory=AggregateSettings)
    kind: str = "simulation"
    point_estimate: str = "mean"
    target: PrecisionTarget | None = None

    def sampler_of(self, estimator: str) -> SamplerSettings:
        """The sampler settings estimator ``estimator`` runs with (``samplers``, else ``sampler``).

        An estimator that analyses another's chains is asked for by the chains' name
        (:func:`simstudy.engine.dispatch.chain_name`).
        """
        return self.samplers.get(estimator, self.sampler)

    def _own_samplers(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(settings) for name, settings in self.samplers.items()}

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
        if self.samplers:  # a study without per-estimator samplers keeps the hash it had
            numbers["samplers"] = self._own_samplers()
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
            **({"samplers": self._own_samplers()} if self.samplers else {}),
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
