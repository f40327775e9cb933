"""Threefry on the CPU: JAX's looped lowering against the written-out one simstudy registers.

Each measurement runs in a process of its own (``SIMSTUDY_THREEFRY=loop`` or not), the two
taking turns, single-threaded XLA as on a Dask worker. Wall-clock seconds (``perf_counter``), best of ``--rounds``. Two programs: a scan of 2,000 iterations each drawing ``n`` normals and
``n`` uniforms (the random numbers alone), and 2,000 sweeps of the binary GLMM's compiled
Gibbs sampler (``conf/model/glmm_binary.yaml``, probit and logit, J = 50 clusters of 10, one
lane). Writes ``benchmarks/results/threefry_lowering.md``.

    .venv/bin/python benchmarks/threefry_lowering.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import frame_markdown

OUT = Path(__file__).resolve().parent / "results"
ITERATIONS = 2000
SIZES = (100, 1000, 10000)


def _best(program, *args, rounds: int) -> float:
    import jax

    jax.block_until_ready(program(*args))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(program(*args))
        best = min(best, time.perf_counter() - start)
    return best


def draws_us(n: int, rounds: int) -> float:
    """Microseconds per iteration of a scan drawing ``n`` normals and ``n`` uniforms."""
    import jax

    def body(total, key):
        k1, k2 = jax.random.split(key)
        return total + jax.random.normal(k1, (n,)).sum() + jax.random.uniform(k2, (n,)).sum(), None

    program = jax.jit(lambda key: jax.lax.scan(body, 0.0, jax.random.split(key, ITERATIONS))[0])
    return 1e6 * _best(program, jax.random.key(0), rounds=rounds) / ITERATIONS


def sweep_us(link: str, rounds: int) -> float:
    """Microseconds per sweep of the binary GLMM's compiled Gibbs sampler, one lane."""
    import jax

    from simstudy.cli import compose_raw
    from simstudy.config import plan_from_dict
    from simstudy.engine.replicate import compiled_simulate, setting_of
    from simstudy.models import family_of, model_infos
    from simstudy.spec import sweep
    from simstudy.spec.info import spec_of

    raw = compose_raw(
        ["study=glmm_binary", f"model.link={link}", "study.factors={J: [50], cluster_size: [10]}"]
    )
    plan = plan_from_dict(raw, model_infos())
    sim = compiled_simulate(family_of(plan.model), setting_of(plan, {"J": 50, "cluster_size": 10}))
    lay = sweep.layout(spec_of(plan.model.structure))
    priors = sweep.Priors.of(plan.model.priors)
    data = sweep.prepare(dict(sim(jax.random.key(0))), lay)

    def run(key, data):  # the data an argument, as the engine's programs take them
        state = sweep.init(key, data, lay, priors)

        def body(s, k):
            return sweep.sweep(k, s, data, lay, priors), None

        return jax.lax.scan(body, state, jax.random.split(key, ITERATIONS))[0]

    return 1e6 * _best(jax.jit(run), jax.random.key(1), data, rounds=rounds) / ITERATIONS


def child(what: str, rounds: int) -> None:
    """Measure one program in this process and print it as JSON."""
    import simstudy.engine  # noqa: F401  registers the lowering unless SIMSTUDY_THREEFRY=loop
    from simstudy.engine import threefry

    kind, arg = what.split(":")
    us = draws_us(int(arg), rounds) if kind == "draws" else sweep_us(arg, rounds)
    print(json.dumps({"program": what, "written_out": threefry.UNROLLED, "us": us}))


def measure(what: str, mode: str, rounds: int) -> dict:
    env = {**os.environ, "SIMSTUDY_THREEFRY": mode, "SIMSTUDY_JAX_CACHE": "off"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--rounds", str(rounds)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rounds)
        return
    programs = [f"draws:{n}" for n in SIZES] + ["sweep:probit", "sweep:logit"]
    rows = []
    for what in programs:
        loop, unrolled = (measure(what, mode, args.rounds) for mode in ("loop", ""))
        assert not loop["written_out"] and unrolled["written_out"]
        rows.append(
            {
                "program": what.replace("draws:", "draws, n = ").replace("sweep:", "GLMM sweep, "),
                "loop_us": loop["us"],
                "written_out_us": unrolled["us"],
                "speed-up": loop["us"] / unrolled["us"],
            }
        )
        print(rows[-1], flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT
    ).stdout.strip()
    page = [
        "# Threefry on the CPU: JAX's loop against the written-out lowering",
        "",
        f"Produced by `.venv/bin/python benchmarks/threefry_lowering.py --rounds {args.rounds}`"
        f" at commit {commit}, on this machine's 2 cores, single-threaded XLA; wall-clock microseconds"
        f" per iteration (best of {args.rounds}), each program in a process of its own. `draws`:"
        f" a scan of {ITERATIONS} iterations, each drawing n normals and n uniforms; `GLMM"
        " sweep`: the binary GLMM's compiled Gibbs sweep (J = 50 clusters of 10), one lane."
        " Both lowerings give the same bits (tests/engine/test_threefry.py).",
        "",
        frame_markdown(pd.DataFrame(rows), digits=2),
        "",
    ]
    (OUT / "threefry_lowering.md").write_text("\n".join(page))


if __name__ == "__main__":
    main()
