"""``simstudy aggregate``, ``report`` and ``status``: what is stored, summarised and shown.

They read results (a study directory, or a table of replications in the schema) and write
the summary, its tables and the report; none of them fits anything.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

from simstudy.cli import EXIT_OK
from simstudy.errors import InputError
from simstudy.runstudy import conditions_of, design_of
from simstudy.studydir import beyond_design, study_plan


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Summarise replication records into summary.parquet, tables and a printout."""
    from simstudy.aggregate import ConvergencePolicy, summarise_path, summary_factors
    from simstudy.aggregate.tables import FORMATS, Layout, write_tables
    from simstudy.aggregate.terminal import print_notes, print_tables
    from simstudy.config import check_results_dir as check_writable
    from simstudy.store import read_manifest

    path = Path(args.input)
    if not path.exists():
        raise InputError("INPUT", str(path), "an existing results directory, .parquet or .csv file")
    if path.is_file() and path.suffix not in (".csv", ".parquet"):
        raise InputError("INPUT", str(path), "a results directory, .parquet or .csv file")
    if not 0 < args.level < 1:
        raise InputError("--level", args.level, "a number in (0, 1)")
    if args.policy not in ("all", "converged"):
        raise InputError("--policy", args.policy, "all or converged")
    if not 1 <= args.rhat_max < math.inf:
        raise InputError("--rhat-max", args.rhat_max, "a number >= 1")
    if not 0 <= args.ess_min < math.inf:
        raise InputError("--ess-min", args.ess_min, "a number >= 0")
    if args.truth is not None and not math.isfinite(args.truth):
        raise InputError("--truth", args.truth, "a finite number")
    if path.is_dir():
        out = Path(args.out) if args.out else path / "summary.parquet"
    else:
        out = Path(args.out) if args.out else path.with_name(path.stem + "-summary.parquet")
    tables = (
        Path(args.tables)
        if args.tables
        else out.with_name(
            out.stem.replace("summary", "tables") if "summary" in out.stem else out.stem + "-tables"
        )
    )
    if out.suffix not in (".parquet", ".csv") or out.is_dir():
        raise InputError("--out", str(out), "a path for a .parquet or .csv file")
    formats = _names("--format", args.format, FORMATS) or ["md", "tex"]
    check_writable(out.parent, "--out", shown=str(out))
    check_writable(tables, "--tables")
    reference = args.reference
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None and reference is None:
        study = manifest.config["study"]
        reference = manifest.config.get("aggregate", {}).get("reference") or study["estimators"][0]
    design, levels, order = None, None, None
    if manifest is not None:  # the study's current design, not all that lies in the directory
        _, plan = study_plan(path)
        design = design_of(plan)
        levels, order = dict(plan.factors), list(plan.estimators)
    if args.by is not None and path.is_dir():
        raise InputError(
            "--by", args.by, "only for a .csv/.parquet file (a study knows its factors)"
        )
    by = _names("--by", args.by) or None
    policy = ConvergencePolicy(args.policy, args.rhat_max, args.ess_min, args.allow_divergent)
    started = time.monotonic()
    summary = summarise_path(
        path,
        reference=reference,
        policy=policy,
        truth=args.truth,
        level=args.level,
        design=design,
        by=by,
        dedupe=args.dedupe,
    )
    if summary.attrs.get("duplicates_dropped"):
        print(
            f"--dedupe: dropped {summary.attrs['duplicates_dropped']} repeated rows (the first "
            "row of each condition, rep, estimator and parameter is kept)"
        )
    if args.reference is not None and args.reference not in set(summary["estimator"]):
        known = ", ".join(sorted(set(summary["estimator"])))
        raise InputError("--reference", args.reference, f"an estimator in the records: {known}")
    factors = summary_factors(summary)
    layout = Layout(
        levels=levels,
        estimators=_names("--estimators", args.estimators, sorted(set(summary["estimator"])))
        or order,
        parameters=_names("--parameters", args.parameters, sorted(set(summary["parameter"])))
        or None,
        measures=_names("--measures", args.measures, sorted(set(summary["measure"]))) or None,
    )
    if out.suffix == ".csv":
        summary.to_csv(out, index=False)
    else:
        summary.to_parquet(out, index=False)
    written = write_tables(summary, factors, tables, layout, formats)
    print_tables(summary, factors, layout=layout)
    print_notes(summary, factors)
    print(f"summary: {out}  ({len(summary)} rows, {time.monotonic() - started:.1f}s)")
    print(f"tables:  {tables}/ ({len(written)} files: {', '.join(formats)})")
    return EXIT_OK


def _names(option: str, text: str | None, allowed: Sequence[str] | None = None) -> list[str]:
    """A comma-separated option as a list (empty when not given), each name checked."""
    if text is None:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(option, text, "one or more comma-separated names")
    for name in names:
        if allowed is not None and name not in allowed:
            raise InputError(option, name, "one of " + ", ".join(allowed))
    return names


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html (self-contained) and report.md beside a study's summary.parquet."""
    from simstudy.report import Limits, write_report

    names = ("max_rows", "max_panels", "zip_reps", "zip_panels")
    for name in names:
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}", getattr(args, name), "a number >= 1")
    limits = Limits(**{name: getattr(args, name) for name in names})
    paths = write_report(Path(args.results_dir), limits)
    print(f"report:  {paths.html}")
    print(f"         {paths.markdown}")
    print(f"figures: {paths.html.parent / 'figures'}/ ({len(paths.figures)} files: PNG and PDF)")
    print(f"written in {paths.seconds:.1f}s")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Say how far a study directory has got, and which files a run would recompute."""
    from simstudy.execute.runner import plan_tasks
    from simstudy.store import read_stopped

    study_dir = Path(args.results_dir)
    manifest, plan = study_plan(study_dir)
    stopped = read_stopped(study_dir)
    todo = plan_tasks(
        study_dir, conditions_of(plan), plan.reps, manifest.batch_size, manifest.config_hash
    )
    total = len(todo.todo) + todo.done
    print(
        f"study {manifest.study} ({study_dir}): {todo.done}/{total} batches finished, "
        f"{len(todo.todo)} to run"
    )
    for path, why in todo.unusable.items():
        print(f"  to recompute: {path}: {why}")
    beyond = beyond_design(study_dir, plan)
    if beyond:
        print(
            f"  kept beyond the current design (not summarised; replay and simulate reach "
            f"them): {'; '.join(beyond)}"
        )
    for cid, entry in stopped.items():
        print(
            f"  condition {cid} stopped early after {entry.get('reps_run', '?')} reps: "
            f"{entry.get('reason', '')}"
        )
    if manifest.runs:
        last = manifest.runs[-1]
        print(f"  last run: {last.get('started')} on {last.get('host')}, {last.get('status')}")
    return EXIT_OK
