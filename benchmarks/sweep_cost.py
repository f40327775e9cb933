"""Milliseconds per sweep of the compiled latent interaction sweep, by variant, before and after.

The ``bayes`` sweep of ``conf/model/latent_interaction.yaml`` (N = 500, the seeds' design) is
compiled for ``--lanes`` lanes, 32 by default: 16 replications × 2 chains as a study runs
them, the two chains of a replication sharing its simulated data set as in the Gibbs driver
(until commit 1975350 each lane had a data set of its own, which hid the cost of data read by
both chains), ``--sweeps`` sweeps in one scan, under the engine's threefry setting, in fresh
single-threaded processes (a Dask worker's environment). Variants leave
steps out to show what they cost: the factor location moves, the factor scale moves.

Every (code, variant) process compiles once, then all of them run one timed call per round,
in turn, ``--rounds`` times (this machine is shared: a variant's time is its fastest round,
and every round is kept in the Parquet). ``--before COMMIT`` measures that commit too, from a
temporary git worktree, interleaved with this tree.

Usage::

    .venv/bin/python benchmarks/sweep_cost.py [--before COMMIT] [--lanes 32] [--sweeps 300]
        [--rounds 7] [--variants full "no location moves" "no scale moves"]

Writes ``benchmarks/results/sweep_cost.{parquet,md}``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import code_trees

ROOT = Path(__file__).resolve().parents[1]
CHAINS = 2  # chains per replication (conf/sampler/gibbs.yaml)
OUT = ROOT / "benchmarks" / "results"
#: Variant -> (what it is, the step classes it leaves out).
VARIANTS = {
    "full": ("the sweep as a study runs it", ()),
    "no location moves": ("the factor location moves left out", ("FactorLocation",)),
    "no scale moves": ("the factor scale moves left out", ("FactorScale",)),
}


def program(variant: str, lanes: int, sweeps: int):
    """The compiled ``sweeps``-sweep program of ``variant`` and its arguments."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from simstudy.cli import compose_raw
    from simstudy.config import plan_from_dict
    from simstudy.design import expand_grid
    from simstudy.engine import gibbs
    from simstudy.engine.replicate import compiled_simulate, setting_of
    from simstudy.models import family_of, model_infos
    from simstudy.spec import sweep
    from simstudy.spec.info import spec_of

    raw = compose_raw(["study=latent_interaction", "study.factors.N=[500]"])
    plan = plan_from_dict(raw, model_infos())
    simulate = compiled_simulate(
        family_of(plan.model), setting_of(plan, expand_grid(plan.factors)[0])
    )
    full = sweep.layout(spec_of(plan.model.structure))
    left_out = VARIANTS[variant][1]
    lay = dataclasses.replace(
        full, steps=tuple(s for s in full.steps if type(s).__name__ not in left_out)
    )
    priors = sweep.Priors.of(plan.model.priors)
    reps = lanes // CHAINS
    data = [sweep.prepare(dict(simulate(jax.random.key(i))), lay) for i in range(reps)]
    batched = jax.tree.map(lambda *x: jnp.stack(x), *data)

    def lane(key, d):
        state = sweep.init(key, d, lay, priors)

        def body(s, k):
            return sweep.sweep(k, s, d, lay, priors), None

        return jax.lax.scan(body, state, jax.random.split(key, sweeps))[0]

    # as the Gibbs driver runs a batch: replications x chains, the chains sharing their data
    keys = jax.random.split(jax.random.key(0), (reps, CHAINS))
    program = jax.vmap(jax.vmap(lane, in_axes=(0, None)))
    with jax.threefry_partitionable(gibbs.THREEFRY_PARTITIONABLE):
        compiled = jax.jit(program).lower(keys, batched).compile()
    return compiled, (keys, batched)


def serve(variant: str, lanes: int, sweeps: int) -> None:
    """Compile, say so, then time one call per line read from stdin (ms per sweep, as JSON)."""
    import jax

    import simstudy

    start = time.perf_counter()
    compiled, args = program(variant, lanes, sweeps)
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    print(json.dumps({"compile_s": compile_s, "simstudy": simstudy.__file__}), flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        ms = 1e3 * (time.perf_counter() - start) / sweeps
        print(json.dumps({"ms_per_sweep": ms}), flush=True)


def _child(tree: Path, variant: str, lanes: int, sweeps: int) -> subprocess.Popen:
    from simstudy.execute.pools import worker_env

    env = {**os.environ, **worker_env(), "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
    cmd += ["--lanes", str(lanes), "--sweeps", str(sweeps)]
    return subprocess.Popen(
        cmd, env=env, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def measure(trees: list[tuple[Path, str]], variants: list[str], args) -> pd.DataFrame:
    """Every (code, variant) compiled in its own process, then timed round by round."""
    children, rows = {}, []
    try:
        for tree, code in trees:
            for variant in variants:  # one at a time: compiles do not overlap
                child = _child(tree, variant, args.lanes, args.sweeps)
                ready = json.loads(child.stdout.readline())
                print(code, variant, ready, flush=True)
                children[code, variant] = (child, ready["compile_s"])
        for round_ in range(args.rounds):
            for (code, variant), (child, compile_s) in children.items():
                child.stdin.write("go\n")
                child.stdin.flush()
                ms = json.loads(child.stdout.readline())["ms_per_sweep"]
                row = {"code": code, "variant": variant, "round": round_, "ms_per_sweep": ms}
                rows.append({**row, "compile_s": compile_s})
                print(rows[-1], flush=True)
    finally:
        for child, _ in children.values():
            child.stdin.close()
            child.wait()
    return pd.DataFrame(rows)


def page(frame: pd.DataFrame, command: str, lanes: int) -> str:
    """The markdown page: each (code, variant)'s fastest round, every round listed."""
    lines = [
        "# The compiled latent interaction sweep: milliseconds per sweep",
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"N = 500, {lanes} lanes (a simulated data set each) in one program; fresh "
        "single-threaded processes, compiled once, timed in turn round after round (the machine",
        "is shared): *ms* is the fastest round, *vs first* that over the first row's.",
        "",
        "| code | variant | ms per sweep | vs first | every round | compile s |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    groups = frame.groupby(["code", "variant"], sort=False)
    first = None
    for (code, variant), g in groups:
        best = g["ms_per_sweep"].min()
        first = best if first is None else first
        every = ", ".join(f"{v:.2f}" for v in g["ms_per_sweep"])
        lines.append(
            f"| {code} | {variant} ({VARIANTS[variant][0]}) | {best:.2f} | {best / first:.2f} | "
            f"{every} | {g['compile_s'].iloc[0]:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="a commit to measure too")
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--sweeps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve(args.child, args.lanes, args.sweeps)
        return
    with code_trees(args.before) as trees:
        frame = measure(trees, args.variants, args)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "sweep_cost.parquet")
    command = (
        ".venv/bin/python benchmarks/sweep_cost.py"
        + (f" --before {args.before}" if args.before else "")
        + f" --lanes {args.lanes} --sweeps {args.sweeps} --rounds {args.rounds}"
    )
    (OUT / "sweep_cost.md").write_text(page(frame, command, args.lanes))
    print(f"wrote {OUT / 'sweep_cost.md'}")


if __name__ == "__main__":
    main()
