"""Time to summarise one fit's draws: ArviZ (per variable) against simstudy's vectorized diagnostics.

``--reps`` latent interaction replications (N = 500, the model yaml's priors) are fitted by the
``bayes`` Gibbs estimator (2 chains × 4,000 draws of 24 estimands, as a study runs it), then
each fit's draws are summarised twice: by ArviZ (``az.ess`` bulk and tail, ``az.rhat``, as
simstudy did before 2026-11-22) and by ``simstudy.engine.summary.summarise_draws`` (same
definitions, :mod:`simstudy.engine.diagnostics`). Reports milliseconds per fit (median over
fits, single-threaded process as a Dask worker) and the largest disagreement.

Usage::

    .venv/bin/python benchmarks/summary_speed.py [--reps 16]

Writes ``benchmarks/results/summary_speed.{parquet,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.execute.pools import WORKER_ENV  # the environment of a Dask worker

ROOT = Path(__file__).parents[1]
OUT = ROOT / "benchmarks" / "results"


def arviz_summary(draws: dict, level: float) -> dict:
    """The ArviZ way: bulk and tail ESS, rank R-hat per variable, moments by NumPy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        dataset = az.convert_to_dataset({k: np.asarray(v, dtype=float) for k, v in draws.items()})
        bulk, tail, rhat = (
            az.ess(dataset, method="bulk"),
            az.ess(dataset, method="tail"),
            az.rhat(dataset),
        )
    alpha = (1 - level) / 2
    out = {}
    for name, values in draws.items():
        flat = np.asarray(values, dtype=float).reshape(-1)
        lower, upper = np.quantile(flat, [alpha, 1 - alpha])
        out[name] = (float(bulk[name]), float(tail[name]), float(rhat[name]), lower, upper)
    return out


def child(reps: int) -> list[dict]:
    import jax
    from omegaconf import OmegaConf

    from simstudy.config import SamplerSettings
    from simstudy.engine import gibbs
    from simstudy.engine.summary import summarise_draws
    from simstudy.models import latent_interaction as li

    conf = OmegaConf.to_container(
        OmegaConf.load(ROOT / "conf/model/latent_interaction_handwritten.yaml")
    )
    setting = {**conf["params"], "N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    settings = SamplerSettings(name="gibbs", chains=2, warmup=500, draws=4000)
    data = [li.simulate(jax.random.key(r), setting) for r in range(reps)]
    keys = [jax.random.key(1000 + r) for r in range(reps)]
    fits = gibbs.prepare_batch(li.BAYES, data, settings, conf["priors"], reps)(keys)
    arviz_summary(fits[0].draws, 0.95)  # imports and first-call costs outside the timing
    summarise_draws(fits[0].draws, 0.95)
    rows = []
    for i, fit in enumerate(fits):
        start = time.perf_counter()
        ref = arviz_summary(fit.draws, 0.95)
        arviz_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = summarise_draws(fit.draws, 0.95)
        ours_s = time.perf_counter() - start
        ess_rel = max(
            max(abs(ours[k].ess_bulk - r[0]) / r[0], abs(ours[k].ess_tail - r[1]) / r[1])
            for k, r in ref.items()
        )
        rhat_abs = max(abs(ours[k].rhat - r[2]) for k, r in ref.items())
        limits_abs = max(
            max(abs(ours[k].lower - r[3]), abs(ours[k].upper - r[4])) for k, r in ref.items()
        )
        rows.append(
            {
                "rep": i,
                "estimands": len(fit.draws),
                "arviz_ms": 1e3 * arviz_s,
                "simstudy_ms": 1e3 * ours_s,
                "max_rel_ess_diff": ess_rel,
                "max_abs_rhat_diff": rhat_abs,
                "max_abs_limit_diff": limits_abs,
                "min_ess_bulk": min(s.ess_bulk for s in ours.values()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.reps)))
        return
    env = {**os.environ, **WORKER_ENV, "SIMSTUDY_JAX_CACHE": "off"}
    cmd = [sys.executable, __file__, "--child", "--reps", str(args.reps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    table = pd.DataFrame(json.loads(out.strip().splitlines()[-1]))
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "summary_speed.parquet", index=False)
    med = table[["arviz_ms", "simstudy_ms"]].median()
    text = "\n".join(
        [
            "# Summarising one fit's draws: ArviZ against simstudy's vectorized diagnostics",
            "",
            f"`.venv/bin/python benchmarks/summary_speed.py --reps {args.reps}` on "
            f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one single-threaded "
            "process. Draws: latent interaction `bayes` fits, N = 500, 2 chains × 4,000 draws "
            f"of {int(table['estimands'].iloc[0])} estimands (min bulk ESS median "
            f"{table['min_ess_bulk'].median():,.0f}).",
            "",
            "| summary | ms per fit (median) | min | max |",
            "| --- | ---: | ---: | ---: |",
            f"| ArviZ (az.ess bulk, tail; az.rhat) | {med['arviz_ms']:.1f} | "
            f"{table['arviz_ms'].min():.1f} | {table['arviz_ms'].max():.1f} |",
            f"| simstudy summarise_draws | {med['simstudy_ms']:.1f} | "
            f"{table['simstudy_ms'].min():.1f} | {table['simstudy_ms'].max():.1f} |",
            "",
            f"Speed-up {med['arviz_ms'] / med['simstudy_ms']:.1f}×. Largest disagreement over "
            f"all fits and estimands: ESS (bulk, tail) relative "
            f"{table['max_rel_ess_diff'].max():.1e}, R-hat absolute "
            f"{table['max_abs_rhat_diff'].max():.1e}, interval limits absolute "
            f"{table['max_abs_limit_diff'].max():.1e}.",
            "",
        ]
    )
    (OUT / "summary_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
