"""Page faults and kernel time of Dask workers fitting the latent interaction study, by malloc setting.

A local cluster as ``simstudy run`` starts it (one single-threaded worker per core, each
pinned to its core), fitting batches of the latent interaction study (``bayes`` only, N = 500,
``--width`` replications per compiled program) with and without
:class:`~simstudy.execute.pinning.KeepFreedMemory`. Each worker first fits one batch (compile,
not measured); then every worker fits ``--batches`` more, and the workers' own counters
(``getrusage``: minor page faults, user and kernel CPU seconds, peak resident memory) and the
wall time of those batches are recorded. Variants alternate, ``--rounds`` times over, each in
a fresh cluster.

Usage::

    .venv/bin/python benchmarks/malloc_workers.py [--width 32] [--batches 2] [--rounds 2]

Writes ``benchmarks/results/malloc_workers.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import time
from pathlib import Path

import pandas as pd
from distributed import Client, LocalCluster

from simstudy.cli import load_plan
from simstudy.design import expand_grid
from simstudy.engine.replicate import run_batch
from simstudy.execute.pinning import KeepFreedMemory, PinCores
from simstudy.execute.pools import WORKER_ENV

OUT = Path(__file__).parent / "results"


def usage() -> dict[str, float]:
    """This process's counters (run in a worker)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "minflt": r.ru_minflt,
        "user_s": r.ru_utime,
        "sys_s": r.ru_stime,
        "rss_mb": r.ru_maxrss / 1024,
    }


def measure(keep: bool, width: int, batches: int, draws: int) -> list[dict]:
    """One fresh cluster: warm every worker, then time ``batches`` batches per worker."""
    plan = load_plan(
        [
            "study=latent_interaction",
            "study.estimators=[bayes]",
            "study.factors.N=[500]",
            f"sampler.draws={draws}",
            f"sampler.vectorize={width}",
            f"executor.batch_size={width}",
        ]
    )
    condition = expand_grid(plan.factors, plan.exclude)[0]
    cores = sorted(os.sched_getaffinity(0))
    with (
        LocalCluster(
            n_workers=len(cores),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=WORKER_ENV,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(PinCores(cores))
        if keep:
            client.register_plugin(KeepFreedMemory())
        workers = sorted(client.scheduler_info()["workers"])
        start = 0

        def wave(n_each: int) -> None:
            nonlocal start
            futures = []
            for w in workers:
                for _ in range(n_each):
                    reps = list(range(start, start + width))
                    futures.append(
                        client.submit(run_batch, plan, condition, reps, workers=[w], pure=False)
                    )
                    start += width
            client.gather(futures)

        wave(1)  # compile in every worker
        before = client.run(usage)
        t0 = time.perf_counter()
        wave(batches)
        wall = time.perf_counter() - t0
        after = client.run(usage)
    rows = []
    for w in workers:
        row = {k: after[w][k] - before[w][k] for k in ("minflt", "user_s", "sys_s")}
        rows.append(
            {
                "keep_freed_memory": keep,
                "worker": w,
                "wall_s": wall,
                "s_per_rep": wall / (batches * width * len(workers)),
                **row,
                "faults_per_s": row["minflt"] / wall,
                "peak_rss_mb": after[w]["rss_mb"],
            }
        )
    return rows


def table(frame: pd.DataFrame, command: str) -> str:
    """The markdown page: per variant and round, workers summed (RSS: the larger worker)."""
    per = frame.groupby(["round", "keep_freed_memory"], sort=False).agg(
        wall_s=("wall_s", "first"),
        s_per_rep=("s_per_rep", "first"),
        faults_per_s=("faults_per_s", "sum"),
        user_s=("user_s", "sum"),
        sys_s=("sys_s", "sum"),
        peak_rss_mb=("peak_rss_mb", "max"),
    )
    lines = [
        "# Dask workers' page faults and kernel time, by malloc setting",
        "",
        f"Produced by `{command}` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Latent interaction study, `bayes` only, N = 500, default chains and warm-up; one pinned",
        "single-threaded worker per core, compiled before the clock starts. Faults, user and",
        "kernel seconds: both workers summed, over the timed batches; peak RSS: the larger",
        "worker's peak over its life.",
        "",
        "| round | KeepFreedMemory | wall s | s/rep | minor faults/s | user s | kernel s "
        "| kernel share | peak RSS MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (rnd, keep), r in per.iterrows():
        share = r["sys_s"] / (r["user_s"] + r["sys_s"])
        lines.append(
            f"| {rnd} | {'on' if keep else 'off'} | {r['wall_s']:.1f} | {r['s_per_rep']:.3f} | "
            f"{r['faults_per_s']:,.0f} | {r['user_s']:.1f} | {r['sys_s']:.1f} | {share:.1%} | "
            f"{r['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for rnd in range(args.rounds):
        for keep in (False, True):
            for row in measure(keep, args.width, args.batches, args.draws):
                rows.append({**row, "round": rnd})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "malloc_workers.parquet")
    command = (
        f".venv/bin/python benchmarks/malloc_workers.py --width {args.width} "
        f"--batches {args.batches} --draws {args.draws} --rounds {args.rounds}"
    )
    (OUT / "malloc_workers.md").write_text(table(frame, command))
    print(f"wrote {OUT / 'malloc_workers.md'}")


if __name__ == "__main__":
    main()
