"""Side-by-side samplers on the same simulated data sets: time, ESS, R-hat and memory per fit.

For each model (``latent_interaction``, ``cfa_ordinal``; see benchmarks/comparators/models.py)
``--reps`` data sets are simulated once with simstudy's own simulators and every sampler fits
all of them. Each (sampler, model) runs in its own worker process (so peak memory and compiled
caches are per sampler, and a crash or a timeout costs only that sampler's remaining fits).
One row per (sampler, model, rep): sampling seconds (warm-up included), compile/build seconds
(and the condition's compile time amortized over its replications), minimum bulk ESS over the
structural and over all estimands, ESS per second, maximum R-hat (ArviZ), divergences, peak
RSS, and ``status``/``error`` (a failing fit is a row, never dropped).

Usage::

    .venv/bin/python benchmarks/compare_samplers.py [--reps 3] [--samplers a,b] [--models a,b]
        [--seed 2025] [--out benchmarks/results] [--timeout 1800]

Writes ``<out>/compare_samplers.parquet`` and ``<out>/compare_samplers.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pickle
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from comparators import SAMPLERS, available, load  # noqa: E402
from comparators import models as bench_models  # noqa: E402

ESS_MIN = 400.0
RHAT_MAX = 1.01
OUT = HERE / "results"


# --- worker: one (sampler, model), all replications ----------------------------------------


class TreeMemory:
    """Peak RSS of this process plus all its descendants, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._psutil = psutil
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        procs = [self._proc]
        with contextlib.suppress(self._psutil.Error):
            procs += self._proc.children(recursive=True)
        for p in procs:
            with contextlib.suppress(self._psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._sample())

    def reset(self) -> None:
        """Start a new measurement window."""
        self.peak = self._sample()

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def diagnostics(draws: dict[str, np.ndarray], structural: tuple[str, ...]) -> dict[str, Any]:
    """Minimum bulk ESS (structural, all) and maximum R-hat (ArviZ) over the estimands."""
    import arviz as az

    names = list(draws)
    stacked = np.stack([np.asarray(draws[n], float) for n in names], axis=-1)  # chains, draws, P
    ds = az.convert_to_dataset({"x": stacked})
    ess = np.asarray(az.ess(ds, method="bulk")["x"].values, float)
    rhat = np.asarray(az.rhat(ds)["x"].values, float)
    is_struct = np.array([n in structural for n in names])
    finite = bool(np.isfinite(stacked).all())
    means = stacked.mean(axis=(0, 1))
    return {
        "min_ess_bulk_structural": float(np.nanmin(ess[is_struct])),
        "min_ess_bulk_all": float(np.nanmin(ess)),
        "min_ess_parameter": names[int(np.nanargmin(ess))],
        "max_rhat_structural": float(np.nanmax(rhat[is_struct])),
        "max_rhat": float(np.nanmax(rhat)),
        "max_rhat_parameter": names[int(np.nanargmax(rhat))],
        "structural_means": json.dumps(
            {n: round(float(m), 4) for n, m in zip(names, means, strict=True) if n in structural}
        ),
        "posterior_means": json.dumps(
            {n: round(float(m), 5) for n, m in zip(names, means, strict=True)}
        ),
        "posterior_sds": json.dumps(
            {n: round(float(v), 5) for n, v in zip(names, stacked.std(axis=(0, 1)), strict=True)}
        ),
        "finite": finite,
        "n_parameters": len(names),
        "n_structural": int(is_struct.sum()),
    }


def _fits(module, model: str, items: list[dict], load_error: str, memory: TreeMemory):
    """``(item, FitResult or the exception, wall seconds)`` per replication.

    A module with ``fit_many`` fits all replications in one call (time shared out, one memory
    window); otherwise each replication is its own ``fit`` and memory window.
    """
    if load_error:
        for item in items:
            yield item, RuntimeError(load_error), 0.0
        return
    if hasattr(module, "fit_many"):
        memory.reset()
        t0 = time.perf_counter()
        try:
            datas, seeds = [i["data"] for i in items], [i["fit_seed"] for i in items]
            results: list = module.fit_many(model, datas, seeds)
        except Exception as exc:
            results = [exc] * len(items)
        wall = (time.perf_counter() - t0) / max(len(items), 1)
        yield from ((item, r, wall) for item, r in zip(items, results, strict=True))
        return
    for item in items:
        memory.reset()
        t0 = time.perf_counter()
        try:
            result = module.fit(model, item["data"], item["fit_seed"])
        except Exception as exc:
            result = exc
        yield item, result, time.perf_counter() - t0


def run_worker(job_path: Path) -> None:
    """Fit every replication of one (sampler, model); one JSON line per replication."""
    job = json.loads(job_path.read_text())
    out = Path(job["rows"])
    with open(job["data"], "rb") as fh:
        payload = pickle.load(fh)
    bench_models.register(payload["spec"])
    datasets = payload["items"]
    sampler, model = job["sampler"], job["model"]
    memory = TreeMemory()
    module = None
    try:
        module = load(sampler)
        shortened = False
        if job.get("warmup") and hasattr(module, "WARMUP"):  # smoke tests only: shorter chains
            module.WARMUP, module.DRAWS, shortened = int(job["warmup"]), int(job["draws"]), True
        if sampler == "stan" and not job.get("warm_caches"):
            module.forget_compiled(model)
        settings, load_error = getattr(module, "SETTINGS", ""), ""
        if shortened:
            settings += f" [smoke test: {job['warmup']} warm-up + {job['draws']} draws]"
    except Exception as exc:
        settings, load_error = "", "import: " + _error_text(exc)
    s = bench_models.spec(model)
    for item, result, wall in _fits(module, model, datasets, load_error, memory):
        row: dict[str, Any] = {
            "sampler": sampler,
            "model": model,
            "rep": item["rep"],
            "data_seed": item["data_seed"],
            "fit_seed": item["fit_seed"],
            "settings": settings,
        }
        try:
            if isinstance(result, BaseException):
                raise result
            diag = diagnostics(result.draws, s.structural)
            ok = diag.pop("finite")
            row.update(
                status="ok" if ok else "failed",
                error="" if ok else "non-finite draws",
                sampling_seconds=result.sampling_seconds,
                compile_seconds=result.compile_seconds,
                fit_wall_seconds=wall,
                n_divergent=result.n_divergent,
                note=result.note,
                **diag,
            )
        except Exception as exc:
            row.update(status="failed", error=_error_text(exc), fit_wall_seconds=wall)
        row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row["peak_tree_rss_mib"] = max(memory.peak, memory._sample()) / 2**20
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    memory.close()


# --- parent ---------------------------------------------------------------------------------


def _failed_row(sampler: str, model: str, item: dict[str, Any], error: str) -> dict[str, Any]:
    return {
        "sampler": sampler,
        "model": model,
        "rep": item["rep"],
        "data_seed": item["data_seed"],
        "fit_seed": item["fit_seed"],
        "status": "failed",
        "error": error[:2000],
    }


def run_condition(
    sampler: str, model: str, data_path: Path, items: list[dict], args, work: Path
) -> list[dict]:
    """One worker process for (sampler, model); rows for every replication, failed ones too."""
    rows_path = work / f"{sampler}-{model}.jsonl"
    log_path = work / f"{sampler}-{model}.log"
    job = {
        "sampler": sampler,
        "model": model,
        "data": str(data_path),
        "rows": str(rows_path),
        "warmup": args.warmup,
        "draws": args.draws,
        "warm_caches": args.warm_caches,
    }
    job_path = work / f"{sampler}-{model}.json"
    job_path.write_text(json.dumps(job))
    limit = args.timeout * len(items)
    env = dict(os.environ)
    if not args.warm_caches:  # compile from scratch: no compiled programs from earlier runs
        env["SIMSTUDY_JAX_CACHE"] = "off"
        compiledir = f"compiledir={work / ('pytensor-' + sampler + '-' + model)}"
        env["PYTENSOR_FLAGS"] = ",".join(
            f for f in (env.get("PYTENSOR_FLAGS", ""), compiledir) if f
        )
    start = time.perf_counter()
    error = ""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(job_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=work,  # httpstan's build writes build/ into the working directory
        )
        try:
            rc = proc.wait(timeout=limit)
            if rc != 0:
                error = f"worker exited with code {rc}: " + _tail(log_path)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            error = f"timeout: {sampler} on {model} not finished after {limit:.0f} s ({args.timeout:.0f} s per replication)"
    print(
        f"  {sampler} on {model}: {time.perf_counter() - start:.0f} s{' (' + error[:200] + ')' if error else ''}",
        flush=True,
    )
    rows = (
        [json.loads(line) for line in rows_path.read_text().splitlines()]
        if rows_path.exists()
        else []
    )
    done = {r["rep"] for r in rows}
    rows += [
        _failed_row(sampler, model, it, error or "no result")
        for it in items
        if it["rep"] not in done
    ]
    return rows


def _tail(path: Path, n: int = 1500) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " ".join(text[-n:].split())


def add_amortized(frame: pd.DataFrame) -> pd.DataFrame:
    """Compile time of each (sampler, model) spread over its replications; derived rates."""
    frame = frame.copy()
    for col in (
        "sampling_seconds",
        "compile_seconds",
        "min_ess_bulk_all",
        "min_ess_bulk_structural",
        "max_rhat",
    ):
        if col not in frame:
            frame[col] = np.nan
    total = frame.groupby(["sampler", "model"])["compile_seconds"].transform(
        lambda c: c.sum(min_count=1)
    )
    n = frame.groupby(["sampler", "model"])["rep"].transform("count")
    frame["compile_seconds_amortized"] = total / n
    frame["seconds_amortized"] = frame["sampling_seconds"] + frame["compile_seconds_amortized"]
    frame["ess_per_second_all"] = frame["min_ess_bulk_all"] / frame["sampling_seconds"]
    frame["ess_per_second_structural"] = (
        frame["min_ess_bulk_structural"] / frame["sampling_seconds"]
    )
    frame["converged"] = (
        (frame["status"] == "ok")
        & (frame["max_rhat"] <= RHAT_MAX)
        & (frame["min_ess_bulk_all"] >= ESS_MIN)
    )
    # Replications per hour if each ran long enough for ESS >= 400 (time scales with draws).
    frame["reps_per_hour_ess400"] = 3600.0 / (
        frame["seconds_amortized"] * np.maximum(1.0, ESS_MIN / frame["min_ess_bulk_all"])
    )
    return frame


def _fmt(x: float, digits: int = 0) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:,.{digits}f}"


def markdown(
    frame: pd.DataFrame, args, started: str, load: tuple[float, float], command: str
) -> str:
    """The summary table, one row per (sampler, model)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Samplers side by side",
        "",
        f"`{command}` on {platform.machine()} ({cpu}), {cores} cores, Python {platform.python_version()}, started {started}.",
        f"Load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end: timings are of a shared machine.",
        "Compilation caches: "
        + (
            "warm (compiled programs from earlier runs reused where cached on disk)."
            if args.warm_caches
            else "cold (httpstan's model, PyTensor's compiledir and simstudy's JAX cache start empty; within the run "
            "each sampler keeps what it compiled)."
        ),
        "",
        "Medians over the replications that finished (`ok` of `reps`). *s/rep*: sampling incl. warm-up,",
        "compilation excluded; *compile s*: total over the condition, then per replication. ESS: ArviZ bulk ESS,",
        "minimum over the structural estimands / over all estimands; ESS/s = min ESS (all) / s. *conv.*: share of",
        f"all replications with max R-hat ≤ {RHAT_MAX} and min ESS (all) ≥ {ESS_MIN:.0f}. *reps/h*: median of",
        f"3600 / (amortized s/rep × max(1, {ESS_MIN:.0f} / min ESS)). *peak MiB*: peak RSS of the worker process and",
        "its children (chain processes), max over replications.",
        "",
        "| sampler | model | ok / reps | s/rep | compile s (total; /rep) | min ESS struct. | min ESS all | ESS/s | max R-hat | conv. | reps/h at ESS≥400 | divergent | peak MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    errors = []
    for (sampler, model), g in frame.groupby(["sampler", "model"], sort=False):
        ok = g[g["status"] == "ok"]
        comp_total = g["compile_seconds"].sum(min_count=1)
        div = ok["n_divergent"].median() if "n_divergent" in ok and len(ok) else np.nan
        peak = g["peak_tree_rss_mib"].max() if "peak_tree_rss_mib" in g else np.nan
        lines.append(
            "| "
            + " | ".join(
                [
                    sampler,
                    model,
                    f"{len(ok)} / {len(g)}",
                    _fmt(ok["sampling_seconds"].median(), 1),
                    f"{_fmt(comp_total, 1)}; {_fmt(g['compile_seconds_amortized'].iloc[0], 1)}",
                    _fmt(ok["min_ess_bulk_structural"].median()),
                    _fmt(ok["min_ess_bulk_all"].median()),
                    _fmt(ok["ess_per_second_all"].median(), 1),
                    _fmt(ok["max_rhat"].max(), 3),
                    f"{g['converged'].mean():.0%}",
                    _fmt(ok["reps_per_hour_ess400"].median(), 1),
                    _fmt(div) if div is not None and np.isfinite(div) and div >= 0 else "–",
                    _fmt(peak),
                ]
            )
            + " |"
        )
        for _, r in g[g["status"] != "ok"].iterrows():
            errors.append(f"- {sampler} / {model} rep {r['rep']}: {str(r['error'])[:400]}")
    settings = (
        frame.dropna(subset=["settings"]).drop_duplicates("sampler")
        if "settings" in frame
        else frame.iloc[:0]
    )
    lines += ["", "Settings:", ""]
    lines += [f"- **{r['sampler']}**: {r['settings']}" for _, r in settings.iterrows()]
    if args.warmup:
        lines += [
            "",
            f"**Smoke test**: chains shortened to {args.warmup} warm-up + {args.draws} draws; not a benchmark.",
        ]
    lines += ratios(frame)
    lines += agreement(frame)
    if errors:
        lines += ["", "Failures:", "", *errors]
    return "\n".join(lines) + "\n"


def ratios(frame: pd.DataFrame) -> list[str]:
    """Median ESS/s of each simstudy row over the best comparator's, per model."""
    out = [
        "",
        "Min ESS (all estimands) per second, simstudy over the best comparator (medians):",
        "",
    ]
    ok = frame[frame["status"] == "ok"]
    rates = ok.groupby(["model", "sampler"])["ess_per_second_all"].median()
    for model in rates.index.get_level_values(0).unique():
        r = rates[model]
        others = r[~r.index.str.startswith("simstudy")]
        if others.empty:
            continue
        best = others.idxmax()
        for own in r.index[r.index.str.startswith("simstudy")]:
            out.append(
                f"- {model}: {own} {r[own]:,.1f} / {best} {others[best]:,.1f} = "
                f"**{r[own] / others[best]:.1f}×**"
            )
    return out


def agreement(frame: pd.DataFrame, reference: str = "stan") -> list[str]:
    """Do the samplers find the same posterior? Mean shift against ``reference``, in its SDs.

    Per replication and estimand ``(mean - mean_ref) / sd_ref``; averaged over the
    replications both fitted (with its standard error over them). A sampler that targets the
    same posterior shows shifts of Monte Carlo size only (about 1 / sqrt(ESS) per fit).
    """
    if "posterior_means" not in frame:
        return []
    ok = frame[(frame["status"] == "ok") & frame["posterior_means"].notna()]
    ref = ok[ok["sampler"] == reference].set_index(["model", "rep"])
    if ref.empty:
        return []
    out = [
        "",
        f"Agreement with {reference}: per estimand the mean over replications of "
        f"(posterior mean − {reference}'s) / {reference}'s posterior SD; the largest in absolute "
        "value, with its standard error over replications.",
        "",
        "| sampler | model | reps | largest shift (SE) | estimand | median abs. shift |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for (sampler, model), g in ok[ok["sampler"] != reference].groupby(["sampler", "model"]):
        shifts = []
        for _, r in g.iterrows():
            if (model, r["rep"]) not in ref.index:
                continue
            base = ref.loc[(model, r["rep"])]
            mine = json.loads(r["posterior_means"])
            mean0, sd0 = json.loads(base["posterior_means"]), json.loads(base["posterior_sds"])
            shifts.append({k: (mine[k] - mean0[k]) / sd0[k] for k in mean0 if sd0[k] > 0})
        if not shifts:
            continue
        table = pd.DataFrame(shifts)
        mean, se = table.mean(), table.std(ddof=1) / np.sqrt(len(table))
        worst = mean.abs().idxmax()
        out.append(
            f"| {sampler} | {model} | {len(table)} | {mean[worst]:+.3f} ({_fmt(se[worst], 3)}) "
            f"| `{worst}` | {mean.abs().median():.3f} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="replications (data sets) per model")
    parser.add_argument(
        "--samplers",
        default=None,
        help="comma list; default every installed one: " + ",".join(SAMPLERS),
    )
    parser.add_argument("--models", default=",".join(bench_models.MODELS), help="comma list")
    parser.add_argument("--seed", type=int, default=2025, help="data seed of rep r is seed + r")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="directory for the parquet and md files"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds per replication before a sampler's worker is killed",
    )
    parser.add_argument(
        "--warm-caches",
        action="store_true",
        help="keep the on-disk caches of compiled programs from earlier runs (httpstan's models, PyTensor's compiledir, "
        "simstudy's JAX cache); by default every sampler compiles from scratch",
    )
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests
    parser.add_argument("--draws", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker)
        return
    if args.warmup and not args.draws:
        args.draws = args.warmup
    command = " ".join(
        [
            ".venv/bin/python",
            "benchmarks/compare_samplers.py",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = os.getloadavg()[0]
    installed = available()
    requested = args.samplers.split(",") if args.samplers else installed
    models = args.models.split(",")
    for m in models:
        bench_models.spec(m)  # fails early on an unknown model
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="compare-samplers-") as tmp:
        work = Path(tmp)
        for model in models:
            print(f"{model}: simulating {args.reps} data sets", flush=True)
            items = []
            for rep in range(args.reps):
                data_seed = args.seed + rep
                items.append(
                    {
                        "rep": rep,
                        "data_seed": data_seed,
                        "fit_seed": (data_seed * 7919 + 1) % 2**31,
                        "data": bench_models.simulate(model, data_seed),
                    }
                )
            data_path = work / f"data-{model}.pkl"
            with open(data_path, "wb") as fh:
                pickle.dump({"spec": bench_models.spec(model), "items": items}, fh)
            for sampler in requested:
                if sampler not in SAMPLERS or sampler not in installed:
                    why = (
                        "unknown sampler"
                        if sampler not in SAMPLERS
                        else "not installed: needs " + ", ".join(SAMPLERS[sampler][1])
                    )
                    rows += [_failed_row(sampler, model, it, why) for it in items]
                    continue
                rows += run_condition(sampler, model, data_path, items, args, work)
    frame = add_amortized(pd.DataFrame(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out / "compare_samplers.parquet", index=False)
    text = markdown(frame, args, started, (load_start, os.getloadavg()[0]), command)
    (args.out / "compare_samplers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
