"""Per-replication time of the latent interaction Gibbs fit by ``sampler.vectorize`` width.

The ``bayes`` estimator of the latent interaction model (N = 500, 2 chains × (500 + 4000)
sweeps, conf/sampler/gibbs.yaml) is fitted to ``width`` replications in one compiled program
(``width = 1``: the unbatched program). Each measurement runs in a fresh process, as a Dask
worker does (single-threaded XLA); with ``--workers 2`` two such processes run at once, which
is what a local cluster on this 2-core machine does. Compile time (first call) and the time of
a second call with new data are recorded separately.

Usage::

    .venv/bin/python benchmarks/vectorize_gibbs.py [--widths 1 4 8 16 32] [--workers 1 2]

Writes ``benchmarks/results/vectorize_gibbs.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from simstudy.execute.pools import WORKER_ENV  # the environment of a Dask worker

OUT = Path(__file__).parent / "results"


def measure(width: int) -> dict:
    """Compile and run ``width`` replications in this process; seconds as a dict."""
    import jax

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from conftest import LATENT_PARAMS

    from simstudy.cli import load_plan
    from simstudy.config import SamplerSettings
    from simstudy.engine import gibbs
    from simstudy.models import latent_interaction as li

    setting = {**LATENT_PARAMS, "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    priors = load_plan(
        ["model=latent_interaction_handwritten"]
    ).model.priors  # the model yaml's priors
    settings = SamplerSettings(name="gibbs", chains=2, warmup=500, draws=4000)

    def batch(offset: int) -> tuple[list, list]:
        data = [li.simulate(jax.random.key(offset + r), setting) for r in range(width)]
        return data, [jax.random.key(10_000 + offset + r) for r in range(width)]

    timings = []
    for offset in (0, width):  # first call compiles, second reuses the program
        data, keys = batch(offset)
        start = time.perf_counter()
        if width == 1:
            gibbs.prepare(li.BAYES, data[0], settings, priors)(keys[0], data[0])
        else:
            gibbs.prepare_batch(li.BAYES, data, settings, priors, width)(keys)
        timings.append(time.perf_counter() - start)
    return {"first_call_s": timings[0], "run_s": timings[1]}


def spawn(width: int) -> dict:
    """``measure(width)`` in a fresh single-threaded process (JAX cache off)."""
    env = {**os.environ, **WORKER_ENV, "SIMSTUDY_JAX_CACHE": "off"}
    cmd = [sys.executable, __file__, "--child", str(width)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child)))
        return
    rows = []
    for workers in args.workers:
        for width in args.widths:
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(spawn, [width] * workers))
            for worker, r in enumerate(results):
                rows.append({"workers": workers, "width": width, "worker": worker, **r})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame["s_per_rep"] = frame["run_s"] / frame["width"]
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "vectorize_gibbs.parquet", index=False)
    table = (
        frame.groupby(["workers", "width"])
        .agg(first_call_s=("first_call_s", "mean"), s_per_rep=("s_per_rep", "mean"))
        .reset_index()
    )
    table["compile_s"] = table["first_call_s"] - table["s_per_rep"] * table["width"]
    table["machine_s_per_rep"] = table["s_per_rep"] / table["workers"]
    table["reps_per_hour"] = 3600 / table["machine_s_per_rep"]
    lines = [
        "# sampler.vectorize: latent interaction Gibbs fits, N = 500, 2 × (500 + 4000) sweeps",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/vectorize_gibbs.py', *sys.argv[1:]])}` "
        f"on {platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}. Each "
        "worker is a fresh single-threaded process; `workers = 2` runs two at once. "
        "`s/rep` is a worker's sampling time per replication (second call, compiled program "
        "reused); `machine s/rep` divides by the workers running at once; `compile` is the "
        "first call minus a run.",
        "",
        "| workers | width | compile (s) | s/rep per worker | machine s/rep | reps/hour |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.workers} | {r.width} | {r.compile_s:.1f} | {r.s_per_rep:.3f} | "
            f"{r.machine_s_per_rep:.3f} | {r.reps_per_hour:,.0f} |"
        )
    (OUT / "vectorize_gibbs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
