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

from simstudy.cli import EXIT_OK, _say
from simstudy.errors import InputError
from simstudy.fitting import (
    data_notes,
    has_loadings,
    plan_fit,
    prepare_fit,
    require_model,
    run_fit,
)

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


def _number(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:g}" if numeric else str(value)


def _number_like(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


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
    if not has_loadings(plan):
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
