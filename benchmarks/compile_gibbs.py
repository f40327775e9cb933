"""What compiling the latent interaction Gibbs program costs, and what shortening it would cost.

The program a worker compiles for a condition of the latent interaction study (N = 500,
``bayes``, 16 replications × 2 chains × (150 + 3,000) sweeps, as ``gibbs_target.py`` runs it)
is lowered and compiled in a fresh process with a Dask worker's environment and no persistent
cache, then run ``--runs`` times. Variants:

- ``one core``: the process pinned to one core before JAX starts (as a local Dask worker);
- ``two cores``: unpinned (XLA compiles a program's fusions on a pool of threads);
- ``pool on two cores, then pinned``: JAX's backend started on both cores, then every thread
  pinned to one core and let out onto both only while compiling -- what sharing one compile
  between the workers of a machine would need;
- ``one core, backend optimization level 1`` and ``one core, fusion emitters off``
  (``--xla_backend_optimization_level=1``, ``--xla_cpu_use_fusion_emitters=false``): XLA
  flags that shorten compilation.

Usage::

    .venv/bin/python benchmarks/compile_gibbs.py [--runs 3]

Writes ``benchmarks/results/compile_gibbs.{parquet,md}``.
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

import pandas as pd

from simstudy.execute.pools import WORKER_ENV  # the environment of a Dask worker

OUT = Path(__file__).parent / "results"
WIDTH, CHAINS, WARMUP, DRAWS = 16, 2, 150, 3000
VARIANTS = {
    "one core": ("pin", ""),
    "two cores": ("none", ""),
    "pool on two cores, then pinned": ("after", ""),
    "one core, backend optimization level 1": ("pin", "--xla_backend_optimization_level=1"),
    "one core, fusion emitters off": ("pin", "--xla_cpu_use_fusion_emitters=false"),
}


def measure(variant: str, runs: int) -> dict:
    """Lower, compile and run the program in this (fresh) process, pinned as ``variant`` says."""
    from simstudy.execute.pinning import pin_process

    pinning = VARIANTS[variant][0]
    if pinning == "pin":
        pin_process(0)
    import jax
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # JAX's backend and its thread pools start here
    if pinning == "after":
        pin_process(0)

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from conftest import LATENT_PARAMS

    from simstudy.cli import load_plan
    from simstudy.engine import gibbs
    from simstudy.models import MODELS
    from simstudy.models import latent_interaction as li

    overrides = [f"sampler.chains={CHAINS}", f"sampler.warmup={WARMUP}", f"sampler.draws={DRAWS}"]
    plan = load_plan(
        [
            "study=latent_interaction",
            "model=latent_interaction_handwritten",
            "sampler=gibbs",
            *overrides,
        ]
    )
    estimator = MODELS[plan.model.name].estimators_for(plan.model.structure)["bayes"]
    setting = {**LATENT_PARAMS, "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    sets = [li.simulate(jax.random.key(i), setting) for i in range(WIDTH)]
    data = {k: jnp.stack([jnp.asarray(d[k]) for d in sets]) for k in sets[0]}
    keys = jax.random.split(jax.random.key(0), WIDTH)

    start = time.perf_counter()
    lowered = gibbs.lower_fit(estimator, plan.sampler, plan.model.priors, data, width=WIDTH)
    lower_s = time.perf_counter() - start
    if pinning == "after":
        pin_process(0, 1)
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    if pinning == "after":
        pin_process(0)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys, data))
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "threads": len(os.listdir("/proc/self/task")),
        "fusions": compiled.as_text().count("fusion("),
        "lower_s": lower_s,
        "compile_s": compile_s,
        "run_s_min": min(times),
        "run_s_all": ", ".join(f"{t:.2f}" for t in times),
        "us_per_sweep_per_lane": 1e6 * min(times) / ((WARMUP + DRAWS) * WIDTH * CHAINS),
    }


def _fresh(variant: str, runs: int) -> dict:
    env = {**os.environ, **WORKER_ENV, "SIMSTUDY_JAX_CACHE": "off"}
    flags = VARIANTS[variant][1]
    env["XLA_FLAGS"] = f"{WORKER_ENV['XLA_FLAGS']} {flags}".strip()
    cmd = [sys.executable, __file__, "--child", variant, "--runs", str(runs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: pd.DataFrame, command: str) -> str:
    """The markdown page."""
    lines = [
        "# Compiling the latent interaction Gibbs program",
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "One fresh process per variant (a Dask worker's environment, no persistent cache): the",
        f"program of {WIDTH} replications × {CHAINS} chains × ({WARMUP} + {DRAWS}) sweeps, N = 500,",
        "lowered, compiled, then run; *run s*: the fastest run (all runs listed). *threads*: the",
        "process's threads after the runs.",
        "",
        "| variant | lower s | compile s | run s | runs | µs per sweep and lane | fusions | threads |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for _, r in rows.iterrows():
        lines.append(
            f"| {r['variant']} | {r['lower_s']:.1f} | {r['compile_s']:.1f} | {r['run_s_min']:.2f} "
            f"| {r['run_s_all']} | {r['us_per_sweep_per_lane']:.1f} | {r['fusions']} "
            f"| {r['threads']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.runs)))
        return
    rows = []
    for variant in VARIANTS:
        rows.append(_fresh(variant, args.runs))
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "compile_gibbs.parquet")
    command = f".venv/bin/python benchmarks/compile_gibbs.py --runs {args.runs}"
    (OUT / "compile_gibbs.md").write_text(table(frame, command))
    print(f"wrote {OUT / 'compile_gibbs.md'}")


if __name__ == "__main__":
    main()
