"""NUTS against ChEES-HMC, one replication at a time and several in one program.

The default study's condition (regression with 30% of ``x`` missing at random given ``y``,
N = 250, the model yaml's parameters and priors) is simulated ``--reps`` times; every sampler
configuration fits the same data sets with the NumPyro estimators (``bayes_fiml``: 257
unconstrained dimensions, the missing ``x`` sampled; ``bayes_fiml_marginal``: the same
posterior with the missing ``x`` integrated out, 7; ``bayes_cc``: 4). Configurations:

- ``nuts``: ``conf/sampler/nuts.yaml``, one replication per program (what a study runs);
- ``nuts`` at ``--width``: the same program vmapped over replications (the study does not
  offer this: shown to measure the lockstep cost of NUTS under vmap);
- ``chees``: ``conf/sampler/chees.yaml`` (``simstudy.engine.chees``), one replication per
  program and ``--width`` replications per program (``sampler.vectorize``).

Each (configuration, estimator) runs in a fresh single-threaded process, as a Dask worker
does, one at a time, with JAX's persistent cache off: compile seconds are the first call's.
Per replication: sampling seconds (a group's time / its replications), min bulk ESS and max
R-hat over the four estimands, divergences. ``converged``: R-hat <= 1.01 and ESS >= 400 on
every estimand.

Usage::

    .venv/bin/python benchmarks/hmc_batched.py [--reps 32] [--width 8]

Writes ``benchmarks/results/hmc_batched.{parquet,md}`` (one row per configuration, estimator
and replication in the Parquet file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.execute.pools import WORKER_ENV  # the environment of a Dask worker

ROOT = Path(__file__).parents[1]
OUT = ROOT / "benchmarks" / "results"
ESTIMATORS = ("bayes_fiml", "bayes_fiml_marginal", "bayes_cc")
CONDITION = {"N": 250, "missing_rate": 0.3, "mechanism": "MAR"}


def measure(sampler: str, width: int, estimator: str, reps: int, seed: int) -> list[dict]:
    """Fit ``reps`` data sets ``width`` at a time in this process; one row per replication."""
    import jax

    from simstudy.cli import load_plan
    from simstudy.engine import chees, gibbs, nuts
    from simstudy.engine.diagnostics import diagnose
    from simstudy.engine.replicate import setting_of
    from simstudy.models import family_of

    plan = load_plan([f"sampler={sampler}"])
    settings = plan.sampler
    family = family_of(plan.model)
    est = family.estimators_for(plan.model.structure)[estimator]
    setting = setting_of(plan, CONDITION)
    data = [
        est.data(family.simulate(jax.random.key(seed + r), setting), plan.model.priors)
        for r in range(reps)
    ]
    keys = [jax.random.key(seed + 10_000 + r) for r in range(reps)]

    if width == 1:
        run_one = (chees if settings.name == "chees" else nuts).prepare  # compiles on first use

        def fit(group: int):
            run = run_one(est, data[group], settings)
            out = run(keys[group], data[group])
            return [out.draws], [out.n_divergent]
    elif settings.name == "chees":

        def fit(group: int):
            lanes = slice(group * width, (group + 1) * width)
            outs = chees.prepare_batch(est, data[lanes], settings, width)(keys[lanes])
            return [o.draws for o in outs], [o.n_divergent for o in outs]
    else:  # NUTS vmapped over replications: benchmark only
        program = jax.jit(jax.vmap(nuts.build_sampler(est, settings, data[0])))

        def fit(group: int):
            lanes = slice(group * width, (group + 1) * width)
            draws, divergent = program(
                gibbs.stack_keys(keys[lanes], width), gibbs.stack(data[lanes], width)
            )
            host = {k: np.asarray(v) for k, v in draws.items()}
            return [{k: v[i] for k, v in host.items()} for i in range(width)], list(
                np.asarray(divergent)
            )

    rows = []
    for group in range(reps // width):
        start = time.perf_counter()
        draws, divergent = fit(group)
        seconds = time.perf_counter() - start
        for lane, (d, div) in enumerate(zip(draws, divergent, strict=True)):
            bulk, _, rhat = diagnose(np.stack([np.asarray(v, float) for v in d.values()]))
            rows.append(
                {
                    "sampler": sampler,
                    "width": width,
                    "estimator": estimator,
                    "rep": group * width + lane,
                    "first_group": group == 0,
                    "seconds": seconds / len(draws),
                    "min_ess_bulk": float(bulk.min()),
                    "max_rhat": float(rhat.max()),
                    "n_divergent": int(div),
                    "chains": settings.chains,
                    "iterations": settings.warmup + settings.draws,
                    "estimate_y~x": float(np.mean(d["y~x"])),
                }
            )
    return rows


def spawn(sampler: str, width: int, estimator: str, args: argparse.Namespace) -> list[dict]:
    """:func:`measure` in a fresh single-threaded process with JAX's cache off."""
    env = {**os.environ, **WORKER_ENV, "SIMSTUDY_JAX_CACHE": "off"}
    cmd = [sys.executable, __file__, "--child", sampler, str(width), estimator]
    cmd += ["--reps", str(args.reps), "--seed", str(args.seed)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (sampler, width, estimator): medians, compile seconds, converged share."""
    rows = []
    for (sampler, width, estimator), g in frame.groupby(
        ["sampler", "width", "estimator"], sort=False
    ):
        later = g[~g["first_group"]]  # the first group's time includes compilation
        s_rep = later["seconds"].median()
        compile_s = g.loc[g["first_group"], "seconds"].iloc[0] * width - s_rep * width
        converged = (g["max_rhat"] <= 1.01) & (g["min_ess_bulk"] >= 400)
        rows.append(
            {
                "sampler": sampler,
                "width": width,
                "estimator": estimator,
                "reps": len(g),
                "chains_x_iterations": f"{g['chains'].iloc[0]} × {g['iterations'].iloc[0]}",
                "compile_s": compile_s,
                "s_per_rep": s_rep,
                "min_ess_median": later["min_ess_bulk"].median(),
                "ess_per_s_median": (later["min_ess_bulk"] / later["seconds"]).median(),
                "max_rhat": g["max_rhat"].max(),
                "converged_share": converged.mean(),
                "divergent_reps": int((g["n_divergent"] > 0).sum()),
            }
        )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, args: argparse.Namespace) -> str:
    import jax

    command = " ".join([".venv/bin/python", "benchmarks/hmc_batched.py", *sys.argv[1:]])
    lines = [
        "# NUTS and ChEES-HMC on the default study's condition",
        "",
        f"`{command}` on {platform.machine()} ({os.cpu_count()} cores), JAX {jax.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Regression with 30% of x "
        "missing at random given y, N = 250; the same "
        f"{args.reps} data sets for every row. Each row ran in a fresh single-threaded process, "
        "one at a time. *s/rep*: sampling seconds per replication (median over the groups "
        "after the first; a group of *width* replications is one call); *compile*: the first "
        "group's extra time; *min ESS*: the smallest bulk ESS over the four estimands (median "
        "over replications); *ESS/s*: min ESS / s/rep (median); *converged*: share with R-hat "
        "≤ 1.01 and ESS ≥ 400 on every estimand; *div.*: replications with any divergence. "
        "NUTS at width > 1 is not offered by the study runner: it is here to measure NUTS's "
        "lockstep cost under vmap.",
        "",
        "| sampler | width | estimator | chains × iterations | compile s | s/rep | min ESS "
        "| ESS/s | max R-hat | converged | div. |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.sampler} | {r.width} | {r.estimator} | {r.chains_x_iterations} | "
            f"{r.compile_s:.1f} | {r.s_per_rep:.3f} | {r.min_ess_median:,.0f} | "
            f"{r.ess_per_s_median:,.0f} | {r.max_rhat:.3f} | {r.converged_share:.0%} | "
            f"{r.divergent_reps} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=32)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sampler, width, estimator = args.child
        print(json.dumps(measure(sampler, int(width), estimator, args.reps, args.seed)))
        return
    if args.reps % args.width or args.reps < 2 * args.width:
        parser.error("--reps must be a multiple of --width, at least two groups")
    configs = [("nuts", 1), ("nuts", args.width), ("chees", 1), ("chees", args.width)]
    rows: list[dict] = []
    for sampler, width in configs:
        for estimator in ESTIMATORS:
            rows += spawn(sampler, width, estimator, args)
            print(f"{sampler} width {width} {estimator}: done", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out / "hmc_batched.parquet", index=False)
    text = markdown(table(frame), args)
    (args.out / "hmc_batched.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
