"""``simstudy replay``, ``simulate`` and ``diagnose``: one replication of a stored study again.

Each reads the study's plan from its directory (:mod:`.studydir`) and recomputes what a
replication's seed gives: its fits (compared with the stored rows), its data set as a table,
or the residual diagnostics of the latent interaction model.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from simstudy.cli import EXIT_OK, EXIT_STOPPED
from simstudy.errors import InputError
from simstudy.studydir import pick, study_plan


def cmd_replay(args: argparse.Namespace) -> int:
    """Recompute one replication from a study's manifest and compare it with the stored rows."""
    from simstudy.engine.replicate import run_batch
    from simstudy.store import read_replications

    study_dir = Path(args.results_dir)
    _, plan = study_plan(study_dir)
    conditions = {cid: c for cid, (c, _) in pick(study_dir, plan, args.condition, args.rep).items()}
    save = getattr(args, "save", None)
    simulated = None
    if save is not None:  # refused before any fitting: an unwritable DIR, a model without a table
        from simstudy.config import check_results_dir as check_writable
        from simstudy.engine.replicate import _simulate
        from simstudy.export import keyed_frame

        check_writable(Path(save), "--save")
        simulated = _simulate(plan, conditions[args.condition], args.rep)
        if not isinstance(simulated, list):
            keyed_frame(plan.model, simulated.dataset, simulated.base)
    # run_batch, not run_replication: with sampler.vectorize the replication is fitted in the
    # same compiled program (its lane padded) as in the study, so its numbers are identical.
    fresh = pd.DataFrame(run_batch(plan, conditions[args.condition], [args.rep]))
    stored = read_replications(study_dir)
    if not stored.empty:
        stored = stored[(stored["condition_id"] == args.condition) & (stored["rep"] == args.rep)]
    cols = ["estimator", "parameter", "estimate", "se", "lower", "upper", "status"]
    print(fresh[cols].to_string(index=False))
    code = _compare_replay(fresh, stored)
    if save is not None:
        _save_replay(plan, simulated, fresh, Path(save))
    return code


def _compare_replay(fresh: pd.DataFrame, stored: pd.DataFrame) -> int:
    """Say whether a recomputed replication equals its stored rows (exit 0, else 1)."""
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


def _save_replay(plan: Any, simulated: Any, fresh: pd.DataFrame, directory: Path) -> None:
    """``replay --save``: the replication's data set (Parquet) and posteriors (NetCDF).

    Each MCMC estimator's draws are summarised again and compared with the replayed rows, so
    that the file says whether it holds the draws behind the replication's numbers.
    """
    from simstudy.engine.summary import summarise_draws
    from simstudy.export import inference_data, keyed_frame, replication_draws, write_table

    if isinstance(simulated, list):  # the DGM failed: its rows say why
        print(f"nothing saved: the data set could not be simulated ({simulated[0]['error']})")
        return
    directory.mkdir(parents=True, exist_ok=True)
    base = simulated.base
    stem = f"{base['condition_id']}-rep{base['rep']}"
    frame = keyed_frame(plan.model, simulated.dataset, base)
    write_table(frame, directory / f"{stem}.parquet")
    print(f"data set:  {directory / f'{stem}.parquet'} ({len(frame)} rows)")
    draws = replication_draws(plan, simulated)
    if not draws:
        print("posterior: none written (no estimator of this study draws from a posterior)")
    for name, fit in draws.items():
        attrs = {
            "study": plan.name,
            **{k: base[k] for k in ("condition_id", "rep", "seed")},
            "estimator": name,
            "sampler": plan.sampler_of(name).name,
            "point_estimate": plan.point_estimate,
        }
        path = directory / f"{stem}-{name}.nc"
        inference_data(fit, frame, attrs).to_netcdf(str(path))
        chains, n_draws = next(iter(fit.draws.values())).shape[:2]
        rows = fresh[fresh["estimator"] == name].set_index("parameter")["estimate"]
        summary = summarise_draws(fit.draws, plan.level, plan.point_estimate)
        same = all(
            summary[p].estimate == rows[p]
            or (math.isnan(summary[p].estimate) and math.isnan(rows[p]))
            for p in rows.index
        )
        note = (
            "their summary is the replayed estimates"
            if same
            else "NOTE: their summary differs from the replayed estimates"
        )
        print(
            f"posterior: {path} ({name}: {chains} chains x {n_draws} draws of "
            f"{len(fit.draws)} estimands; {note})"
        )


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write the data sets of a study's replications as CSV or Parquet (Mplus's REPSAVE).

    The data are those the study fitted: each simulated from its replication's seed as in
    the study (:func:`simstudy.engine.replicate._simulate`). Exit 1 when a data set could not
    be simulated (the study recorded that replication as failed too).
    """
    from simstudy.config import check_results_dir as check_writable
    from simstudy.engine.replicate import _simulate
    from simstudy.export import SUFFIXES, keyed_frame, write_table

    study_dir = Path(args.results_dir)
    _, plan = study_plan(study_dir)
    reachable = pick(study_dir, plan, None if args.all else args.condition, args.rep)
    if (
        args.all
        and args.rep is not None
        and not 0 <= args.rep < min(n for _, n in reachable.values())
    ):
        raise InputError(
            "--rep", args.rep, f"an integer in [0, {min(n for _, n in reachable.values())})"
        )
    conditions = {cid: c for cid, (c, _) in reachable.items()}
    out = Path(args.out)
    if out.suffix not in SUFFIXES or out.is_dir():
        raise InputError("--out", args.out, "a file path ending in .csv or .parquet")
    if "*" in out.parent.as_posix() or out.name.count("*") > 1:
        raise InputError("--out", args.out, "a path with at most one '*', in the file name")
    check_writable(out.parent, "--out", shown=str(out))
    chosen = list(conditions) if args.all else [args.condition]
    per_rep = "*" in out.name
    frames, written, failed = [], [], []
    n_sets = 0
    for cid in chosen:
        reps = range(reachable[cid][1]) if args.rep is None else [args.rep]
        n_sets += len(reps)
        for rep in reps:
            simulated = _simulate(plan, conditions[cid], rep)
            if isinstance(simulated, list):  # failed rows, as the study stored them
                failed.append(f"condition {cid} rep {rep}: {simulated[0]['error']}")
                continue
            frame = keyed_frame(plan.model, simulated.dataset, simulated.base)
            if per_rep:
                label = f"{cid}-{rep}" if args.all else str(rep)
                path = out.with_name(out.name.replace("*", label))
                write_table(frame, path)
                written.append((path, len(frame)))
            else:
                frames.append(frame)
    if frames:
        table = pd.concat(frames, ignore_index=True)
        write_table(table, out)
        written.append((out, len(table)))
    n_sets -= len(failed)
    rows = sum(n for _, n in written)
    where = (
        str(written[0][0])
        if len(written) == 1
        else f"{len(written)} files, {written[0][0]} ... {written[-1][0]}"
    )
    if written:
        print(f"{n_sets} data sets of study {plan.name} ({rows} rows): {where}")
    for line in failed:
        print(f"not written (its simulation failed in the study too): {line}")
    return EXIT_STOPPED if failed else EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Residuals from imputed latent scores of one replication of a latent interaction study.

    The model is a spec with a structural product term: its compiled Gibbs chain imputes the
    scores (:func:`simstudy.diagnostics.latent_residuals.imputer_of`).

    Writes RESULTS_DIR/diagnostics/residuals-<condition>-<rep>.png, .pdf and .parquet
    (:mod:`simstudy.diagnostics.latent_residuals`); ``simstudy report`` shows the figures.
    """
    from simstudy.config import check_results_dir as check_writable
    from simstudy.design import condition_id, expand_grid
    from simstudy.diagnostics.latent_residuals import diagnose_replication, imputer_of

    study_dir = Path(args.results_dir)
    _, plan = study_plan(study_dir)
    imputer = imputer_of(plan)
    if isinstance(imputer, str):
        raise InputError("model", plan.model.name, imputer)
    conditions = {condition_id(c): c for c in expand_grid(plan.factors, plan.exclude)}
    if args.condition not in conditions:
        raise InputError("--condition", args.condition, "one of " + ", ".join(conditions))
    if not 0 <= args.rep < plan.reps:
        raise InputError("--rep", args.rep, f"an integer in [0, {plan.reps})")
    sampler = plan.sampler_of(imputer.sampler)
    most = sampler.chains * sampler.draws
    if not 2 <= args.imputations <= most:
        raise InputError(
            "--imputations",
            args.imputations,
            f"an integer in [2, {most}] (at most sampler.chains x sampler.draws states)",
        )
    directory = study_dir / "diagnostics"
    check_writable(directory, "RESULTS_DIR/diagnostics")
    done = diagnose_replication(
        plan, conditions[args.condition], args.rep, args.imputations, directory
    )
    cols = ["model", "formula", "r2", "curvature", "curvature_se"]
    shown = done.diagnostics.models[[*cols, "curvature_lower", "curvature_upper"]]
    print(
        f"residuals of condition {args.condition}, rep {args.rep}, from {args.imputations} "
        f"imputations of the latent scores ({done.seconds:.1f}s, compilation included):"
    )
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(
        "curvature: the coefficient of z^2 (z: standardised predicted value) in the residuals' "
        "regression, pooled by Rubin's rules; far from 0 without the product term and near 0 "
        "with it points to a latent interaction"
    )
    for path in done.paths:
        print(f"written: {path}")
    return EXIT_OK
