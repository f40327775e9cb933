"""The binary GLMM: the compiled Gibbs sweep against NUTS on its NumPyro model, same data.

``conf/model/glmm_binary.yaml`` (``y ~ 1 + x + (1 + x | g)``, correlated random intercept and
slope, J = 50 clusters of mean size 10), probit and logit. Per link, ``--reps`` data sets are
simulated once; the sweep (``bayes``, 2 chains x 500 + 4000 sweeps, one replication per
program) and NUTS (``bayes_hmc``, 2 chains x 500 + 500, NumPyro's defaults) fit each of them
in turn, in a process with a Dask worker's environment (single-threaded XLA), so that a slow
spell of this shared machine falls on both; then the sweep as studies run it, 16
replications per program (``sampler.vectorize=16``, the study's own data sets of the same
condition). Issue 29's gate: the sweep's minimum ESS per second at least 10x NUTS's.
Writes ``benchmarks/results/compare_glmm_binary.{md,parquet}`` (and ``..._pairs.parquet``,
the posterior means' agreement in MCSE units).

    .venv/bin/python benchmarks/compare_glmm_binary.py [--reps 16] [--links probit logit]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import jax
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_engine import (
    GIBBS,
    NUTS,
    agreement,
    batches_in_turn,
    fit_all,
    pairs,
    summary_row,
    summary_table,
)
from mdtable import frame_markdown

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.engine.replicate import compiled_simulate, setting_of
from simstudy.execute.pools import worker_env
from simstudy.models import family_of, model_infos

OUT = Path(__file__).resolve().parent / "results"
CONDITION = {"J": 50, "cluster_size": 10}
#: Replications per program of the sweep as studies run it (``sampler.vectorize``).
WIDTH = 16
#: Issue 29's gate: the sweep's min ESS per second over NUTS's.
GATE = 10.0


def _plan(link: str, *extra: str):
    return plan_from_dict(
        compose_raw(
            [
                "study=glmm_binary",
                f"model.link={link}",
                "study.factors={J: [50], cluster_size: [10]}",
                "+model.estimators={bayes: {kind: gibbs}, bayes_hmc: {kind: hmc}}",
                *extra,
            ]
        ),
        model_infos(),
    )


def run_link(link: str, reps: int) -> dict:
    """One link's rows (run in a process of its own)."""
    plan = _plan(link)
    fam = family_of(plan.model)
    sim = compiled_simulate(fam, setting_of(plan, CONDITION))
    datasets = [sim(jax.random.key(r)) for r in range(reps)]
    ests = fam.estimators_for(plan.model.structure)
    common = list(ests["bayes"].parameters)
    fits = fit_all(
        {"gibbs": (ests["bayes"], GIBBS), "nuts": (ests["bayes_hmc"], NUTS)},
        datasets,
        plan.model.priors,
    )
    (g, g_s, g_c), (n, n_s, n_c) = fits["gibbs"], fits["nuts"]
    model = f"glmm_binary ({link})"
    summary = [
        summary_row(model, "compiled Gibbs", g, g_s, g_c, common),
        summary_row(model, "NUTS (compiled NumPyro model)", n, n_s, n_c, common),
    ]
    # whole programs: with fewer data sets the padded lanes would be counted as sampling time
    full = WIDTH * math.ceil(reps / WIDTH)
    wide = _plan(link, f"study.reps={full}", f"sampler.vectorize={WIDTH}")
    recs, s16, c16 = batches_in_turn({"gibbs": (wide, "bayes")}, CONDITION, full)["gibbs"]
    summary.append(summary_row(model, "compiled Gibbs", recs, s16, c16, common, width=16))
    return {"summary": summary, "pairs": [pairs(model, g, n, common)]}


def gate_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Per link: the sweep's min ESS / s over NUTS's (one replication per program), each width."""
    rows = []
    for model, g in summary.groupby("model", sort=False):
        nuts = g[g.sampler.str.startswith("NUTS")].iloc[0]
        for _, gibbs in g[g.sampler == "compiled Gibbs"].iterrows():
            ratio = gibbs.min_ess_per_s / nuts.min_ess_per_s
            rows.append(
                {
                    "model": model,
                    "Gibbs width": int(gibbs.width),
                    "Gibbs / NUTS (min ESS per s)": ratio,
                    f"gate (>= {GATE:g})": "met" if ratio >= GATE else "NOT met",
                    "converged Gibbs": gibbs.converged,
                    "converged NUTS": nuts.converged,
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=16)
    parser.add_argument("--links", nargs="+", default=["probit", "logit"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    # the code measured: HEAD when the run starts (a commit during the run must not relabel it)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT
    ).stdout.strip()
    os.environ.update(worker_env())
    spawn = multiprocessing.get_context("spawn")
    summary, pair = [], []
    for link in args.links:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            part = pool.submit(run_link, link, args.reps).result()
        summary += part["summary"]
        pair += part["pairs"]
    summary = pd.DataFrame(summary).assign(commit=commit)
    pair = pd.concat(pair, ignore_index=True).assign(commit=commit)
    args.out.mkdir(parents=True, exist_ok=True)
    summary.to_parquet(args.out / "compare_glmm_binary.parquet", index=False)
    pair.to_parquet(args.out / "compare_glmm_binary_pairs.parquet", index=False)
    agree = agreement(pair, ["model"])
    lines = [
        "# The binary GLMM: compiled Gibbs sweep against NUTS",
        "",
        f"Produced by `.venv/bin/python benchmarks/compare_glmm_binary.py --reps {args.reps} "
        f"--links {' '.join(args.links)}` at commit {commit}, on this machine's 2 cores. Model "
        "`conf/model/glmm_binary.yaml` (random intercept and slope, correlated), J = 50 "
        f"clusters of mean size 10. Gibbs: {GIBBS.chains} chains x {GIBBS.warmup} + "
        f"{GIBBS.draws} sweeps; NUTS: {NUTS.chains} chains x {NUTS.warmup} + {NUTS.draws}. "
        "Seconds per replication exclude compilation (`compile_s`); minimum bulk ESS over the "
        "estimands (fixed effects and the effects' covariance). Width 16: the study's own "
        "data sets of the same condition, 16 replications per program, as studies run the sweep "
        "(--reps rounded up to a multiple of 16, so that no lane is padding).",
        "",
        summary_table(summary),
        "",
        f"The gate (issue 29): the sweep's min ESS per second at least {GATE:g}x NUTS's "
        "(NUTS one replication per program, as studies run it):",
        "",
        frame_markdown(gate_rows(summary)),
        "",
        "Agreement of posterior means, per data set and estimand (z: difference in MCSEs):",
        "",
        frame_markdown(agree.reset_index()),
        "",
    ]
    (args.out / "compare_glmm_binary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
