"""``simstudy fit``: one estimator of a model fitted to a user's data set.

Every refusal (exit 2) comes before the fit: the arguments, the model (``model=`` is
required), the data (read and checked by :mod:`simstudy.userdata`), the data's size and the
output path. The default output file (``<data>-<estimator>-fit.parquet`` beside the data) is
never replaced: an existing one is refused unless ``out=`` names it, which replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.cli import EXIT_OK, _say
from simstudy.compose import compose_raw, config_dirs
from simstudy.config_search import group_files
from simstudy.errors import InputError

#: The ``KEY=VALUE`` arguments of ``simstudy fit`` that are not config overrides.
FIT_KEYS = ("data", "out", "estimator", "seed", "level", "missing")


def split_arguments(arguments: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``simstudy fit``'s own ``KEY=VALUE`` options, and the config overrides."""
    options, overrides = {}, []
    for item in arguments:
        key, _, value = item.partition("=")
        if key in FIT_KEYS:
            options[key] = value
        else:
            overrides.append(item)
    return options, overrides


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


def output_path(given: str | None, data: Path, estimator: str) -> Path:
    """Where the summary goes: ``out=``, else ``<data>-<estimator>-fit.parquet`` beside it.

    Raises
    ------
    InputError
        When the path is not a .parquet file in an existing, writable directory, or when the
        default path exists (an earlier fit's file is replaced only when ``out=`` names it).
    """
    out = Path(given) if given else data.with_name(f"{data.stem}-{estimator}-fit.parquet")
    if out.suffix != ".parquet":
        raise InputError("out", str(out), "a .parquet path (the summary is written as Parquet)")
    if out.is_dir():
        raise InputError("out", str(out), "a file path, not a directory")
    if not out.parent.is_dir():
        raise InputError(
            "out", str(out), f"a path in an existing directory ({out.parent} does not exist)"
        )
    if not os.access(out.parent, os.W_OK):
        raise InputError("out", str(out), f"a path in a directory you can write ({out.parent})")
    if not given and out.exists():
        raise InputError(
            "out",
            str(out),
            f"a file that does not exist yet: it holds an earlier fit, which is replaced only "
            f"when named: out={out} replaces it, out=OTHER.parquet keeps it",
        )
    return out


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


def _number(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:g}" if numeric else str(value)


def header(
    plan: Any,
    kind: str,
    closed_form: bool,
    used: Mapping[str, str] | None = None,
    replaced: Collection[str] = (),
) -> list[str]:
    """What is fitted, in words: the model, the estimator, its sampler and its priors.

    ``used``: a spec model's prior per parameter in words (with the data's numbers);
    ``replaced``: the ``model.priors`` settings the data's scale replaced (not shown).
    """
    first = f"model {plan.model.name}, estimator {plan.estimator} ({kind}"
    if closed_form:
        return [first + ": no sampler, no priors)"]
    s = plan.sampler
    families = (plan.model.structure or {}).get("prior_families")
    if isinstance(families, Mapping) and "inverse_gamma" not in families.values():
        # settings of no prior in use
        replaced = {*replaced, "var_shape", "var_scale", "latent_var_shape", "latent_var_scale"}
    if not _has_loadings(plan):
        replaced = {*replaced, "loading_mean", "loading_sd"}
    shown = {
        k: v for k, v in (plan.model.priors or {}).items() if _number_like(v) and k not in replaced
    }
    priors = ", ".join(f"{k}={_number(v)}" for k, v in shown.items())
    if isinstance(families, Mapping) and families:
        priors += " (" + ", ".join(f"{k} {v}" for k, v in families.items()) + ")"
    lines = [
        first + ")",
        f"sampler {s.name}: {s.chains} chains, {s.warmup} warmup + {s.draws} draws each, "
        f"seed {plan.seed}",
        f"priors (model.priors.*): {priors or 'none'}",
    ]
    if used is not None:
        lines[-1] = f"priors (model.priors.*; the data's scale where unset): {priors or 'none'}"
        lines += [f"  {name}: {prior}" for name, prior in used.items()]
    return lines


def _has_loadings(plan: Any) -> bool:
    """Whether the plan's model is a spec with a loading (else its loading prior is unused)."""
    from simstudy.spec import info as spec_info

    if plan.model.kind != "spec":
        return False
    return any(p.is_loading for p in spec_info.spec_of(plan.model.structure).parameters())


def _number_like(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


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
    if "coef_means" in extra and _has_loadings(plan) and not named_loading:
        replaced |= {"loading_mean", "loading_sd"}
    model = dataclasses.replace(plan.model, priors=priors)
    return dataclasses.replace(plan, model=model), per, replaced


def priors_record(priors: Mapping[str, Any]) -> dict[str, Any]:
    """The priors as JSON: per-equation settings (sorted pairs) as mappings."""
    return {
        k: {t: list(x) if isinstance(x, tuple) else x for t, x in v} if isinstance(v, tuple) else v
        for k, v in priors.items()
    }


def summary_title(closed_form: bool, level: float) -> str:
    """The name of the printed table: a posterior summary only when it is one."""
    if closed_form:
        return f"closed-form estimates (estimate, standard error, {level:.0%} confidence interval)"
    return f"posterior summary (mean, SD, {level:.0%} interval, ESS, R-hat)"


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


def cmd_fit(arguments: Sequence[str]) -> int:
    """Fit one estimator of a model to a user's data set and write its summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simstudy.store import software_versions
    from simstudy.userdata import missing_codes, read_table

    options, overrides = split_arguments(arguments)
    if "data" not in options:
        raise InputError("data", None, "data=PATH to a .csv or .parquet file")
    path = Path(options["data"])
    if not path.is_file() or path.suffix not in (".csv", ".parquet"):
        raise InputError("data", str(path), "an existing .csv or .parquet file")
    require_model(overrides)
    try:
        seed, level = int(options.get("seed", 0)), float(options.get("level", 0.95))
    except ValueError:
        raise InputError("seed/level", options, "an integer seed and a level in (0, 1)") from None
    codes = missing_codes(options.get("missing"))
    frame = read_table(path, codes)
    plan, raw = plan_fit(overrides, frame, options.get("estimator"), seed, level)
    out = output_path(options.get("out"), path, plan.estimator)
    replaced = out.exists()
    prep = prepare_fit(plan, raw, overrides, frame, str(path))
    plan = prep.plan
    closed_form = prep.closed_form
    for line in header(
        plan, prep.kind.label(prep.estimator), closed_form, prep.used, prep.from_data
    ):
        print(line)
    missing = {c: int(frame[c].isna().sum()) for c in prep.read.names}
    counted = ", ".join(f"{c} {n}" for c, n in missing.items() if n)
    print(f"data: {path}, N = {len(frame)}; missing values per column: {counted or 'none'}")
    for line in data_notes(prep):
        _say(f"[simstudy] {line}")
    fitted = run_fit(prep, overrides, str(path), lambda text: _say(f"[simstudy] {text}"))
    plan, table, seconds = fitted.plan, fitted.table, fitted.seconds
    title = summary_title(closed_form, plan.level)
    record = {
        "model": plan.model.name,
        "structure": plan.model.structure,
        "priors": None if closed_form else priors_record(plan.model.priors),
        "priors_used": prep.used,
        "priors_from_data": sorted(prep.from_data),
        "estimator": plan.estimator,
        "summary": title,
        "sampler": None if closed_form else dataclasses.asdict(plan.sampler),
        "seed": plan.seed,
        "level": plan.level,
        "data": str(path),
        "rows": len(frame),
        "columns": list(prep.read.names),
        "missing_codes": codes,
        "missing_per_column": missing,
        "versions": software_versions(),
    }
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {**(arrow.schema.metadata or {}), b"simstudy.fit": json.dumps(record).encode()}
    pq.write_table(arrow.replace_schema_metadata(meta), out)

    if closed_form:
        shown = table[["parameter", "mean", "sd", "lower", "upper"]]
        shown = shown.rename(columns={"mean": "estimate", "sd": "se"})
    else:
        shown = table[["parameter", "mean", "sd", "lower", "upper", "ess_bulk", "ess_tail", "rhat"]]
        if "median" in table:
            shown.insert(2, "median", table["median"])
    print(f"{title}, {seconds:.1f}s:")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for line in fitted.warnings:
        _say(f"[simstudy] warning: {line}")
    what = "estimates" if closed_form else "posterior summary"
    again = ", replacing the earlier file" if replaced else ""
    print(f"{what}: {out}{again} (settings, seed, versions: its 'simstudy.fit' metadata)")
    return EXIT_OK
