"""The issue's speed target, measured as a user meets it: a latent interaction study, end to end.

``simstudy run study=latent_interaction`` with only the ``bayes`` estimator at N = 500 (the
seeds' design, no missing data), ``--reps`` replications, on the default executor (a local Dask
cluster, one single-threaded worker per core), for each Gibbs setting in ``--settings``
(``chains:warmup:draws``). The wall time of the whole command (cluster start,
simulation, compilation in each worker, sampling, summaries, Parquet writes) divided by the
replications is the amortized time per replication; the replication records give, per
replication, the minimum bulk ESS and the maximum R-hat over all of ``bayes``'s estimands
(loadings, indicator intercepts and variances included), hence the share that reaches
ESS >= 400 with R-hat <= 1.01. The model is the spec config ``conf/model/latent_interaction.yaml``
(its compiled Gibbs sweep).

The JAX compilation cache starts empty (``--warm-cache`` keeps the user's), so each worker
compiles its program as a fresh machine would.

Usage::

    .venv/bin/python benchmarks/gibbs_target.py [--reps 256] [--settings 2:500:4000 4:300:2000]
        [--vectorize 16] [--name gibbs_target]

Writes ``benchmarks/results/<name>.{parquet,md}`` (one row per replication and setting;
``--name`` keeps a rerun beside an earlier run).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.store import read_replications

OUT = Path(__file__).parent / "results"
ROOT = Path(__file__).parents[1]
ESS_MIN, RHAT_MAX = 400.0, 1.01


def run_setting(
    chains: int, warmup: int, draws: int, args: argparse.Namespace, where: Path
) -> pd.DataFrame:
    """Run the study once with ``chains`` × (``warmup`` + ``draws``); one row per replication."""
    overrides = [
        "study=latent_interaction",
        f"study.reps={args.reps}",
        "study.estimators=[bayes]",
        "study.factors.N=[500]",
        f"sampler.chains={chains}",
        f"sampler.warmup={warmup}",
        f"sampler.draws={draws}",
        f"sampler.vectorize={args.vectorize}",
        f"executor.batch_size={args.vectorize}",
        f"results_dir={where}",
        "executor.dashboard=false",
    ]
    env = dict(os.environ)
    if not args.warm_cache:
        env["SIMSTUDY_JAX_CACHE"] = str(where / "jax-cache")
    cmd = [str(ROOT / ".venv/bin/simstudy"), "run", *overrides]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    records = read_replications(where / "latent_interaction")
    per_rep = records.groupby("rep").agg(
        min_ess_bulk=("ess_bulk", "min"),
        max_rhat=("rhat", "max"),
        status=("status", lambda s: "ok" if (s == "ok").all() else ",".join(sorted(set(s)))),
        fit_seconds=("seconds", "first"),
    )
    worst = records.loc[records.groupby("rep")["ess_bulk"].idxmin(), ["rep", "parameter"]]
    per_rep = per_rep.join(worst.set_index("rep").rename(columns={"parameter": "min_ess_param"}))
    per_rep = per_rep.reset_index()
    per_rep["chains"], per_rep["warmup"], per_rep["draws"] = chains, warmup, draws
    per_rep["wall_seconds"] = wall
    per_rep["command"] = shlex.join(["simstudy", "run", *overrides[:-2]])
    per_rep["converged"] = (
        (per_rep["status"] == "ok")
        & (per_rep["min_ess_bulk"] >= ESS_MIN)
        & (per_rep["max_rhat"] <= RHAT_MAX)
    )
    return per_rep


def table(frame: pd.DataFrame, command: str, cores: int, warm_cache: bool) -> str:
    """The markdown page."""
    lines = [
        "# Latent interaction Gibbs fits against the issue's target, end to end",
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, {cores} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Each row is one `simstudy run` of the latent interaction study (N = 500, no missing",
        "data, estimator `bayes` only, default local Dask cluster: one single-threaded",
        "worker per core), with "
        + (
            "the user's JAX compilation cache (warm where an earlier run compiled the program)."
            if warm_cache
            else "a cold JAX compilation cache."
        )
        + " The model is the spec config `conf/model/latent_interaction.yaml` (compiled sweep).",
        "*s/rep*: wall time of the whole",
        "command divided by the replications (cluster start, compilation, sampling, summaries and",
        "writes included). ESS: bulk ESS, minimum over all of `bayes`'s estimands (structural",
        "slopes, simple slopes, loadings, indicator intercepts, latent and residual variances) per",
        "replication; *share ≥ 400 & R-hat ≤ 1.01*:",
        "replications whose every estimand has both.",
        "",
        "| chains × (warm-up + draws) | reps | wall s | s/rep | reps/hour | min ESS: 1st pct. "
        "| 5th pct. | median | max R-hat (worst rep) | share ≥ 400 & R-hat ≤ 1.01 "
        "| worst estimand (most often) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for (chains, warmup, draws), g in frame.groupby(["chains", "warmup", "draws"], sort=False):
        wall = g["wall_seconds"].iloc[0]
        ess = g["min_ess_bulk"].to_numpy()
        lines.append(
            f"| {chains} × ({warmup} + {draws}) | {len(g)} | {wall:.0f} | {wall / len(g):.3f} | "
            f"{3600 * len(g) / wall:,.0f} | {np.percentile(ess, 1):.0f} | "
            f"{np.percentile(ess, 5):.0f} | {np.median(ess):.0f} | {g['max_rhat'].max():.4f} | "
            f"{g['converged'].mean():.1%} | `{g['min_ess_param'].mode().iloc[0]}` |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=256)
    parser.add_argument(
        "--settings", nargs="+", default=["2:500:4000", "4:300:2000"], help="chains:warmup:draws"
    )
    parser.add_argument("--vectorize", type=int, default=16)
    parser.add_argument("--name", default="gibbs_target", help="results file name")
    parser.add_argument("--warm-cache", action="store_true")
    args = parser.parse_args()
    frames = []
    for setting in args.settings:
        chains, warmup, draws = (int(x) for x in setting.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            frames.append(run_setting(chains, warmup, draws, args, Path(tmp)))
        g = frames[-1]
        print(
            f"{setting}: {g['wall_seconds'].iloc[0]:.1f} s, converged {g['converged'].mean():.1%}",
            flush=True,
        )
    frame = pd.concat(frames, ignore_index=True)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / f"{args.name}.parquet")
    command = " ".join(
        [".venv/bin/python benchmarks/gibbs_target.py", f"--reps {args.reps}"]
        + ["--settings", *args.settings, f"--vectorize {args.vectorize}"]
        + (["--warm-cache"] if args.warm_cache else [])
        + ([f"--name {args.name}"] if args.name != "gibbs_target" else [])
    )
    (OUT / f"{args.name}.md").write_text(
        table(frame, command, os.cpu_count() or 1, args.warm_cache)
    )
    print(f"wrote {OUT / f'{args.name}.md'}")


if __name__ == "__main__":
    sys.exit(main())
