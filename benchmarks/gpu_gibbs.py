"""Latent interaction Gibbs fits batched over many replications, on a GPU when JAX has one.

The ``bayes`` estimator of the latent interaction model (N = 500, the model yaml's parameters
and priors, 2 chains × (500 + 4000) sweeps as conf/sampler/gibbs.yaml) is compiled for
``width`` replications at once (``gibbs.compile_fit(..., width=width)``, the program a study
runs with ``sampler.vectorize=width``) and run on JAX's default device. Per width: compile
seconds, a first run (allocation, autotuning), a timed second run on new data sets, the copy of
the draws to the host, and the device's peak memory. Replication ``r`` has the same data and
keys at every width, so lanes can be compared across widths and devices.

ESS and R-hat (ArviZ, as every study) are computed for the first ``--check`` lanes of each
width. With ``--reference-cpu`` the first ``--check`` replications are also fitted in a child
process on the CPU backend, and each estimand's posterior mean on the device is compared with
the CPU's in posterior SDs: the chains differ after the first rounding difference (float32 on
both), so the shifts should be Monte Carlo noise, about ``sqrt(2 / ESS)``.

Usage::

    python benchmarks/gpu_gibbs.py [--widths 64 512 2048 8192] [--check 32] [--reference-cpu]
        [--out benchmarks/results]

Writes ``gpu_gibbs.parquet`` (one row per width), ``gpu_gibbs_lanes.parquet`` (one row per
checked lane and estimand) and ``gpu_gibbs.md`` under ``--out``.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def _model_yaml() -> tuple[dict, dict]:
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(
        OmegaConf.load(ROOT / "conf/model/latent_interaction_handwritten.yaml")
    )
    return conf["params"], conf["priors"]


def _settings(warmup: int, draws: int):
    from simstudy.config import SamplerSettings

    return SamplerSettings(name="gibbs", chains=2, warmup=warmup, draws=draws)


def simulate(width: int, seed: int) -> dict:
    """``width`` data sets, replication ``r`` from ``fold_in(key(seed), r)``, stacked."""
    import jax

    from simstudy.models import latent_interaction as li

    params, _ = _model_yaml()
    setting = {**params, "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.key(seed), r))(np.arange(width))
    return jax.jit(jax.vmap(lambda k: li.simulate(k, setting)))(keys)


def fit_keys(width: int, seed: int):
    import jax

    return jax.vmap(lambda r: jax.random.fold_in(jax.random.key(seed + 1), r))(np.arange(width))


def lane_summaries(draws: dict, lanes: int, width: int, device: str) -> list[dict]:
    """ArviZ summaries of the first ``lanes`` replications, one row per lane and estimand."""
    from simstudy.engine.summary import summarise_draws

    rows = []
    for i in range(min(lanes, width)):
        summary = summarise_draws({k: v[i] for k, v in draws.items()}, 0.95)
        rows += [
            {
                "device": device,
                "width": width,
                "lane": i,
                "estimand": name,
                "mean": s.estimate,
                "sd": s.se,
                "ess_bulk": s.ess_bulk,
                "rhat": s.rhat,
            }
            for name, s in summary.items()
        ]
    return rows


def measure(width: int, args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Compile and run ``width`` replications on the default device."""
    import jax

    from simstudy.engine import gibbs
    from simstudy.models import latent_interaction as li

    _, priors = _model_yaml()
    settings = _settings(args.warmup, args.draws)
    device = jax.devices()[0]
    data = simulate(width, args.seed)
    keys = fit_keys(width, args.seed)
    start = time.perf_counter()
    compiled = gibbs.compile_fit(li.BAYES, settings, priors, data, width=width)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(fit_keys(width, args.seed + 7), simulate(width, args.seed + 7)))
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, data))
    run_s = time.perf_counter() - start
    start = time.perf_counter()
    host = {k: np.asarray(v) for k, v in out.items()}
    copy_s = time.perf_counter() - start
    del out
    stats = device.memory_stats() or {}
    lanes = lane_summaries(host, args.check, width, device.platform)
    ess = pd.DataFrame(lanes).groupby("lane").agg(min_ess=("ess_bulk", "min"), rhat=("rhat", "max"))
    sweeps = settings.chains * (settings.warmup + settings.draws)
    row = {
        "device": device.platform,
        "device_kind": device.device_kind,
        "width": width,
        "lanes": width * settings.chains,
        "compile_s": compile_s,
        "first_run_s": first_s,
        "run_s": run_s,
        "copy_s": copy_s,
        "s_per_rep": (run_s + copy_s) / width,
        "us_per_sweep_lane": 1e6 * run_s / (sweeps / settings.chains) / (width * settings.chains),
        "peak_mem_gib": stats.get("peak_bytes_in_use", float("nan")) / 2**30,
        "checked_lanes": len(ess),
        "min_ess_median": float(ess["min_ess"].median()),
        "min_ess_min": float(ess["min_ess"].min()),
        "rhat_max": float(ess["rhat"].max()),
        "converged_share": float(((ess["min_ess"] >= 400) & (ess["rhat"] <= 1.01)).mean()),
    }
    print(json.dumps(row), flush=True)
    return row, lanes


def cpu_reference(args: argparse.Namespace) -> list[dict]:
    """Fit the first ``--check`` replications on the CPU backend in a child process."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "SIMSTUDY_JAX_CACHE": "off"}
    cmd = [sys.executable, __file__, "--child-cpu", "--check", str(args.check)]
    cmd += ["--seed", str(args.seed), "--warmup", str(args.warmup), "--draws", str(args.draws)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def agreement(lanes: pd.DataFrame) -> pd.DataFrame:
    """Per width: device mean minus CPU mean in CPU posterior SDs, over lanes and estimands."""
    ref = lanes[lanes["device"] == "cpu"]
    rows = []
    for width, group in lanes[lanes["device"] != "cpu"].groupby("width"):
        joined = group.merge(ref, on=["lane", "estimand"], suffixes=("", "_cpu"))
        z = ((joined["mean"] - joined["mean_cpu"]) / joined["sd_cpu"]).abs()
        # what the shift would be if the two were independent chains with these ESS
        independent = np.sqrt(2 / np.pi) * np.sqrt(
            1 / joined["ess_bulk"] + 1 / joined["ess_bulk_cpu"]
        )
        rows.append(
            {
                "width": width,
                "pairs": len(z),
                "mean_abs_shift_sd": float(z.mean()),
                "max_abs_shift_sd": float(z.max()),
                "max_shift_estimand": str(joined.loc[z.idxmax(), "estimand"]),
                "independent_abs_shift_sd": float(independent.mean()),
                "max_abs_ess_change": float(
                    (joined["ess_bulk"] - joined["ess_bulk_cpu"]).abs().max()
                ),
            }
        )
    return pd.DataFrame(rows)


def markdown(rows: pd.DataFrame, agree: pd.DataFrame | None, args: argparse.Namespace) -> str:
    import jax

    command = "python benchmarks/gpu_gibbs.py " + " ".join(sys.argv[1:])
    head = [
        "# Latent interaction Gibbs fits batched on one device",
        "",
        f"`{command}` on {rows['device_kind'].iloc[0]} ({rows['device'].iloc[0]}), "
        f"JAX {jax.__version__}, host {platform.machine()} with {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"N = 500, 2 chains × ({args.warmup} + {args.draws}) sweeps, float32, the model yaml's "
        "priors. *width*: replications in one compiled program; *run s*: the second call, on new "
        "data sets (the first call's allocation and autotuning excluded); *s/rep*: (run + copy "
        "of the draws to the host) / width; *µs/sweep/lane*: run time per sweep and chain. ESS "
        f"and R-hat (ArviZ) of the first {args.check} replications of each width: median and "
        "smallest min bulk ESS over the 24 estimands, largest R-hat, share with ESS ≥ 400 and "
        "R-hat ≤ 1.01.",
        "",
        "| width | compile s | first run s | run s | copy s | s/rep | reps/hour | µs/sweep/lane "
        "| peak GiB | min ESS (median; min) | max R-hat | converged |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows.itertuples():
        head.append(
            f"| {r.width} | {r.compile_s:.1f} | {r.first_run_s:.2f} | {r.run_s:.2f} | "
            f"{r.copy_s:.2f} | {r.s_per_rep:.4f} | {3600 / r.s_per_rep:,.0f} | "
            f"{r.us_per_sweep_lane:.3f} | {r.peak_mem_gib:.2f} | "
            f"{r.min_ess_median:,.0f}; {r.min_ess_min:,.0f} | {r.rhat_max:.4f} | "
            f"{r.converged_share:.0%} |"
        )
    if agree is not None and len(agree):
        head += [
            "",
            f"Same data and keys on the CPU backend (first {args.check} replications, float32): "
            "|device posterior mean − CPU posterior mean| in CPU posterior SDs, over replications "
            "× estimands. *if independent*: the mean absolute shift two independent chains of "
            "these ESS would show. The shifts are far smaller: both runs draw the same random "
            "numbers, and a Gibbs sampler driven by the same numbers contracts (coupled chains), "
            "so rounding differences between the backends do not grow along the chain.",
            "",
            "| width | pairs | mean abs. shift | largest (estimand) | if independent | "
            "largest ESS change |",
            "| ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for a in agree.itertuples():
            head.append(
                f"| {a.width} | {a.pairs} | {a.mean_abs_shift_sd:.2g} | "
                f"{a.max_abs_shift_sd:.2g} (`{a.max_shift_estimand}`) | "
                f"{a.independent_abs_shift_sd:.3f} | {a.max_abs_ess_change:.0f} |"
            )
    return "\n".join(head) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 512, 2048, 8192])
    parser.add_argument("--check", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--reference-cpu", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--child-cpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_cpu:  # the CPU reference: the first --check replications, one program
        _, lanes = measure(args.check, args)
        print(json.dumps(lanes))
        return
    lanes: list[dict] = []
    if args.reference_cpu:
        lanes += cpu_reference(args)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for width in args.widths:  # written after every width: a run cut short keeps what it did
        row, width_lanes = measure(width, args)
        rows.append(row)
        lanes += width_lanes
        table, lane_table = pd.DataFrame(rows), pd.DataFrame(lanes)
        agree = agreement(lane_table) if args.reference_cpu else None
        table.to_parquet(args.out / "gpu_gibbs.parquet", index=False)
        lane_table.to_parquet(args.out / "gpu_gibbs_lanes.parquet", index=False)
        text = markdown(table, agree, args)
        (args.out / "gpu_gibbs.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
