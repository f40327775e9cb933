"""Where the time of one latent interaction Gibbs sweep goes: XLA's cost model against the clock.

The ``bayes`` sweep of the latent interaction model (N = 500, the seeds' design) is compiled
for ``--lanes`` chains at once (16 replications × 2 chains by default, as a study runs it) in a
fresh single-threaded process, like a Dask worker. For the full sweep and for variants with a
piece left out, it records XLA's own count of floating-point operations and bytes accessed per
sweep (``compiled.cost_analysis()``) and the measured time per sweep, hence the arithmetic rate
the sweep reaches. The variants show what a piece costs: without the factor scale moves, and
with the PRNG implementation switched (``rbg``).

Usage::

    .venv/bin/python benchmarks/profile_gibbs_sweep.py [--lanes 32] [--sweeps 2000] [--rounds 3]

Variants run one after another, ``--rounds`` times over (this machine's timings drift between
runs, so each variant's time is its fastest round, and every round is kept in the Parquet).

Writes ``benchmarks/results/profile_gibbs_sweep.{parquet,md}``.
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
VARIANTS = {
    "full sweep": "the sampler as a study runs it",
    "no scale moves": "the three factor scale moves left out",
    "partitionable threefry": "jax_threefry_partitionable=True, JAX's default, instead of the "
    "engine's False",
    "rbg PRNG": "jax_default_prng_impl=rbg instead of threefry2x32",
}


def measure(variant: str, lanes: int, sweeps: int) -> dict:
    """Compile ``sweeps`` sweeps of ``variant`` over ``lanes`` chains; cost model and clock."""
    import jax

    if variant == "rbg PRNG":
        jax.config.update("jax_default_prng_impl", "rbg")
    import jax.numpy as jnp

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from conftest import LATENT_PARAMS

    from simstudy.cli import load_plan
    from simstudy.engine import gibbs
    from simstudy.models import latent_interaction as li
    from simstudy.models.latent_interaction import gibbs as interaction_gibbs
    from simstudy.models.latent_interaction import moves as interaction_moves

    if variant == "no scale moves":
        interaction_moves.scale_move = lambda key, s, *args: s
    priors = load_plan(["study=latent_interaction"]).model.priors
    setting = {**LATENT_PARAMS, "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    layout = li.Layout(None)
    sampler = interaction_gibbs.sampler(layout)
    step = sampler.step
    data = [li.simulate(jax.random.key(i), setting) for i in range(lanes)]
    data = {k: jnp.stack([jnp.asarray(d[k]) for d in data]) for k in data[0]}
    data = jax.jit(jax.vmap(sampler.prepare))(data)  # as the engine does once per fit
    init_keys = jax.random.split(jax.random.key(1), lanes)
    state = jax.jit(jax.vmap(lambda k, d: sampler.init(k, d, priors)))(init_keys, data)

    def run(n):
        def lane(key, s, d):
            def body(s, k):
                return step(k, s, d, priors), None

            return jax.lax.scan(body, s, jax.random.split(key, n))[0]

        return jax.jit(jax.vmap(lane))

    keys = jax.random.split(jax.random.key(2), lanes)
    partitionable = variant == "partitionable threefry" or gibbs.THREEFRY_PARTITIONABLE
    with jax.threefry_partitionable(partitionable):
        one = run(1).lower(keys, state, data).compile()
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    start = time.perf_counter()
    with jax.threefry_partitionable(partitionable):
        many = run(sweeps).lower(keys, state, data)
    many = many.compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(many(keys, state, data))  # warm
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(many(keys, state, data))
        times.append(time.perf_counter() - start)
    per_sweep = min(times) / sweeps
    flops = float(cost.get("flops", float("nan")))
    bytes_accessed = float(cost.get("bytes accessed", float("nan")))
    return {
        "variant": variant,
        "lanes": lanes,
        "sweeps": sweeps,
        "compile_s": compile_s,
        "ms_per_sweep": 1e3 * per_sweep,
        "us_per_sweep_per_lane": 1e6 * per_sweep / lanes,
        "flops_per_sweep_per_lane": flops / lanes,
        "bytes_per_sweep_per_lane": bytes_accessed / lanes,
        "gflops_per_s": flops / per_sweep / 1e9,
        "gbytes_per_s": bytes_accessed / per_sweep / 1e9,
    }


def child_command(variant: str, lanes: int, sweeps: int, core: int | None = None) -> list[str]:
    """The command of a fresh single-threaded process measuring ``variant`` (on ``core``)."""
    cmd = [sys.executable, __file__, "--child", variant, "--lanes", str(lanes)]
    cmd += ["--sweeps", str(sweeps)]
    return cmd + ([] if core is None else ["--core", str(core)])


def child_env() -> dict[str, str]:
    """The environment of a Dask worker."""
    return {**os.environ, **WORKER_ENV}


def _fresh(variant: str, lanes: int, sweeps: int) -> dict:
    cmd = child_command(variant, lanes, sweeps)
    out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: pd.DataFrame, command: str) -> str:
    """The markdown page."""
    rounds = rows.groupby("variant", sort=False)["us_per_sweep_per_lane"]
    every = rounds.apply(lambda x: ", ".join(f"{v:.1f}" for v in x))
    rows = rows.loc[rounds.idxmin()]
    full = rows.set_index("variant").loc["full sweep", "us_per_sweep_per_lane"]
    lines = [
        "# One latent interaction Gibbs sweep: cost model and clock",
        "",
        f"Produced by `{command}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, one single-threaded process per variant (as a Dask worker).",
        "N = 500, three factors × three indicators; lanes = replications × chains compiled",
        "together. Flops and bytes are XLA's cost analysis of one sweep's program. Variants ran",
        "one after another, round after round; µs is each variant's fastest round (all rounds",
        "listed).",
        "",
        "| variant | µs per sweep and lane | every round | share of the full sweep "
        "| flops per sweep and lane | bytes per sweep and lane | GFlop/s | GB/s | compile s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, r in rows.iterrows():
        lines.append(
            f"| {r['variant']} ({VARIANTS[r['variant']]}) | {r['us_per_sweep_per_lane']:.1f} | "
            f"{every[r['variant']]} | {r['us_per_sweep_per_lane'] / full:.2f} | {r['flops_per_sweep_per_lane']:,.0f} | "
            f"{r['bytes_per_sweep_per_lane']:,.0f} | {r['gflops_per_s']:.2f} | "
            f"{r['gbytes_per_s']:.2f} | {r['compile_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.core is not None:  # before JAX starts its threads
            from simstudy.execute.pinning import pin_process

            pin_process(args.core)
        print(json.dumps(measure(args.child, args.lanes, args.sweeps)))
        return
    rows = []
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            rows.append({**_fresh(variant, args.lanes, args.sweeps), "round": round_})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "profile_gibbs_sweep.parquet")
    command = (
        f".venv/bin/python benchmarks/profile_gibbs_sweep.py --lanes {args.lanes} "
        f"--sweeps {args.sweeps} --rounds {args.rounds}"
    )
    (OUT / "profile_gibbs_sweep.md").write_text(table(frame, command))
    print(f"wrote {OUT / 'profile_gibbs_sweep.md'}")


if __name__ == "__main__":
    main()
