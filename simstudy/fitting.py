"""One estimator of a model fitted to a data table: planned, checked, run; nothing printed.

``simstudy fit`` (:mod:`.fitcmd`) and :func:`simstudy.fit` share it: :func:`plan_fit` (the
validated plan; nothing of JAX, so a refusal costs no compile), :func:`prepare_fit` (the data
set, the estimator, priors scaled to the data; the last refusals), :func:`run_fit` (chains
doubled until they converge unless ``sampler.draws`` is named, the summary table, the
warnings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.compose import compose_raw, config_dirs
from simstudy.config_search import group_files
from simstudy.errors import InputError


def require_model(overrides: Sequence[str]) -> None:
    """Refuse a fit that names no model (the config's default model is a study's, not yours)."""
    if any(o.partition("=")[0].lstrip("+~") == "model" for o in overrides):
        return
    names = list(group_files(config_dirs(), "model"))
    raise InputError(
        "model",
        None,
        "model=NAME, the model to fit, one of: "
        + ", ".join(names)
        + " (simstudy list models describes them)",
    )


def fit_warnings(table: pd.DataFrame, sampler: Any, rhat_max: float, ess_min: float) -> list[str]:
    """Plain words for parameters whose chains have not mixed or are too short."""
    out = []
    bad_rhat = table.loc[table["rhat"] > rhat_max, "parameter"].tolist()
    if bad_rhat:
        out.append(
            f"R-hat > {rhat_max} for {', '.join(bad_rhat)}: the chains disagree; raise "
            f"sampler.warmup (now {sampler.warmup}) and sampler.draws (now {sampler.draws})."
        )
    bad_ess = table.loc[table["ess_bulk"] < ess_min, "parameter"].tolist()
    if bad_ess:
        out.append(
            f"bulk ESS < {ess_min:g} for {', '.join(bad_ess)}: too few effective draws for "
            f"stable estimates; raise sampler.draws (now {sampler.draws}) or sampler.chains "
            f"(now {sampler.chains})."
        )
    return out


def _spec_missing(raw: dict[str, Any], frame: pd.DataFrame) -> None:
    """A spec model fitted to data: its incomplete predictors are the data's (model-based)."""
    from simstudy.spec import info as spec_info

    model = raw.get("model") or {}
    if not spec_info.is_spec(model):
        return
    given = {**model, "design": {**(model.get("design") or {}), "missing": {}}}
    spec = spec_info.spec_of(spec_info.normalise(given))
    incomplete = [v for v in spec.exogenous if v in frame.columns and frame[v].isna().any()]
    design = dict(model.get("design") or {})
    design["missing"] = {v: {"given": []} for v in incomplete}
    model["design"] = design


def data_sizes(frame: pd.DataFrame, plan: Any) -> dict[str, float]:
    """The data's sizes by the names of the design factors: ``N``; ``J``, ``cluster_size``."""
    from simstudy.spec import info as spec_info

    sizes: dict[str, float] = {"N": len(frame)}
    if plan.model.kind == "spec":
        groups = spec_info.spec_of(plan.model.structure).groups
        if groups and groups[0] in frame.columns:  # an absent one: from_frame says so
            clusters = frame[groups[0]].nunique()
            sizes |= {"J": clusters, "cluster_size": len(frame) / max(clusters, 1)}
    return sizes


#: Times ``simstudy fit`` doubles its chains' draws when they have not converged (default
#: draws only): the bound on its run time, at most 2^MAX_LONGER times the default's sampling.
MAX_LONGER = 2


def unconverged(summaries: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """Why the chains have not converged (bulk ESS or R-hat past the study checks), or None."""
    from simstudy.config import AggregateSettings

    checks = AggregateSettings()
    undefined = [n for n in names if not np.isfinite(summaries[n].ess_bulk)]
    if undefined:  # constant (stuck) draws have no ESS: never a sign of convergence
        return f"bulk ESS undefined (constant draws) for {', '.join(undefined)}"
    ess = min(summaries[n].ess_bulk for n in names)
    rhats = [summaries[n].rhat for n in names if np.isfinite(summaries[n].rhat)]  # NaN: 1 chain
    if ess < checks.ess_min:
        return f"min bulk ESS {ess:.0f} < {checks.ess_min:g}"
    if rhats and (rhat := max(rhats)) > checks.rhat_max:
        return f"max R-hat {rhat:.3f} > {checks.rhat_max}"
    return None


def check_data_size(frame: pd.DataFrame, plan: Any, path: Path, info: Any) -> None:
    """Refuse data too small for the estimator, or too large for this machine's memory.

    Too small: below the model's minimum (``plan.minimum``). Too large: the fit's data and
    stored draws (:func:`simstudy.config.fit_bytes`) past the machine's memory; both are
    checked before anything compiles.
    """
    from simstudy.config import fit_bytes, gib, machine_memory

    sizes = data_sizes(frame, plan)
    words = {"N": "rows", "J": "clusters", "cluster_size": "rows per cluster on average"}
    for factor, (low, why) in plan.minimum.items():
        if factor in sizes and sizes[factor] < low:
            raise InputError(
                f"data {words.get(factor, factor)}",
                round(sizes[factor], 2),
                f"at least {low:g} in {path}, the minimum of model {plan.model.name} for "
                f"estimator {plan.estimator}: {why}",
            )
    need, how = fit_bytes(plan, info, sizes)
    cap = machine_memory()
    if need > cap:
        raise InputError(
            "data rows",
            len(frame),
            f"a data set whose fit fits in memory: estimator {plan.estimator} of model "
            f"{plan.model.name} would need about {gib(need)} ({how}), more than this "
            f"machine's {gib(cap)}. Fewer sampler.draws, sampler.warmup or sampler.chains, "
            "or a subsample of the rows",
        )


def has_loadings(plan: Any) -> bool:
    """Whether the plan's model is a spec with a loading (else its loading prior is unused)."""
    from simstudy.spec import info as spec_info

    if plan.model.kind != "spec":
        return False
    return any(p.is_loading for p in spec_info.spec_of(plan.model.structure).parameters())


def scaled_plan(plan: Any, dataset: Any, given: Collection[str]) -> tuple[Any, dict, set[str]]:
    """A spec model's fit plan with priors on ``dataset``'s scale (:mod:`simstudy.spec.scaled`).

    ``given``: the ``model.priors`` settings the user named, which stay. Returns the plan,
    each reported parameter's prior ``(kind, location, scale, setting)`` and the settings
    the data's scale replaced.
    """
    from simstudy.spec import info as spec_info
    from simstudy.spec import scaled

    spec = spec_info.spec_of(plan.model.structure)
    named_loading = bool({"loading_mean", "loading_sd"} & set(given))
    loading = (plan.model.priors["loading_mean"], plan.model.priors["loading_sd"])
    extra = scaled.data_scaled(spec, dataset, given, loading if named_loading else None)
    priors = {**plan.model.priors, **extra}
    families = plan.model.structure["prior_families"]
    per = scaled.parameter_priors(spec, {**spec_info.PRIOR_DEFAULTS, **priors}, families)
    replaced = {scaled.SETTING_OF[k] for k in extra}
    if "coef_means" in extra and has_loadings(plan) and not named_loading:
        replaced |= {"loading_mean", "loading_sd"}
    model = dataclasses.replace(plan.model, priors=priors)
    return dataclasses.replace(plan, model=model), per, replaced


@dataclasses.dataclass
class Prepared:
    """A fit decided but not run: the plan, the data set, the estimator and its priors."""

    plan: Any
    raw: dict[str, Any]
    frame: pd.DataFrame
    read: Any
    info: Any
    dataset: Any
    estimator: Any
    kind: Any
    per_parameter: dict[str, Any]
    from_data: set[str]
    used: dict[str, str] | None

    @property
    def closed_form(self) -> bool:
        """Whether the estimator is not Bayesian (no priors, no posterior)."""
        return not self.kind.bayesian


@dataclasses.dataclass
class Fitted:
    """A fit's outcome: its summary table, posterior draws (None: closed form) and warnings."""

    prepared: Prepared
    plan: Any
    table: pd.DataFrame
    draws: Any
    seconds: float
    warnings: list[str]


def plan_fit(
    overrides: Sequence[str],
    frame: pd.DataFrame,
    estimator: str | None,
    seed: int,
    level: float,
) -> tuple[Any, dict[str, Any]]:
    """The validated plan of fitting ``estimator`` (None: the model's first) to ``frame``.

    Nothing of JAX runs here: a refusal (:class:`InputError`) costs no compilation.
    """
    from simstudy.config import declared_info, fit_plan_from_dict
    from simstudy.models import model_infos

    require_model(overrides)
    raw = compose_raw(overrides)
    info = declared_info(raw.get("model"), model_infos())
    if info is not None:
        raw = compose_raw(overrides, [estimator or info.estimators[0]])
    _spec_missing(raw, frame)
    return fit_plan_from_dict(raw, model_infos(), estimator, level, seed), raw


def prepare_fit(
    plan: Any, raw: dict[str, Any], overrides: Sequence[str], frame: pd.DataFrame, where: str
) -> Prepared:
    """The data set, the estimator and its priors of a planned fit (:func:`plan_fit`).

    The last refusals come here (a model without a table reader, too few or too many rows),
    before anything compiles; ``where`` names the data in messages (the file, or a table).
    """
    from simstudy.config import info_of
    from simstudy.engine.dispatch import kind_of
    from simstudy.fitcheck import named_priors
    from simstudy.models import family_of, model_infos
    from simstudy.spec.scaled import describe

    family = family_of(plan.model)
    if family.from_frame is None or family.columns is None:
        raise InputError("model", plan.model.name, "a model that can read a data table")
    read = family.columns(plan.model.structure)
    info = info_of(plan, model_infos())
    # first: one row is too few before it is constant; a huge set is refused before compiling
    check_data_size(frame, plan, Path(where), info)
    dataset = family.from_frame(frame, plan.model.structure)
    chosen = family.estimators_for(plan.model.structure)[plan.estimator]
    kind = kind_of(chosen)
    per_parameter, from_data, used = {}, set(), None
    if plan.model.kind == "spec" and kind.bayesian:
        given = named_priors(overrides, (raw.get("model") or {}).get("priors") or {})
        plan, per_parameter, from_data = scaled_plan(plan, dataset, given)
        used = {
            name: f"{describe(prior)}"
            + (" (model.priors)" if prior[3] in given else " (the data's scale)")
            for name, prior in per_parameter.items()
        }
    return Prepared(
        plan, raw, frame, read, info, dataset, chosen, kind, per_parameter, from_data, used
    )


def data_notes(prep: Prepared) -> list[str]:
    """What the data's columns suggest: true/false read as 1/0, sentinels, categories."""
    from simstudy.userdata import boolean_columns, categorical_warnings, sentinel_warnings

    frame, read = prep.frame, prep.read
    notes = [
        f"note: column {name} holds true/false, read as 1/0"
        for name in boolean_columns(frame)
        if name in read.numbers
    ]
    notes += [f"warning: {line}" for line in sentinel_warnings(frame, read.numbers)]
    notes += [f"warning: {line}" for line in categorical_warnings(frame, read.continuous)]
    return notes


def run_fit(
    prep: Prepared,
    overrides: Sequence[str],
    where: str,
    notify: Any = lambda text: None,
) -> Fitted:
    """Fit a prepared estimator, printing nothing.

    Its chains are doubled (at most :data:`MAX_LONGER` times) until they converge unless
    ``sampler.draws`` is named; ``notify`` is told of each doubling, in words.
    """
    import jax

    from simstudy.config import AggregateSettings
    from simstudy.engine.dispatch import chain_name, posterior_draws
    from simstudy.engine.replicate import estimator_key, fit_estimator, key_from_seed
    from simstudy.engine.summary import summarise_draws
    from simstudy.fitcheck import prior_conflicts, sign_disagreements

    plan, estimator, frame = prep.plan, prep.estimator, prep.frame
    key = estimator_key(key_from_seed(plan.seed), chain_name(estimator))
    dataset = jax.block_until_ready(prep.dataset)
    draws = None
    try:
        if prep.kind.draws is not None:  # chains kept for checks
            # sampler.draws named: the user's number; else longer chains until converged
            extend = not any(o.split("=", 1)[0].lstrip("+") == "sampler.draws" for o in overrides)
            for longer in range(MAX_LONGER + 1):
                draws, seconds = posterior_draws(
                    estimator, dataset, key, plan.sampler, plan.model.priors
                )
                summaries, n_div = summarise_draws(draws.draws, plan.level), draws.n_divergent
                why = unconverged(summaries, estimator.parameters)
                if not extend or why is None or longer == MAX_LONGER:
                    break
                sampler = dataclasses.replace(plan.sampler, draws=2 * plan.sampler.draws)
                try:
                    longer_plan = dataclasses.replace(plan, sampler=sampler)
                    check_data_size(frame, longer_plan, Path(where), prep.info)
                except InputError:
                    break  # the longer chains would not fit in memory: keep these
                notify(
                    f"note: {why} after {plan.sampler.draws} draws per chain; sampling again "
                    f"with {sampler.draws} (name sampler.draws to keep one length)"
                )
                plan = dataclasses.replace(plan, sampler=sampler)
        else:
            summaries, n_div, seconds = fit_estimator(
                estimator, dataset, key, plan.sampler, plan.model.priors, plan.level
            )
    except ValueError as exc:  # a closed form that cannot be computed on these data
        if not prep.closed_form:
            raise
        raise InputError(
            "data", where, f"data that estimator {plan.estimator} can fit: {exc}"
        ) from None
    table = pd.DataFrame(
        [{"parameter": name, **summaries[name]._asdict()} for name in estimator.parameters]
    ).rename(columns={"estimate": "mean", "se": "sd"})
    if draws is not None:  # Blimp's and Mplus's point estimate, beside the mean
        medians = {k: float(np.median(np.asarray(v))) for k, v in draws.draws.items()}
        table.insert(2, "median", table["parameter"].map(medians))
    table.insert(0, "estimator", plan.estimator)
    table.insert(0, "model", plan.model.name)
    table["n_divergent"] = n_div
    table["seconds"] = seconds
    warnings: list[str] = []
    if not prep.closed_form:
        checks = AggregateSettings()
        warnings += fit_warnings(table, plan.sampler, checks.rhat_max, checks.ess_min)
        warnings += prior_conflicts(table, prep.per_parameter, plan.model.priors)
        if draws is not None:
            warnings += sign_disagreements(draws.draws, estimator.parameters)
    return Fitted(prep, plan, table, draws, seconds, warnings)
