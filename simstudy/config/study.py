"""A study's config validated into a plan: model, factors, estimators, aggregation, target."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simstudy.config.executor import _executor, _sampler, check_targets
from simstudy.config.settings import (
    INTERCHANGEABLE,
    STUDY_TYPES,
    TARGET_MEASURES,
    AggregateSettings,
    ModelKind,
    ModelSettings,
    PrecisionTarget,
    SamplerSettings,
    StudyPlan,
)
from simstudy.config.values import _NAME_RE, _int, _section, _unit
from simstudy.errors import InputError
from simstudy.spec import ModelInfo


def _check_sampler(
    info: ModelInfo, estimators: Sequence[str], sampler: SamplerSettings, where: str = "sampler"
) -> None:
    for est in estimators:
        needed = info.samplers.get(est)
        if needed is not None and sampler.name not in INTERCHANGEABLE[needed]:
            allowed = " or ".join(f"'{name}'" for name in INTERCHANGEABLE[needed])
            raise InputError(
                f"{where}.name",
                sampler.name,
                f"{allowed} for estimator {est} of model {info.name} (e.g. sampler={needed}, "
                f"or +sampler@samplers.{est}={needed} for it alone)",
            )


def _samplers(
    raw: Any, info: ModelInfo, estimators: Sequence[str], sampler: SamplerSettings
) -> dict[str, SamplerSettings]:
    """``samplers``: the estimators that run with settings other than the study's ``sampler``.

    Each checked as ``sampler`` is; the study's other estimators must run on ``sampler``.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError("samplers", raw, "a mapping from estimator names to sampler settings")
    own = {}
    for est, section in raw.items():
        if est not in estimators:
            raise InputError(
                f"samplers.{est}", section, "an estimator of the study: " + ", ".join(estimators)
            )
        own[str(est)] = _sampler(section, f"samplers.{est}")
        _check_sampler(info, [est], own[str(est)], f"samplers.{est}")
    _check_sampler(info, [e for e in estimators if e not in own], sampler)
    return own


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
            "samplers",
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
    samplers = _samplers(top.get("samplers"), info, estimators, sampler)
    executor = _executor(top.get("executor", {}))
    own = [(f"samplers.{e}", s) for e, s in samplers.items()]
    for where, settings in [("sampler", sampler), *own]:
        if settings.vectorize > executor.batch_size:
            raise InputError(
                f"{where}.vectorize",
                settings.vectorize,
                f"at most executor.batch_size ({executor.batch_size}): a task's replications "
                "are what can be fitted together",
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
        samplers=samplers,
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
