"""Time and peak memory of aggregation at 10^6 and 10^7 replication rows.

Synthetic records in the replication schema (conditions × reps × estimators × parameters) are
written once per size as a results directory (``condition=<id>/batch-*.parquet``) and as one
Parquet file; each is then summarised by ``simstudy aggregate`` in a fresh process whose peak
resident memory (ru_maxrss) and wall time are recorded. Bounded memory shows as a peak that
does not grow with the number of rows.

Usage::

    .venv/bin/python benchmarks/aggregate_scale.py [--sizes 1e6 1e7] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simstudy.design import condition_id
from simstudy.store import batch_path, replication_schema

ESTIMATORS = ("bayes", "fs_imputation", "sum_score_ols", "bayes_cc", "ols_cc")
PARAMETERS = tuple(f"p{i}" for i in range(10))
REPS = 1000
BATCH = 100
OUT = Path(__file__).parent / "results"


def condition_frame(k: int) -> tuple[dict, pd.DataFrame]:
    """All records of condition ``k``: REPS × estimators × parameters rows."""
    rng = np.random.default_rng(k)
    # Every condition distinct: N runs over k, the other factors cycle.
    cond = {"N": 100 + k, "effect": float(0.1 * (k % 5)), "rate": float(k % 4) / 10}
    cid = condition_id(cond)
    n = REPS * len(ESTIMATORS) * len(PARAMETERS)
    rep = np.repeat(np.arange(REPS), len(ESTIMATORS) * len(PARAMETERS))
    est = np.tile(np.repeat(np.array(ESTIMATORS), len(PARAMETERS)), REPS)
    par = np.tile(np.array(PARAMETERS), REPS * len(ESTIMATORS))
    truth = np.full(n, 0.3)
    se = rng.uniform(0.05, 0.15, n)
    estimate = truth + rng.normal(0, 1, n) * se
    status = np.where(rng.uniform(size=n) < 0.01, "failed", "ok")
    frame = pd.DataFrame(
        {
            "study": "bench",
            "condition_id": cid,
            **{k2: v for k2, v in cond.items()},
            "rep": rep,
            "seed": rep,
            "estimator": est,
            "parameter": par,
            "truth": truth,
            "estimate": estimate,
            "se": se,
            "lower": estimate - 1.96 * se,
            "upper": estimate + 1.96 * se,
            "ess_bulk": rng.uniform(200, 2000, n),
            "ess_tail": rng.uniform(200, 2000, n),
            "rhat": rng.uniform(0.999, 1.02, n),
            "n_divergent": rng.poisson(0.05, n),
            "status": status,
            "error": np.where(status == "ok", "", "boom"),
            "seconds": rng.uniform(0.1, 1.0, n),
        }
    )
    return cond, frame


def make_inputs(rows: int, work: Path) -> tuple[Path, Path]:
    """Write ``rows`` records as a results directory and as one Parquet file."""
    per = REPS * len(ESTIMATORS) * len(PARAMETERS)
    n_cond = max(1, rows // per)
    study = work / f"rows{rows}" / "bench"
    single = work / f"rows{rows}.parquet"
    if study.exists() and single.exists():
        return study, single
    schema = replication_schema({"N": "int", "effect": "float", "rate": "float"})
    writer = pq.ParquetWriter(single, schema)
    for k in range(n_cond):
        cond, frame = condition_frame(k)
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        writer.write_table(table)
        for b, start in enumerate(range(0, REPS, BATCH)):
            path = batch_path(study, condition_id(cond), b)
            path.parent.mkdir(parents=True, exist_ok=True)
            part = table.filter(
                pa.compute.and_(
                    pa.compute.greater_equal(table["rep"], start),
                    pa.compute.less(table["rep"], start + BATCH),
                )
            )
            pq.write_table(part, path)
    writer.close()
    return study, single


def measure(path: Path, out: Path) -> tuple[float, float]:
    """Run ``simstudy aggregate`` in a child process; (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    code = (
        "import resource, sys; from simstudy.cli import main; "
        f"rc = main(['aggregate', {str(path)!r}, '--out', {str(out)!r}, '--tables', {str(out.parent / 'tables')!r}]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_kib = int(
        next(line for line in proc.stdout.splitlines() if line.startswith("PEAK")).split()[1]
    )
    return seconds, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    parser.add_argument("--work", type=Path, default=Path("/tmp/simstudy-bench-aggregate"))
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows_out = []
    for size in args.sizes:
        rows = int(size)
        t0 = time.perf_counter()
        study, single = make_inputs(rows, args.work)
        print(f"inputs for {rows:,} rows ready in {time.perf_counter() - t0:.0f}s", flush=True)
        for kind, path in (("results directory", study), ("one Parquet file", single)):
            out = args.work / f"out-{rows}-{kind.split()[0]}" / "summary.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            seconds, peak = measure(path, out)
            n_summary = pq.ParquetFile(out).metadata.num_rows
            rows_out.append(
                {
                    "rows": rows,
                    "input": kind,
                    "seconds": round(seconds, 1),
                    "peak_rss_mib": round(peak),
                    "summary_rows": n_summary,
                    "input_mib": round(
                        sum(
                            f.stat().st_size
                            for f in ([path] if path.is_file() else path.rglob("*.parquet"))
                        )
                        / 2**20
                    ),
                }
            )
            print(rows_out[-1], flush=True)
    table = pd.DataFrame(rows_out)
    OUT.mkdir(exist_ok=True)
    table.to_parquet(OUT / "aggregate_scale.parquet", index=False)
    machine = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    lines = [
        "# Aggregation at scale",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/aggregate_scale.py', *sys.argv[1:]])}` on {machine}.",
        "Peak RSS is the whole `simstudy aggregate` process (Python, pandas, pyarrow included).",
        "",
        "| rows | input | input MiB | seconds | peak RSS MiB | summary rows |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['rows']:,} | {r['input']} | {r['input_mib']} | {r['seconds']} | {r['peak_rss_mib']} | {r['summary_rows']:,} |"
        )
    (OUT / "aggregate_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
