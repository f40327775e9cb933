"""The ``simstudy`` command: the one place that composes config, executor, engine and store.

Exit codes: 0 success; 1 the run finished but some condition was stopped early; 2 bad input
(config, paths, data), reported in one paragraph before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simstudy.errors import InputError

EXIT_OK, EXIT_STOPPED, EXIT_INPUT = 0, 1, 2


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: The config tree chosen with ``--config-dir`` for this invocation (None: not given).
_CONFIG_DIR: Path | None = None

#: The config tree shipped beside the package (the repository's ``conf/``).
PACKAGE_CONF = Path(__file__).resolve().parents[1] / "conf"


def config_dir() -> Path:
    """Where the Hydra config tree lives.

    ``--config-dir``, else ``$SIMSTUDY_CONFIG_DIR``, else the ``conf/`` shipped with simstudy.
    A ``conf/`` in the working directory is never picked up silently: the user names it.
    """
    if _CONFIG_DIR is not None:
        return _CONFIG_DIR
    if os.environ.get("SIMSTUDY_CONFIG_DIR"):
        return Path(os.environ["SIMSTUDY_CONFIG_DIR"]).resolve()
    return PACKAGE_CONF


def _check_group_choices(conf: Path, overrides: Sequence[str]) -> None:
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
        if (conf / group).is_dir() and "." not in group and value:
            options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
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
    """Compose ``conf/config.yaml`` with command-line overrides (Hydra's compose API).

    The working directory is never changed and nothing is written by Hydra.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    conf = config_dir()
    if not (conf / "config.yaml").exists():
        raise InputError("SIMSTUDY_CONFIG_DIR", str(conf), "a directory with config.yaml")
    _check_group_choices(conf, overrides)
    overrides = [quote_text(o) for o in overrides]
    errors = (HydraException, OmegaConfBaseException)
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
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

    from simstudy.config import INTERCHANGEABLE
    from simstudy.models import model_infos
    from simstudy.spec import info as spec_info

    raw = OmegaConf.to_container(compose(overrides), resolve=True)
    if any(o.lstrip("+").startswith("sampler=") for o in overrides):
        return raw
    model = raw.get("model") or {}
    info = (
        spec_info.declared(model)
        if spec_info.is_spec(model)
        else model_infos().get(model.get("name"))
    )
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
    """Compose and validate a study from overrides."""
    from simstudy.config import plan_from_dict
    from simstudy.models import model_infos

    return plan_from_dict(compose_raw(overrides), model_infos())


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


def cmd_run(overrides: Sequence[str]) -> int:
    """Run (or resume) the study the overrides describe."""
    from simstudy.aggregate import ConvergencePolicy, summarise_path
    from simstudy.aggregate.tables import print_summary, write_tables
    from simstudy.config import BATCHED_SAMPLERS, config_hash
    from simstudy.design import padded_lanes
    from simstudy.engine import replicate
    from simstudy.execute.pools import open_pool
    from simstudy.execute.progress import RunProgress
    from simstudy.execute.runner import StopRule, plan_tasks, run_tasks
    from simstudy.models import family_of
    from simstudy.store import (
        Manifest,
        RunLock,
        count_records,
        read_manifest,
        replication_schema,
        software_versions,
        write_manifest,
    )

    plan = load_plan(overrides)
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
    with RunLock(study_dir):
        if plan.fresh:
            for name in ("replications", "summary.parquet", "manifest.json"):
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
        write_manifest(
            study_dir,
            Manifest(plan.name, digest, batch_size, numbers, plan.to_config(), software_versions()),
        )
        tasks, skipped = plan_tasks(study_dir, conditions, plan.reps, batch_size)
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
        started = time.monotonic()
        report = None
        if tasks:
            with open_pool(plan.executor) as pool:
                if pool.dashboard_link:
                    _say(f"[simstudy] Dask dashboard: {pool.dashboard_link}")
                progress = RunProgress(len(tasks), skipped)
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
                        window=plan.executor.window,
                        progress=progress,
                        warm=_compile_tasks(plan, pool),
                    )
                finally:
                    progress.close()
        agg = plan.aggregate
        policy = ConvergencePolicy(agg.policy, agg.rhat_max, agg.ess_min, agg.allow_divergent)
        summary = summarise_path(study_dir, reference=plan.reference, policy=policy)
        summary.to_parquet(study_dir / "summary.parquet", index=False)
        write_tables(summary, list(plan.factors), study_dir / "tables")
    elapsed = time.monotonic() - started
    print_summary(summary, list(plan.factors), title=f"{plan.name}: performance (MCSE)")
    n_records, n_failed = count_records(study_dir)
    print(f"replications: {study_dir / 'replications'}  ({n_records} records, {n_failed} failed)")
    print(f"summary:      {study_dir / 'summary.parquet'}")
    print(f"tables:       {study_dir / 'tables'}/*.md, *.tex")
    if report is not None:
        print(
            f"this run: {report.batches_written} batches written, {skipped} skipped as finished, "
            f"{report.fits} fits ({report.failed_fits} failed) in {elapsed:.1f}s"
        )
        if report.stopped:
            for cid, why in report.stopped.items():
                print(f"condition {cid} stopped early: {why}")
            print(
                f"{report.batches_not_run} batches were not run; "
                "fix the cause and run again to resume."
            )
            return EXIT_STOPPED
    else:
        print("nothing to run: every batch was finished earlier")
    return EXIT_OK


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Summarise replication records into summary.parquet, tables and a printout."""
    from simstudy.aggregate import ConvergencePolicy, summarise_path, summary_factors
    from simstudy.aggregate.tables import print_tables, write_tables
    from simstudy.store import read_manifest

    path = Path(args.input)
    if not path.exists():
        raise InputError("INPUT", str(path), "an existing results directory, .parquet or .csv file")
    if not 0 < args.level < 1:
        raise InputError("--level", args.level, "a number in (0, 1)")
    reference = args.reference
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None and reference is None:
        study = manifest.config["study"]
        reference = manifest.config.get("aggregate", {}).get("reference") or study["estimators"][0]
    policy = ConvergencePolicy(args.policy, args.rhat_max, args.ess_min, args.allow_divergent)
    started = time.monotonic()
    summary = summarise_path(
        path, reference=reference, policy=policy, truth=args.truth, level=args.level
    )
    if args.reference is not None and args.reference not in set(summary["estimator"]):
        known = ", ".join(sorted(set(summary["estimator"])))
        raise InputError("--reference", args.reference, f"an estimator in the records: {known}")
    if path.is_dir():
        out = Path(args.out) if args.out else path / "summary.parquet"
    else:
        out = Path(args.out) if args.out else path.with_name(path.stem + "-summary.parquet")
    tables = (
        Path(args.tables)
        if args.tables
        else out.with_name(out.stem.replace("summary", "tables") or "tables")
    )
    factors = summary_factors(summary)
    summary.to_parquet(out, index=False)
    written = write_tables(summary, factors, tables)
    print_tables(summary, factors)
    print(f"summary: {out}  ({len(summary)} rows, {time.monotonic() - started:.1f}s)")
    print(f"tables:  {tables}/ ({len(written)} files: markdown and LaTeX)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Say how far a study directory has got."""
    from simstudy.design import expand_grid
    from simstudy.execute.runner import plan_tasks

    study_dir = Path(args.results_dir)
    manifest, plan = _study_plan(study_dir)
    conditions = expand_grid(plan.factors, plan.exclude)
    todo, done = plan_tasks(study_dir, conditions, plan.reps, manifest.batch_size)
    total = len(todo) + done
    print(
        f"study {manifest.study} ({study_dir}): {done}/{total} batches finished, {len(todo)} to run"
    )
    return EXIT_OK


def _study_plan(study_dir: Path) -> tuple[Any, Any]:
    from simstudy.config import plan_from_dict
    from simstudy.models import model_infos
    from simstudy.store import read_manifest

    manifest = read_manifest(study_dir)
    if manifest is None:
        raise InputError("RESULTS_DIR", str(study_dir), "a study directory with a manifest.json")
    return manifest, plan_from_dict(manifest.config, model_infos())


def cmd_replay(args: argparse.Namespace) -> int:
    """Recompute one replication from a study's manifest and compare it with the stored rows."""
    from simstudy.design import condition_id, expand_grid
    from simstudy.engine.replicate import run_batch
    from simstudy.store import read_replications

    study_dir = Path(args.results_dir)
    _, plan = _study_plan(study_dir)
    conditions = {condition_id(c): c for c in expand_grid(plan.factors, plan.exclude)}
    if args.condition not in conditions:
        raise InputError("--condition", args.condition, "one of " + ", ".join(conditions))
    if not 0 <= args.rep < plan.reps:
        raise InputError("--rep", args.rep, f"an integer in [0, {plan.reps})")
    # run_batch, not run_replication: with sampler.vectorize the replication is fitted in the
    # same compiled program (its lane padded) as in the study, so its numbers are identical.
    fresh = pd.DataFrame(run_batch(plan, conditions[args.condition], [args.rep]))
    stored = read_replications(study_dir)
    if not stored.empty:
        stored = stored[(stored["condition_id"] == args.condition) & (stored["rep"] == args.rep)]
    cols = ["estimator", "parameter", "estimate", "se", "lower", "upper", "status"]
    print(fresh[cols].to_string(index=False))
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


def cmd_list(topics: Sequence[str]) -> int:
    """Print what exists: models, studies, estimators, samplers, executors, experiments."""
    from simstudy import catalog

    for topic in topics or catalog.TOPICS:
        if topic not in catalog.TOPICS:
            raise InputError("simstudy list", topic, "one of " + ", ".join(catalog.TOPICS))
    conf = config_dir()
    for topic in topics or catalog.TOPICS:
        print(f"{topic} ({conf}):" if topic != "estimators" else "estimators:")
        print(catalog.table(catalog.rows_for(topic, conf)))
        print()
    print("Use them as overrides: simstudy run study=NAME model=NAME sampler=NAME executor=NAME")
    return EXIT_OK


def cmd_show(overrides: Sequence[str]) -> int:
    """Print a study's composed config, its design grid and what running it takes; run nothing."""
    from omegaconf import OmegaConf

    from simstudy import catalog
    from simstudy.config import plan_from_dict
    from simstudy.design import condition_id
    from simstudy.models import model_infos
    from simstudy.store import read_replications

    raw = compose_raw(overrides)
    plan = plan_from_dict(raw, model_infos())
    rows = [{"condition_id": condition_id(c), **c} for c in _conditions(plan)]
    print(f"# composed config ({config_dir()})")
    print(OmegaConf.to_yaml(raw).rstrip())
    print(f"\n# design grid: {len(rows)} conditions")
    print(catalog.table(rows))
    columns = ["condition_id", "rep", "estimator", "status", "seconds"]
    stored = read_replications(plan.study_dir, columns)  # empty before the first run
    per_fit: dict[str, float] = {}
    if not stored.empty:
        ok = stored[stored["status"] == "ok"].drop_duplicates(["condition_id", "rep", "estimator"])
        per_fit = ok.groupby("estimator")["seconds"].mean().to_dict()
    print("\n# cost")
    for line in catalog.cost(plan, len(rows), per_fit):
        print(line)
    print(f"results: {plan.study_dir}")
    return EXIT_OK


_FIT_KEYS = ("data", "out", "estimator", "seed", "level", "missing")


def missing_codes(text: str | None) -> list[Any]:
    """``missing=[-999, "."]`` (YAML): the values that mean 'missing' in a user's table."""
    import yaml

    if text is None:
        return []
    try:
        codes = yaml.safe_load(text)
    except yaml.YAMLError:
        codes = None
    codes = codes if isinstance(codes, list) else [codes]
    if not codes or any(isinstance(c, bool) or not isinstance(c, (int, float, str)) for c in codes):
        raise InputError("missing", text, 'a code or a list of codes, e.g. missing=[-999, "."]')
    return codes


def read_table(path: Path, codes: Sequence[Any]) -> pd.DataFrame:
    """A user's .csv or .parquet table with its missing-value codes read as NaN."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path, na_values=[str(c) for c in codes])
    else:
        frame = pd.read_parquet(path)
    if codes:
        frame = frame.replace(list(codes), np.nan)
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        for col in text:  # a column with "." was read as text: numbers now
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted
    return frame


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


def cmd_fit(arguments: Sequence[str]) -> int:
    """Fit one estimator of a model to a user's data set and write its posterior summary."""
    import json

    import jax
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simstudy.config import AggregateSettings, fit_plan_from_dict
    from simstudy.engine.replicate import chain_name, estimator_key, fit_estimator, key_from_seed
    from simstudy.models import family_of, model_infos
    from simstudy.spec import info as spec_info
    from simstudy.store import software_versions

    options, overrides = {}, []
    for item in arguments:
        key, _, value = item.partition("=")
        if key in _FIT_KEYS:
            options[key] = value
        else:
            overrides.append(item)
    if "data" not in options:
        raise InputError("data", None, "data=PATH to a .csv or .parquet file")
    path = Path(options["data"])
    if not path.is_file() or path.suffix not in (".csv", ".parquet"):
        raise InputError("data", str(path), "an existing .csv or .parquet file")
    try:
        seed, level = int(options.get("seed", 0)), float(options.get("level", 0.95))
    except ValueError:
        raise InputError("seed/level", options, "an integer seed and a level in (0, 1)") from None
    codes = missing_codes(options.get("missing"))
    raw = compose_raw(overrides)
    model = raw.get("model") or {}
    info = (
        spec_info.declared(model)
        if spec_info.is_spec(model)
        else model_infos().get(model.get("name"))
    )
    if info is not None:
        raw = compose_raw(overrides, [options.get("estimator") or info.estimators[0]])
    frame = read_table(path, codes)
    _spec_missing(raw, frame)
    plan = fit_plan_from_dict(raw, model_infos(), options.get("estimator"), level, seed)
    family = family_of(plan.model)
    if family.from_frame is None:
        raise InputError("model", plan.model.name, "a model that can read a data table")
    dataset = family.from_frame(frame, plan.model.structure)
    estimator = family.estimators_for(plan.model.structure)[plan.estimator]
    key = estimator_key(key_from_seed(plan.seed), chain_name(estimator))
    summaries, n_div, seconds = fit_estimator(
        estimator, jax.block_until_ready(dataset), key, plan.sampler, plan.model.priors, plan.level
    )
    table = pd.DataFrame(
        [{"parameter": name, **summaries[name]._asdict()} for name in estimator.parameters]
    ).rename(columns={"estimate": "mean", "se": "sd"})
    table.insert(0, "estimator", plan.estimator)
    table.insert(0, "model", plan.model.name)
    table["n_divergent"] = n_div
    table["seconds"] = seconds
    missing = {str(c): int(n) for c, n in frame.isna().sum().items()}
    record = {
        "model": plan.model.name,
        "structure": plan.model.structure,
        "priors": plan.model.priors,
        "estimator": plan.estimator,
        "sampler": dataclasses.asdict(plan.sampler),
        "seed": plan.seed,
        "level": plan.level,
        "data": str(path),
        "rows": len(frame),
        "missing_codes": codes,
        "missing_per_column": missing,
        "versions": software_versions(),
    }
    out = Path(options.get("out") or path.with_name(f"{path.stem}-{plan.estimator}-fit.parquet"))
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {**(arrow.schema.metadata or {}), b"simstudy.fit": json.dumps(record).encode()}
    pq.write_table(arrow.replace_schema_metadata(meta), out)
    shown = table[["parameter", "mean", "sd", "lower", "upper", "ess_bulk", "ess_tail", "rhat"]]
    print(f"{plan.model.name} / {plan.estimator} on {path} (N = {len(frame)}), {seconds:.1f}s:")
    counted = ", ".join(f"{c} {n}" for c, n in missing.items() if n)
    print(f"missing values per column: {counted or 'none'}")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    checks = AggregateSettings()
    for line in fit_warnings(table, plan.sampler, checks.rhat_max, checks.ess_min):
        _say(f"[simstudy] warning: {line}")
    print(f"posterior summary: {out} (settings, seed, versions: its 'simstudy.fit' metadata)")
    return EXIT_OK


_EPILOG = """\
examples:
  simstudy run                                 the default study on a local Dask cluster
  simstudy run study=latent_interaction study.reps=50
  simstudy run +experiment=smoke executor=synchronous
  simstudy list studies                        what can be run
  simstudy show study=cfa_ordinal              config, conditions and cost, without running
  simstudy aggregate results/missing_x --reference ols_cc
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
        help="your own config tree (a copy of simstudy's conf/ with config.yaml); default: "
        "$SIMSTUDY_CONFIG_DIR, else the configs shipped with simstudy",
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
    agg.add_argument("--out", default=None, help="summary Parquet (default beside the input)")
    agg.add_argument("--tables", default=None, help="directory for markdown/LaTeX tables")
    fit = sub.add_parser(
        "fit",
        help="fit a model's estimator to your own data set",
        description="Fit one estimator to a CSV/Parquet data set and write its posterior "
        "summary: simstudy fit model=NAME data=PATH [estimator=NAME] [out=PATH].",
    )
    fit.add_argument(
        "arguments",
        nargs="*",
        help="data=PATH, out=PATH, estimator=, seed=, level=, Hydra overrides",
    )
    status = sub.add_parser("status", help="how far a study directory has got")
    status.add_argument("results_dir")
    replay = sub.add_parser(
        "replay", help="recompute one replication and compare it with the stored one"
    )
    replay.add_argument("results_dir")
    replay.add_argument("--condition", required=True, help="condition_id")
    replay.add_argument("--rep", required=True, type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simstudy`` console script."""
    global _CONFIG_DIR
    args = build_parser().parse_args(argv)
    try:
        if args.config_dir is not None:
            _CONFIG_DIR = Path(args.config_dir).resolve()
            if not (_CONFIG_DIR / "config.yaml").is_file():
                raise InputError("--config-dir", args.config_dir, "a directory with config.yaml")
        elif (Path.cwd() / "conf" / "config.yaml").is_file() and not os.environ.get(
            "SIMSTUDY_CONFIG_DIR"
        ):
            if (Path.cwd() / "conf").resolve() != PACKAGE_CONF:
                _say(f"[simstudy] using {PACKAGE_CONF}; pass --config-dir conf to use ./conf")
        return _dispatch(args)
    except InputError as exc:
        _say(f"simstudy: error: {exc}")
        return EXIT_INPUT
    finally:
        _CONFIG_DIR = None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args.overrides)
    if args.command == "show":
        return cmd_show(args.overrides)
    if args.command == "list":
        return cmd_list(args.topics)
    if args.command == "aggregate":
        return cmd_aggregate(args)
    if args.command == "replay":
        return cmd_replay(args)
    if args.command == "fit":
        return cmd_fit(args.arguments)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
