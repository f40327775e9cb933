"""What SLURM costs per batch, against the local Dask cluster, on the same tiny study.

For each executor (``local``: a ``LocalCluster`` here; ``slurm``: workers as jobs of the
one-node SLURM of ``slurm/local-slurm.sh``, one single-threaded worker per job):

- **startup**: from opening the pool to its first worker connected (SLURM: submitting the
  job, the job starting, the worker importing and registering), then a **first batch** on
  every worker (importing simstudy and JAX, compiling or loading from the cache);
- **round trip**: one batch at a time, submit and wait, ``--batches`` times after a warm-up
  batch on each worker (so imports and compilation are not counted); its median less the
  median of the same batch computed in this process is the **overhead per batch**;
- **throughput**: ``--batches`` batches submitted at once to two workers, wall time per batch.

Two studies: the smoke study's condition with ``ols_cc`` only (closed form: a batch is
milliseconds of work, so what is measured is the executor) and with ``bayes_cc`` (NUTS,
150 + 150 draws: a small real fit). Batches of ``--batch-size`` replications.

Usage (SLURM must be running: ``slurm/local-slurm.sh start``)::

    .venv/bin/python benchmarks/slurm_overhead.py [--batches 20] [--batch-size 2]

Writes ``benchmarks/results/slurm_overhead.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from mdtable import frame_markdown

OUT = Path(__file__).parent / "results"
STUDIES = {
    "ols_cc (closed form)": ["+experiment=smoke", "study.estimators=[ols_cc]"],
    "bayes_cc (NUTS 150+150)": ["+experiment=smoke", "study.estimators=[bayes_cc]"],
}


def executor_overrides(name: str, workers: int) -> list[str]:
    common = ["executor.dashboard=false", "executor.compile_first=false"]
    if name == "local":
        return ["executor=local", f"executor.n_workers={workers}", *common]
    return [
        "executor=slurm",
        "executor.scheduler_host=127.0.0.1",
        "executor.slurm.memory=2GB",
        f"executor.slurm.maximum_jobs={workers}",
        "executor.slurm.log_directory=/tmp/simstudy-slurm-overhead-logs",
        *common,
    ]


def measure(study: str, executor: str, batches: int, batch_size: int) -> list[dict]:
    from distributed import wait

    from simstudy.cli import load_plan
    from simstudy.design import expand_grid
    from simstudy.engine import replicate
    from simstudy.execute.pools import open_pool

    rows = []
    for workers in (1, 2):
        overrides = [*STUDIES[study], f"executor.batch_size={batch_size}"]
        plan = load_plan([*overrides, *executor_overrides(executor, workers)])
        condition = expand_grid(plan.factors, plan.exclude)[0]
        reps = list(range(batch_size))
        started = time.perf_counter()
        with open_pool(plan.executor) as pool:
            startup = time.perf_counter() - started
            client = pool.client
            while len(client.scheduler_info(n_workers=-1)["workers"]) < workers:
                time.sleep(0.2)
            all_workers = time.perf_counter() - started
            addresses = list(client.scheduler_info(n_workers=-1)["workers"])
            # warm-up: imports and compilation on every worker
            t = time.perf_counter()
            wait(
                [
                    client.submit(
                        replicate.run_batch, plan, condition, reps, workers=[a], pure=False
                    )
                    for a in addresses
                ]
            )
            row = {
                "study": study,
                "executor": executor,
                "workers": workers,
                "startup_s": startup,
                "all_workers_s": all_workers,
                "first_batch_s": time.perf_counter() - t,
            }
            if workers == 1:
                trips = []
                for _ in range(batches):
                    t = time.perf_counter()
                    client.submit(replicate.run_batch, plan, condition, reps, pure=False).result()
                    trips.append(time.perf_counter() - t)
                row["round_trip_s"] = statistics.median(trips)
            t = time.perf_counter()
            futures = [
                client.submit(replicate.run_batch, plan, condition, reps, pure=False)
                for _ in range(batches)
            ]
            wait(futures)
            row["throughput_s_per_batch"] = (time.perf_counter() - t) / batches
        rows.append(row)
    return rows


def in_process(study: str, batches: int, batch_size: int) -> float:
    """Median seconds of one batch computed here (after a warm-up batch)."""
    from simstudy.cli import load_plan
    from simstudy.design import expand_grid
    from simstudy.engine import replicate

    plan = load_plan([*STUDIES[study], f"executor.batch_size={batch_size}", "executor=synchronous"])
    condition = expand_grid(plan.factors, plan.exclude)[0]
    reps = list(range(batch_size))
    replicate.run_batch(plan, condition, reps)
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        replicate.run_batch(plan, condition, reps)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args()
    if subprocess.run(["sinfo", "-h"], capture_output=True, check=False).returncode != 0:
        sys.exit("SLURM is not running: slurm/local-slurm.sh start")
    load_before = os.getloadavg()[0]
    rows = []
    for study in STUDIES:
        compute = in_process(study, args.batches, args.batch_size)
        for executor in ("local", "slurm"):
            for row in measure(study, executor, args.batches, args.batch_size):
                row["compute_s"] = compute
                rows.append(row)
                print(row, flush=True)
    frame = pd.DataFrame(rows)
    frame["overhead_s"] = frame["round_trip_s"] - frame["compute_s"]
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "slurm_overhead.parquet", index=False)
    command = "python benchmarks/slurm_overhead.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    slurm_version = subprocess.run(
        ["sinfo", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    shown = frame[
        [
            "study",
            "executor",
            "workers",
            "startup_s",
            "all_workers_s",
            "first_batch_s",
            "compute_s",
            "round_trip_s",
            "overhead_s",
            "throughput_s_per_batch",
        ]
    ]
    text = [
        "# Per-batch overhead of SLURM workers against local ones",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{os.cpu_count()} cores, {slurm_version}, one-node SLURM of slurm/local-slurm.sh; "
        f"1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after: "
        "other work shared the cores).",
        "",
        f"Batches of {args.batch_size} replications of the smoke study's condition (N = 100). "
        "`startup_s`: opening the pool until its first worker connected; `all_workers_s`: until "
        "all had; `first_batch_s`: a first batch on every worker at once (its imports of "
        "simstudy and JAX and its compilation; the persistent compilation cache was warm); "
        "`compute_s`: one batch computed in the driver's process (median); "
        f"`round_trip_s`: one batch at a time through the pool, median of {args.batches} after "
        "a warm-up batch per worker; `overhead_s` = round trip - compute; "
        f"`throughput_s_per_batch`: {args.batches} batches at once, wall time / batches. "
        "Seconds.",
        "",
        frame_markdown(shown, digits=3),
        "",
    ]
    (OUT / "slurm_overhead.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
