"""Study configuration: typed settings, validation, and conversion of a Hydra config to a plan.

Everything a run needs is checked here, before any work starts. Each problem raises
:class:`~simstudy.errors.InputError` naming the field, the bad value and what is allowed; the
command line turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simstudy.errors import InputError
from simstudy.spec import ModelInfo

EXECUTORS = ("local", "synchronous")
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


@dataclass(frozen=True)
class AggregateSettings:
    """How replications are summarised; changing it needs no rerun (``simstudy aggregate``)."""

    reference: str | None = None
    policy: str = "all"
    rhat_max: float = 1.01
    ess_min: float = 400.0
    allow_divergent: bool = False


@dataclass(frozen=True)
class ModelSettings:
    """The model of a study: its name, default parameter values and prior settings."""

    name: str
    params: dict[str, float]
    priors: dict[str, float]
    structure: dict[str, Any] = field(default_factory=dict)


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
    factor_kinds: dict[str, str] = field(default_factory=dict)
    aggregate: AggregateSettings = field(default_factory=AggregateSettings)
    kind: str = "simulation"
    point_estimate: str = "mean"

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
        model = asdict(self.model)
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
            },
            "model": asdict(self.model),
            "sampler": asdict(self.sampler),
            "executor": asdict(self.executor),
            "aggregate": asdict(self.aggregate),
            "results_dir": str(self.results_dir),
            "fresh": self.fresh,
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
        **flags,
    )


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
    if spec_info.is_spec(d):
        # a model declared in the syntax: its structure is the spec, its info built from it
        if not isinstance(name, str) or not name:
            raise InputError("model.name", name, "a name for the model (any text)")
        structure = spec_info.normalise(d)
        params_raw = _section(d.get("params", {}), "model.params", None)
        info = spec_info.model_info(name, structure, params_raw, fitting=fitting)
        d["priors"] = {**spec_info.PRIOR_DEFAULTS, **dict(d.get("priors") or {})}
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
    return ModelSettings(name=name, params=params, priors=priors, structure=structure), info


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
    top = _section(
        raw,
        "config",
        ["study", "model", "sampler", "executor", "aggregate", "results_dir", "fresh"],
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
        if estimators is None:
            estimators = list(info.posteriors)
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
        factor_kinds=kinds,
        aggregate=_aggregate(top.get("aggregate"), estimators),
        kind=kind,
        point_estimate=_point_estimate(study.get("point_estimate", "mean")),
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
    sampler = _sampler(raw.get("sampler", {}))
    _check_sampler(info, [name], sampler)
    return FitPlan(
        model=model,
        sampler=sampler,
        estimator=name,
        level=_unit("level", level, closed=False),
        seed=_int("seed", seed, 0),
    )
