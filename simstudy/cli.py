"""The ``simstudy`` command: the one place that composes config, executor, engine and store.

Exit codes: 0 success; 1 the run finished but some condition was stopped early; 2 bad input
(config, paths, data), reported in one paragraph before any work starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simstudy.compose import compose_raw, config_dirs, load_plan
from simstudy.config_search import PACKAGE_CONF, checked_dir, giving
from simstudy.errors import InputError
from simstudy.runstudy import conditions_of

EXIT_OK, EXIT_STOPPED, EXIT_INPUT = 0, 1, 2


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption so that the run cleans up (lock, cluster)."""

    reason = "terminated (SIGTERM)"


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def cmd_run(overrides: Sequence[str]) -> int:
    """Run (or resume) the study the overrides describe (:func:`simstudy.runstudy.run_study`)."""
    import signal

    from simstudy.execute.progress import RunProgress
    from simstudy.runstudy import run_study

    plan = load_plan(overrides)
    try:
        previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous_sigterm = None
    try:
        outcome = run_study(
            plan, _say, lambda tasks, skipped, workers: RunProgress(tasks, skipped, workers=workers)
        )
    except KeyboardInterrupt as exc:
        import logging

        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        what = getattr(exc, "reason", "interrupted")
        _say(
            f"\n[simstudy] {what}: every finished batch is kept in "
            f"{plan.study_dir / 'replications'}; run the same command again to resume"
        )
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return _say_outcome(outcome)


def _say_outcome(outcome: Any) -> int:
    """Print what a run did (tables, files, failures) and return its exit code."""
    from simstudy.aggregate.terminal import print_summary
    from simstudy.store import count_records

    plan, study_dir, summary, report = (
        outcome.plan,
        outcome.study_dir,
        outcome.summary,
        outcome.report,
    )
    skipped, design_ids, layout = outcome.skipped, outcome.design_ids, outcome.layout
    n_records, n_failed = count_records(study_dir)
    if summary is not None:
        title = f"{plan.name}: performance (MCSE)"
        print_summary(summary, list(plan.factors), title, layout)
        print(
            f"replications: {study_dir / 'replications'}  ({n_records} records, {n_failed} failed)"
        )
        print(f"summary:      {study_dir / 'summary.parquet'}")
        print(f"tables:       {study_dir / 'tables'}/*.md, *.tex")
    else:
        print("no replications are stored yet: nothing to summarise")
    if report is None:
        print("nothing to run: every batch was finished earlier")
        failing = _say_failures(plan, study_dir, design_ids)
        return EXIT_STOPPED if outcome.skipped_conditions or failing else EXIT_OK
    print(
        f"this run: {report.batches_written} batches written, {skipped} skipped as finished, "
        f"{report.fits} fits ({report.failed_fits} failed) in {outcome.seconds:.1f}s"
    )
    if report.timed_out:
        print(
            f"{report.timed_out} batches ran past executor.fit_timeout="
            f"{plan.executor.fit_timeout:g} s per replication: their fits are recorded as "
            "failed, with the reason"
        )
    for cid, why in report.reached.items():
        print(f"condition {cid}: enough replications, {why}")
    if report.batches_not_needed:
        print(f"{report.batches_not_needed} batches not needed: conditions reached the target")
    for cid, why in report.stopped.items():
        print(f"condition {cid} stopped early: {why}")
    for why in report.lost.values():
        print(f"batch not computed (lost to the machine, not a model failure): {why}")
    if report.no_workers:
        from simstudy.execute.watchdog import batches_left

        print(
            f"run stopped: {report.no_workers}; {len(report.left)} batches left "
            f"({batches_left(report.left)}); finished batches are kept: run the same command "
            "again to resume"
        )
    failing = _say_failures(plan, study_dir, design_ids)
    if report.stopped or report.lost:
        print(
            f"{report.batches_not_run + len(report.lost)} batches were not run; "
            + ("fix the cause and run again with retry_stopped=true; " if report.stopped else "")
            + ("run the same command again to compute the lost batches" if report.lost else "")
        )
        return EXIT_STOPPED
    return EXIT_STOPPED if failing or report.no_workers else EXIT_OK


def _say_failures(plan: Any, study_dir: Path, design_ids: set[str]) -> list[str]:
    """Print the failed fits per estimator and the conditions that fail the run; return them.

    Whatever ``study.min_reps_for_stop`` is, a condition with no successful fit of an
    estimator, or more failed fits than ``study.max_failure_rate``, makes the run exit 1.
    """
    from simstudy.aggregate.failures import failure_report
    from simstudy.store import fit_failures

    failures = fit_failures(study_dir, design_ids, plan.reps)
    lines, failing = failure_report(failures, plan.max_failure_rate)
    if lines:
        print("failed fits (the records say why, column error): " + "; ".join(lines))
    for line in failing:
        print(f"FAILED {line}")
    return failing


def cmd_list(topics: Sequence[str]) -> int:
    """Print what exists: models, studies, estimators, samplers, executors, experiments."""
    from simstudy import catalog

    for topic in topics or catalog.TOPICS:
        if topic not in catalog.TOPICS:
            raise InputError("simstudy list", topic, "one of " + ", ".join(catalog.TOPICS))
    dirs = config_dirs()
    where = ", then ".join(str(d) for d in dirs)
    for topic in topics or catalog.TOPICS:
        print(f"{topic} ({where}):" if topic != "estimators" else "estimators:")
        print(catalog.table(catalog.rows_for(topic, dirs)))
        print()
    print("Use them as overrides: simstudy run study=NAME model=NAME sampler=NAME executor=NAME")
    return EXIT_OK


def cmd_check(estimator: str, overrides: Sequence[str]) -> int:
    """Print an estimator's fits to two simulated data sets and what is wrong with them."""
    from simstudy.checkcmd import check_estimator

    if not estimator.isidentifier():
        raise InputError("estimator", estimator, "an estimator name (letters, digits, _)")
    plan = load_plan([*overrides, f"study.estimators=[{estimator}]"])
    table, problems = check_estimator(plan, estimator)
    if not table.empty:
        print(table.to_string(index=False))
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{estimator}: " + ("passes" if not problems else f"{len(problems)} problem(s)"))
    return EXIT_OK if not problems else 1


def cmd_show(overrides: Sequence[str], pilot: int | None = None) -> int:
    """Print a study's composed config, its design grid and what running it takes.

    Its time comes from a pilot of ``pilot`` replications per condition, run in a temporary
    directory (:mod:`simstudy.estimate_time`), else from the study's stored fits; nothing else
    is run.
    """
    from omegaconf import OmegaConf

    from simstudy import catalog
    from simstudy.config import check_runnable, plan_from_dict
    from simstudy.design import condition_id
    from simstudy.estimate_time import check_pilot, time_lines
    from simstudy.models import model_infos

    check_pilot(pilot)
    raw = compose_raw(overrides)
    plan = plan_from_dict(raw, model_infos())
    check_runnable(plan, model_infos())
    conditions = conditions_of(plan)
    rows = [{"condition_id": condition_id(c), **c} for c in conditions]
    print(f"# composed config ({', then '.join(str(d) for d in config_dirs())})")
    print(OmegaConf.to_yaml(raw).rstrip())
    print(f"\n# design grid: {len(rows)} conditions")
    print(catalog.table(rows))
    print("\n# cost")
    for line in catalog.cost(plan, len(rows)):
        print(line)
    print("\n# time")
    sys.stdout.flush()
    for line in time_lines(plan, conditions, pilot):
        print(line)
    print(f"results: {plan.study_dir}")
    return EXIT_OK


def cmd_fit(arguments: Sequence[str]) -> int:
    """``simstudy fit``: see :mod:`simstudy.fitcmd`."""
    from simstudy.fitcmd import cmd_fit as fit

    return fit(arguments)


_EPILOG = """\
examples:
  simstudy run                                 the default study on a local Dask cluster
  simstudy run study=latent_interaction study.reps=50
  simstudy run +experiment=smoke executor=synchronous
  simstudy list studies                        what can be run
  simstudy show study=cfa_ordinal              config, conditions and cost, without running
  simstudy aggregate results/missing_x --reference ols_cc
  simstudy report results/missing_x            report.html, report.md and figures/
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
        help="a directory of your own configs (e.g. just study/my_study.yaml and "
        "model/my_model.yaml, or a full copy of conf/), searched before the configs shipped "
        "with simstudy: yours win where both have a file of the same name; default: "
        "$SIMSTUDY_CONFIG_DIR, else only the configs shipped with simstudy",
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
    show.add_argument(
        "--pilot",
        type=int,
        default=None,
        metavar="K",
        help="time the run from a pilot: K replications of each condition, on the configured "
        "executor, in a temporary directory (the study's results are not touched); prints "
        "compilation and fitting apart",
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
    agg.add_argument(
        "--out", default=None, help="summary .parquet or .csv (default Parquet beside the input)"
    )
    agg.add_argument("--tables", default=None, help="directory for the tables")
    agg.add_argument(
        "--format", default=None, help="table formats, comma-separated: md, tex, csv (md,tex)"
    )
    agg.add_argument(
        "--by",
        default=None,
        help="design-factor columns of a .csv/.parquet, comma-separated (others are ignored)",
    )
    agg.add_argument(
        "--dedupe",
        action="store_true",
        help="keep the first of repeated (condition, rep, estimator, parameter) rows (default: "
        "refuse them)",
    )
    agg.add_argument("--estimators", default=None, help="tables: these estimators, in this order")
    agg.add_argument("--parameters", default=None, help="tables: these estimands, in this order")
    agg.add_argument("--measures", default=None, help="tables: only these measures' columns")
    fit = sub.add_parser(
        "fit",
        help="fit a model's estimator to your own data set",
        description="Fit one estimator of a model to a CSV/Parquet data set and write its "
        "summary (a posterior summary, or a closed form's estimates): simstudy fit "
        "model=NAME data=PATH [estimator=NAME] [out=PATH.parquet] [missing=-999]. model= is "
        "required. The default output, DATA-ESTIMATOR-fit.parquet beside the data, is never "
        "replaced: out= naming an existing file replaces it.",
    )
    fit.add_argument(
        "arguments",
        nargs="*",
        help="model=NAME, data=PATH, out=PATH, estimator=, seed=, level=, missing=CODES, "
        "Hydra overrides",
    )
    check = sub.add_parser(
        "check",
        help="whether an estimator (your own too) keeps the contract, on two simulated data sets",
        description="Simulate the study's first condition twice (replications 0 and 1) and fit "
        "ESTIMATOR to each, the first twice: it passes when every fit returns its declared "
        "estimands with finite estimates and standard errors, the same numbers for the same "
        "data and key and other numbers for other data. Exit 0 when it passes, 1 when not.",
    )
    check.add_argument("estimator", help="an estimator of the study's model (model.estimators)")
    check.add_argument("overrides", nargs="*", help="config overrides, e.g. study=NAME")
    status = sub.add_parser("status", help="how far a study directory has got")
    status.add_argument("results_dir")
    replay = sub.add_parser(
        "replay", help="recompute one replication and compare it with the stored one"
    )
    replay.add_argument("results_dir")
    replay.add_argument("--condition", required=True, help="condition_id")
    replay.add_argument("--rep", required=True, type=int)
    replay.add_argument(
        "--save",
        default=None,
        metavar="DIR",
        help="also write the replication's data set (DIR/<condition>-rep<R>.parquet) and the "
        "posterior draws of each MCMC estimator as ArviZ InferenceData "
        "(DIR/<condition>-rep<R>-<estimator>.nc)",
    )
    simulate = sub.add_parser(
        "simulate",
        help="write a study's simulated data sets as CSV or Parquet (as Mplus REPSAVE)",
        description="Write the data sets a study's replications fitted (the same seeds, the "
        "same numbers) as a table: columns condition_id, rep, seed and the model's variables "
        "(empty where missing), the columns `simstudy fit` reads. A '*' in --out writes one "
        "file per replication, '*' replaced by the rep (by <condition>-<rep> with --all).",
    )
    simulate.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    which = simulate.add_mutually_exclusive_group(required=True)
    which.add_argument("--condition", default=None, help="condition_id (simstudy show lists them)")
    which.add_argument("--all", action="store_true", help="every condition of the study")
    simulate.add_argument(
        "--rep", type=int, default=None, help="one replication (default: all of the study's reps)"
    )
    simulate.add_argument(
        "--out", required=True, metavar="FILE", help="a .csv or .parquet path; '*': one per rep"
    )
    diagnose = sub.add_parser(
        "diagnose",
        help="residuals of the latent interaction model from imputed latent scores",
        description="For one replication of a latent interaction study (a model in the "
        "syntax with a structural product term, y ~ x + m + x:m): draw M imputations of the "
        "latent scores from the posterior of its compiled Gibbs chain (the states "
        "fs_imputation analyses; the study's seed and sampler settings), fit y's regression by OLS "
        "to each, without and with the product term, and plot residuals against predicted "
        "values averaged over the imputations, with binned means and a curvature statistic "
        "(Rubin-pooled z^2 coefficient). Writes "
        "RESULTS_DIR/diagnostics/residuals-<condition>-<rep>.png, .pdf and .parquet; "
        "simstudy report shows the figures.",
    )
    diagnose.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    diagnose.add_argument(
        "--condition", required=True, help="condition_id (simstudy show lists them)"
    )
    diagnose.add_argument("--rep", required=True, type=int, help="the replication")
    diagnose.add_argument(
        "--imputations",
        type=int,
        default=20,
        metavar="M",
        help="imputations of the latent scores (default 20, fs_imputation's M)",
    )
    report = sub.add_parser(
        "report",
        help="write report.html and report.md of a study directory",
        description="Write RESULTS_DIR/report.html (one self-contained file: ADEMP summary, "
        "figures, performance tables with MCSEs, convergence overview), report.md and "
        "figures/*.png, *.pdf, from summary.parquet, manifest.json and the replications.",
    )
    report.add_argument("results_dir", metavar="RESULTS_DIR", help="study directory")
    report.add_argument(
        "--max-rows", type=int, default=200, help="rows a table shows (default 200)"
    )
    report.add_argument(
        "--max-panels", type=int, default=12, help="panels a figure holds (default 12)"
    )
    report.add_argument(
        "--zip-reps", type=int, default=100, help="intervals a zip-plot panel draws (default 100)"
    )
    report.add_argument(
        "--zip-panels",
        type=int,
        default=16,
        help="zip-plot panels (coverage figures furthest from nominal first; default 16)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simstudy`` console script."""
    args = build_parser().parse_args(argv)
    try:
        tree = None
        if args.config_dir is not None:
            tree = checked_dir("--config-dir", args.config_dir)
        elif (Path.cwd() / "conf" / "config.yaml").is_file() and not os.environ.get(
            "SIMSTUDY_CONFIG_DIR"
        ):
            if (Path.cwd() / "conf").resolve() != PACKAGE_CONF:
                _say(f"[simstudy] using {PACKAGE_CONF}; pass --config-dir conf to use ./conf")
        with giving(tree):
            return _dispatch(args)
    except InputError as exc:
        _say(f"simstudy: error: {exc}")
        return EXIT_INPUT


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        # each rank of `srun -n K simstudy run ... executor=slurm_runner` takes its part there
        from simstudy.execute.clusters import run_in_allocation

        return run_in_allocation(args.overrides, cmd_run, compose_raw)
    if args.command == "show":
        return cmd_show(args.overrides, args.pilot)
    if args.command == "list":
        return cmd_list(args.topics)
    if args.command in ("aggregate", "report", "status"):
        from simstudy import resultscmd

        return getattr(resultscmd, f"cmd_{args.command}")(args)
    if args.command in ("replay", "simulate", "diagnose"):
        from simstudy import replaycmd

        return getattr(replaycmd, f"cmd_{args.command}")(args)
    if args.command == "fit":
        return cmd_fit(args.arguments)
    if args.command == "check":
        return cmd_check(args.estimator, args.overrides)
    raise AssertionError(f"no command {args.command}")  # argparse allows only the above


if __name__ == "__main__":
    sys.exit(main())
