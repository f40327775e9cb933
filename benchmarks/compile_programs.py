"""Where compilation goes in a study, per program and end to end, before and after a change.

Two measurements, each for the current tree and (with ``--before COMMIT``) for an older commit
checked out in a temporary git worktree:

- **per program**: each ChEES program of the default study's estimators (``bayes_fiml``,
  ``bayes_fiml_marginal``, ``bayes_cc``; the smoke study's condition, N = 100, 4 chains ×
  (150 + 150)) traced and lowered, then compiled, in a fresh process pinned to one core with a
  Dask worker's environment and no persistent cache, as a local worker compiles it; then the
  default study's program (N = 250, 4 × (400 + 1000)) compiled and run ``--runs`` times, for
  the run time the compile options must not slow down;
- **end to end**: ``simstudy run +experiment=smoke`` with an empty compilation cache on the
  default local Dask cluster (wall time of the whole command), with and without
  ``executor.compile_first`` where the tree has it.

Usage::

    .venv/bin/python benchmarks/compile_programs.py [--before COMMIT] [--runs 10] [--smoke-runs 2]

Writes ``benchmarks/results/compile_programs.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import code_trees

from simstudy.execute.pools import WORKER_ENV  # the environment of a Dask worker

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results"
ESTIMATORS = ("bayes_fiml", "bayes_fiml_marginal", "bayes_cc")


def measure(name: str, runs: int) -> dict:
    """Lower, compile and run estimator ``name``'s ChEES programs in this (fresh) process."""
    from simstudy.execute.pinning import pin_process

    pin_process(0)
    import jax
    import jax.numpy as jnp

    from simstudy.cli import load_plan
    from simstudy.engine import chees
    from simstudy.engine.replicate import compiled_simulate, setting_of
    from simstudy.models import MODELS

    options = getattr(chees, "COMPILER_OPTIONS", {})
    row: dict = {"estimator": name, "compiler_options": json.dumps(options)}
    for label, overrides, condition in (
        ("smoke", ["+experiment=smoke"], {"N": 100, "missing_rate": 0.3, "mechanism": "MAR"}),
        ("default", [], {"N": 250, "missing_rate": 0.3, "mechanism": "MAR"}),
    ):
        plan = load_plan(overrides)
        family = MODELS[plan.model.name]
        simulate = compiled_simulate(family, setting_of(plan, condition))
        estimator = family.estimators_for(plan.model.structure)[name]
        data = {
            k: jnp.asarray(v)
            for k, v in estimator.data(simulate(jax.random.key(1)), plan.model.priors).items()
        }
        start = time.perf_counter()
        fit = chees.build_fit(estimator, plan.sampler, data)
        lowered = jax.jit(fit).lower(jax.random.key(0), data)
        row[f"{label}_lower_s"] = time.perf_counter() - start
        start = time.perf_counter()
        compiled = lowered.compile(compiler_options=options) if options else lowered.compile()
        row[f"{label}_compile_s"] = time.perf_counter() - start
    times = []
    for i in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(i), data))
        times.append(time.perf_counter() - start)
    row["default_run_s"] = min(times)
    return row


def _env(tree: Path, cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "SIMSTUDY_JAX_CACHE": cache}
    env.pop("SIMSTUDY_CONFIG_DIR", None)
    return env


def per_program(tree: Path, label: str, runs: int) -> list[dict]:
    """Each estimator's programs measured in a fresh process running ``tree``'s simstudy."""
    rows = []
    for name in ESTIMATORS:
        env = {**_env(tree, "off"), **WORKER_ENV}
        cmd = [sys.executable, __file__, "--child", name, "--runs", str(runs)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tree)
        rows.append({"code": label, **json.loads(out.stdout.strip().splitlines()[-1])})
        print(rows[-1], flush=True)
    return rows


def smoke(tree: Path, label: str, compile_first: bool | None) -> dict:
    """Wall seconds of ``simstudy run +experiment=smoke`` from an empty compilation cache."""
    with tempfile.TemporaryDirectory() as where:
        cmd = [sys.executable, "-m", "simstudy.cli", "run", "+experiment=smoke"]
        cmd += [f"results_dir={where}/results", "executor.dashboard=false"]
        if compile_first is not None:
            cmd.append(f"executor.compile_first={str(compile_first).lower()}")
        start = time.perf_counter()
        subprocess.run(
            cmd, env=_env(tree, f"{where}/cache"), check=True, capture_output=True, cwd=tree
        )
        seconds = time.perf_counter() - start
    row = {"code": label, "compile_first": compile_first, "smoke_wall_s": seconds}
    print(row, flush=True)
    return row


def page(programs: pd.DataFrame, runs: pd.DataFrame, command: str) -> str:
    """The markdown page."""
    lines = [
        "# Compilation: per program and the smoke study end to end",
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Per program: a fresh process pinned to one core with a Dask worker's environment and no",
        "persistent cache (as a local worker compiles). *lower*: tracing and lowering; *compile*:",
        "XLA; smoke: the smoke study's condition (N = 100, 4 × (150 + 150)); default: the default",
        "study's (N = 250, 4 × (400 + 1000)); *run*: the fastest of the default program's runs.",
        "",
        "| code | estimator | smoke lower s | smoke compile s | default lower s | default compile s "
        "| default run s | compiler options |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, r in programs.iterrows():
        lines.append(
            f"| {r['code']} | {r['estimator']} | {r['smoke_lower_s']:.2f} | "
            f"{r['smoke_compile_s']:.2f} | {r['default_lower_s']:.2f} | "
            f"{r['default_compile_s']:.2f} | {r['default_run_s']:.3f} | "
            f"`{r['compiler_options']}` |"
        )
    lines += [
        "",
        "End to end: `simstudy run +experiment=smoke` (4 replications × 4 estimators, 2 local",
        "workers) with an empty compilation cache; wall seconds of the whole command.",
        "",
        "| code | executor.compile_first | wall s |",
        "| --- | --- | ---: |",
    ]
    for _, r in runs.iterrows():
        first = "(not in this code)" if pd.isna(r["compile_first"]) else str(r["compile_first"])
        lines.append(f"| {r['code']} | {first} | {r['smoke_wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="a commit to measure too")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--smoke-runs", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.runs)))
        return
    programs, runs = [], []
    with code_trees(args.before) as trees:
        for tree, label in trees:
            programs += per_program(tree, label, args.runs)
            current = tree == ROOT  # only this tree has executor.compile_first
            for _ in range(args.smoke_runs):
                for compile_first in (False, True) if current else (None,):
                    runs.append(smoke(tree, label, compile_first))
    OUT.mkdir(exist_ok=True)
    frame = pd.DataFrame(programs)
    frame.to_parquet(OUT / "compile_programs.parquet")
    pd.DataFrame(runs).to_parquet(OUT / "compile_programs_smoke.parquet")
    command = (
        ".venv/bin/python benchmarks/compile_programs.py"
        + (f" --before {args.before}" if args.before else "")
        + f" --runs {args.runs} --smoke-runs {args.smoke_runs}"
    )
    (OUT / "compile_programs.md").write_text(page(frame, pd.DataFrame(runs), command))
    print(f"wrote {OUT / 'compile_programs.md'}")


if __name__ == "__main__":
    main()
