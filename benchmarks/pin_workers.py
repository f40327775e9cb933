"""Two worker processes on two cores, pinned or not: the latent interaction Gibbs sweep's speed.

A local Dask cluster runs one single-threaded worker process per core, but JAX starts about 15
threads in each process. This measures what that costs and what ``executor.pin_cores`` buys:
the full latent interaction sweep (N = 500, ``--lanes`` chains compiled together, as
``profile_gibbs_sweep.py`` measures it) in fresh processes with a Dask worker's environment,

- one process alone, unpinned and pinned to the first core;
- two processes at once, unpinned and each pinned to its own core (what ``pin_cores`` does);

``--rounds`` times over; each cell is the fastest round, every round is in the Parquet.

Usage::

    .venv/bin/python benchmarks/pin_workers.py [--lanes 32] [--sweeps 2000] [--rounds 2]

Writes ``benchmarks/results/pin_workers.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd
from profile_gibbs_sweep import child_command, child_env

OUT = Path(__file__).parent / "results"


def run_at_once(cores: list[int | None], lanes: int, sweeps: int) -> list[float]:
    """µs per sweep and lane of one process per entry of ``cores``, all started together."""
    procs = [
        subprocess.Popen(
            child_command("full sweep", lanes, sweeps, core),
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for core in cores
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a measuring process failed")
    return [json.loads(o.strip().splitlines()[-1])["us_per_sweep_per_lane"] for o in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))[:2]
    cases = {
        "one process, unpinned": [None],
        "one process, pinned": [cores[0]],
        "two at once, unpinned": [None, None],
        "two at once, pinned to a core each": cores,
    }
    rows = []
    for round_ in range(args.rounds):
        for case, where in cases.items():
            for k, us in enumerate(run_at_once(where, args.lanes, args.sweeps)):
                rows.append({"case": case, "process": k, "round": round_, "us": us})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    OUT.mkdir(exist_ok=True)
    frame.to_parquet(OUT / "pin_workers.parquet", index=False)
    command = (
        f".venv/bin/python benchmarks/pin_workers.py --lanes {args.lanes} "
        f"--sweeps {args.sweeps} --rounds {args.rounds}"
    )
    lines = [
        "# Two worker processes on two cores, pinned or not",
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        "The latent interaction Gibbs sweep (N = 500), µs per sweep and lane, in fresh processes",
        "with a Dask worker's environment; each process's fastest round. Machine throughput is",
        "processes / µs.",
        "",
        "| case | µs per sweep and lane (per process) | sweep-lanes per µs on the machine |",
        "| --- | --- | ---: |",
    ]
    for case in cases:
        best = frame[frame["case"] == case].groupby("process")["us"].min()
        lines.append(f"| {case} | {', '.join(f'{v:.1f}' for v in best)} | {(1 / best).sum():.4f} |")
    (OUT / "pin_workers.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'pin_workers.md'}")


if __name__ == "__main__":
    main()
