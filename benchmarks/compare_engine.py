"""The compiled engine against the hand-written samplers and against NUTS, on the same data.

Four comparisons, each on data sets simulated once and handed to both fits:

* ``glmm`` — the two-level GLMM of ``conf/model/glmm.yaml`` (J = 40 clusters of mean size 10,
  sizes 5-15, ICC 0.2, slope variance 0.1, 20 % of x MAR): the compiled Gibbs sweep (``bayes``,
  ``conf/sampler/gibbs.yaml``) against NUTS on the compiled NumPyro model (``bayes_hmc``,
  ``conf/sampler/nuts.yaml``), one replication per program; the Gibbs sweep also 16 at a time
  (``sampler.vectorize = 16``, as studies run it).
* ``regression_missing`` — the default study's condition (N = 250, 30 % of x MAR): the model of
  ``conf/model/regression_missing.yaml`` by the compiled sweep (``bayes``) against NUTS on its
  NumPyro model with the missing x sampled (``bayes_fiml``): the same posterior. (Until the
  hand-written family was retired, ``bayes_fiml`` was its hand-written NumPyro model.)
* ``latent_interaction`` — the seeds' model (N = 500, 3 factors x 3 indicators,
  ``eta_m ~ eta_x``, ``eta_y ~ eta_x + eta_m + eta_x:eta_m``, no missing data): the compiled
  sweep of the spec config ``conf/model/latent_interaction.yaml`` (``bayes``) on the spec's
  simulator, with InverseGamma(2, 0.5) on every (residual) variance and N(0, 10^2) on every
  coefficient. The hand-written Gibbs sampler it was measured against was retired; its rows
  (and the latent model's pairs) are the stored measurement of commit
  :data:`HANDWRITTEN_COMMIT` (same design and priors, on the hand-written simulator's data
  sets), read back from the result files and written again beside the fresh compiled rows.
* ``ordinal_cfa`` — ``conf/study/cfa_ordinal.yaml``'s model (3 factors x 5 five-category probit
  items, N = 500, complete data, marker identification): the compiled sweep of this tree
  against the hand-written sampler deleted after :data:`CFA_HANDWRITTEN_COMMIT`, which runs in
  a checkout of that commit (``--handwritten``; ``handwritten_cfa.py``) in a process of its
  own, on its simulator's data sets, with LKJ correlations and inverse-gamma variances.

The samplers compared take turns on the same data sets (one data set, or one batch of 16, each
in turn), in a process with a Dask worker's environment (single-threaded XLA), so that a slow
spell of this shared machine falls on both. Per (model, sampler): seconds per replication (compilation apart), min bulk ESS over the common
estimands, time per min ESS, max R-hat, the estimands most often slowest; per data set and estimand, the difference of posterior
means in units of its MCSE (``sqrt(mcse_a^2 + mcse_b^2)``, MCSE = SD / sqrt(ESS)).
Writes ``benchmarks/results/compare_engine.{md,parquet}`` (and ``compare_engine_pairs.parquet``).

    .venv/bin/python benchmarks/compare_engine.py [--reps 32] [--models glmm regression latent ordinal_cfa]
        [--out DIR] [--handwritten CHECKOUT]

A run of some models keeps the stored rows of the others (the files are merged by model).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import frame_markdown

from simstudy.cli import compose_raw
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.engine.replicate import (
    compile_unit,
    compiled_simulate,
    fit_estimator,
    key_from_seed,
    run_batch,
    setting_of,
)
from simstudy.execute.pools import worker_env
from simstudy.models import family_of, model_infos
from simstudy.spec.family import family as spec_family
from simstudy.spec.info import PRIOR_DEFAULTS

OUT = Path(__file__).resolve().parent / "results"
#: The commit that last measured the hand-written latent interaction sampler (since retired).
HANDWRITTEN_COMMIT = "e307f73"
#: The latent model's priors here (and in the stored hand-written rows): proper on the latents.
LATENT_PRIORS = ["model.priors.latent_var_shape=2", "model.priors.latent_var_scale=0.5"]
GIBBS = SamplerSettings(name="gibbs", chains=2, warmup=500, draws=4000)
NUTS = SamplerSettings(name="nuts", chains=2, warmup=500, draws=500)


def fit_all(estimators, datasets, priors, seed=0):
    """Fit every data set with each of ``estimators`` (label -> (estimator, sampler)), in turn.

    ``datasets`` and ``priors`` are shared, or mappings label -> that fit's own (the same data
    sets in each fit's format, each sampler's own spelling of the same priors).

    The fits of one data set run one after the other, estimator by estimator, so a slow
    spell of this shared machine falls on all of them alike; the first data set is fitted
    once more up front (its first call compiles). Returns label -> (rows, mean seconds per
    fit, compile seconds).
    """
    data_of = datasets if isinstance(datasets, dict) else dict.fromkeys(estimators, datasets)
    priors_of = priors if set(priors) == set(estimators) else dict.fromkeys(estimators, priors)
    fitters = {
        label: local_fitter(estimator, sampler, data_of[label], priors_of[label], seed)
        for label, (estimator, sampler) in estimators.items()
    }
    return fit_in_turn(fitters, len(next(iter(data_of.values()))))


def local_fitter(estimator, sampler, datasets, priors, seed=0):
    """``fit(rep) -> (rows, seconds)`` of ``estimator`` in this process (:func:`fit_in_turn`).

    ``rep`` None: the first data set with a key of its own (its first call compiles).
    """

    def fit(rep):
        key = key_from_seed(10**6 if rep is None else seed + rep)
        data = datasets[0 if rep is None else rep]
        t0 = time.perf_counter()
        summaries, n_div, _ = jax.block_until_ready(
            fit_estimator(estimator, data, key, sampler, priors, 0.95)
        )
        seconds = time.perf_counter() - t0
        rows = [
            {
                "rep": rep,
                "parameter": k,
                "mean": s.estimate,
                "sd": s.se,
                "ess_bulk": s.ess_bulk,
                "rhat": s.rhat,
                "n_divergent": n_div,
            }
            for k, s in summaries.items()
        ]
        return rows, seconds

    return fit


def fit_in_turn(fitters, reps):
    """Run ``fitters`` (label -> ``fit(rep) -> (rows, seconds)``) data set by data set, in turn.

    Each first fits ``rep=None`` (the first data set, which compiles its program); then for
    each data set every fitter in turn, so a slow spell of this shared machine falls on all of
    them alike. Returns label -> (rows, mean seconds per fit, compile seconds: the first fit's
    seconds less the median fit's).
    """
    first = {label: fit(None)[1] for label, fit in fitters.items()}
    rows = {label: [] for label in fitters}
    seconds = {label: [] for label in fitters}
    for rep in range(reps):
        for label, fit in fitters.items():
            got, took = fit(rep)
            rows[label] += got
            seconds[label].append(took)
    return {
        label: (
            pd.DataFrame(rows[label]),
            float(np.mean(seconds[label])),
            max(first[label] - float(np.median(seconds[label])), 0.0),
        )
        for label in fitters
    }


def batches_in_turn(plans, cond, reps, width=16):
    """Run ``reps`` replications ``width`` at a time with each of ``plans`` (label -> plan).

    Each plan's program is compiled first; then batch by batch, plan by plan, as
    :func:`fit_all` does. Returns label -> (records, seconds per replication, compile seconds).
    """
    compile_s, records, seconds = {}, {}, {}
    for label, (plan, name) in plans.items():
        t0 = time.perf_counter()
        compile_unit(plan, cond, name)
        compile_s[label], records[label], seconds[label] = time.perf_counter() - t0, [], 0.0
    for first in range(0, reps, width):
        batch = list(range(first, min(first + width, reps)))
        for label, (plan, _) in plans.items():
            t0 = time.perf_counter()
            records[label] += run_batch(plan, cond, batch)
            seconds[label] += time.perf_counter() - t0
    return {
        label: (
            pd.DataFrame(records[label]).rename(columns={"estimate": "mean", "se": "sd"}),
            seconds[label] / reps,
            compile_s[label],
        )
        for label in plans
    }


def summary_row(model, sampler, fits, per_rep, compile_s, common, width=1):
    f = fits[fits.parameter.isin(common)]
    min_ess = f.groupby("rep").ess_bulk.min()
    ok = (f.rhat <= 1.01) & (f.ess_bulk >= 400)
    return {
        "model": model,
        "sampler": sampler,
        "width": width,
        "reps": int(min_ess.size),
        "compile_s": compile_s,
        "seconds_per_rep": per_rep,
        "min_ess_median": float(min_ess.median()),
        "min_ess_min": float(min_ess.min()),
        "s_per_min_ess": float((per_rep / min_ess).median()),
        "min_ess_per_s": float((min_ess / per_rep).median()),
        "max_rhat": float(f.rhat.max()),
        "converged": float(ok.groupby(f.rep).all().mean()),
        "divergent_fits": int((f.groupby("rep").n_divergent.max() > 0).sum()),
        "slowest": _slowest(f),
    }


def _slowest(fits: pd.DataFrame, top: int = 3) -> str:
    """The estimands most often lowest in bulk ESS over the replications, with their counts."""
    lowest = fits.loc[fits.groupby("rep").ess_bulk.idxmin(), "parameter"].value_counts()
    return ", ".join(f"{name} ({n})" for name, n in lowest.head(top).items())


def pairs(model, a, b, common):
    m = a.merge(b, on=["rep", "parameter"], suffixes=("_a", "_b"))
    m = m[m.parameter.isin(common)]
    mcse = np.sqrt(m.sd_a**2 / m.ess_bulk_a + m.sd_b**2 / m.ess_bulk_b)
    return m.assign(model=model, z=(m.mean_a - m.mean_b) / mcse)[
        ["model", "rep", "parameter", "mean_a", "mean_b", "z"]
    ]


def summary_table(summary: pd.DataFrame) -> str:
    """The summary rows as a Markdown table, ESS columns named for readers."""
    return frame_markdown(
        summary.rename(
            columns={
                "min_ess_median": "min ESS (median)",
                "min_ess_min": "min ESS (worst)",
                "s_per_min_ess": "s per min ESS",
                "min_ess_per_s": "min ESS / s",
            }
        )
    )


def agreement(pair: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of :func:`pairs` rows: how many, the share within 3 MCSE, max |z|, mean z."""
    return pair.groupby(by).agg(
        comparisons=("z", "size"),
        within_3_mcse=("z", lambda z: float((z.abs() <= 3).mean())),
        max_abs_z=("z", lambda z: float(z.abs().max())),
        mean_z=("z", "mean"),
    )


def glmm(reps, out):
    plan = plan_from_dict(
        compose_raw(
            [
                "study=glmm",
                "study.factors={J: [40], cluster_size: [10], icc: [0.2], slope_var: [0.1], "
                "missing_rate: [0.2], mechanism: [MAR]}",
                f"study.reps={reps}",
            ]
        ),
        model_infos(),
    )
    cond = {
        "J": 40,
        "cluster_size": 10.0,
        "icc": 0.2,
        "slope_var": 0.1,
        "missing_rate": 0.2,
        "mechanism": "MAR",
    }
    fam = family_of(plan.model)
    sim = compiled_simulate(fam, setting_of(plan, cond))
    datasets = [sim(jax.random.key(r)) for r in range(reps)]
    ests = fam.estimators_for(plan.model.structure)
    common = list(ests["bayes"].parameters)
    fits = fit_all(
        {"gibbs": (ests["bayes"], GIBBS), "nuts": (ests["bayes_hmc"], NUTS)},
        datasets,
        plan.model.priors,
    )
    (g, g_s, g_c), (n, n_s, n_c) = fits["gibbs"], fits["nuts"]
    out["summary"] += [
        summary_row("glmm", "compiled Gibbs", g, g_s, g_c, common),
        summary_row("glmm", "NUTS (compiled NumPyro model)", n, n_s, n_c, common),
    ]
    out["pairs"].append(pairs("glmm", g, n, common))
    # as studies run it: 16 replications per program, through the engine's batch runner
    wide = plan_from_dict(
        compose_raw(
            [
                "study=glmm",
                "study.factors={J: [40], cluster_size: [10], icc: [0.2], slope_var: [0.1], "
                "missing_rate: [0.2], mechanism: [MAR]}",
                "sampler.vectorize=16",
            ]
        ),
        model_infos(),
    )
    recs, s16, c16 = batches_in_turn({"gibbs": (wide, "bayes")}, cond, 16)["gibbs"]
    out["summary"].append(summary_row("glmm", "compiled Gibbs", recs, s16, c16, common, width=16))


def regression(reps, out):
    plan = plan_from_dict(
        compose_raw(["study=missing_x", "study.estimators=[bayes]"]), model_infos()
    )
    st = plan.model.structure
    fam = spec_family(plan.model.name, st)
    setting = setting_of(plan, {"N": 250, "missing_rate": 0.3, "mechanism": "MAR"})
    sim = compiled_simulate(fam, setting)
    data = [sim(jax.random.key(r)) for r in range(reps)]
    priors = {**PRIOR_DEFAULTS, **plan.model.priors}
    estimators = fam.estimators_for(st)
    common = list(estimators["bayes_fiml"].parameters)
    fits = fit_all(
        {"gibbs": (estimators["bayes"], GIBBS), "nuts": (estimators["bayes_fiml"], NUTS)},
        data,
        priors,
    )
    (a, a_s, a_c), (b, b_s, b_c) = fits["gibbs"], fits["nuts"]
    out["summary"] += [
        summary_row("regression_missing", "compiled Gibbs", a, a_s, a_c, common),
        summary_row(
            "regression_missing", "bayes_fiml (NUTS, compiled NumPyro model)", b, b_s, b_c, common
        ),
    ]
    out["pairs"].append(pairs("regression_missing", a, b, common))


def latent(reps, out):
    cond = {"N": 500, "missing_rate": 0.0, "mechanism": "MCAR"}
    factors = "study.factors={N: [500], missing_rate: [0.0], mechanism: [MCAR]}"
    base = ["study=latent_interaction", "study.estimators=[bayes]", factors, *LATENT_PRIORS]
    plan = plan_from_dict(compose_raw(base), model_infos())
    fam = family_of(plan.model)
    sim = compiled_simulate(fam, setting_of(plan, cond))
    datasets = [sim(jax.random.key(r)) for r in range(reps)]
    bayes = fam.estimators_for(plan.model.structure)["bayes"]
    # the estimands the hand-written sampler reported (not the indicator intercepts), so that
    # min ESS is over the set of its stored rows
    common = [p for p in bayes.parameters if not p.endswith("~1")]
    a, a_s, a_c = fit_all({"gibbs": (bayes, GIBBS)}, datasets, plan.model.priors)["gibbs"]
    out["summary"].append(summary_row("latent_interaction", "compiled Gibbs", a, a_s, a_c, common))
    # as studies run it: 16 replications per program, through the engine's batch runner
    wide = plan_from_dict(compose_raw([*base, "sampler.vectorize=16"]), model_infos())
    recs, s16, c16 = batches_in_turn({"gibbs": (wide, "bayes")}, cond, reps)["gibbs"]
    row = summary_row("latent_interaction", "compiled Gibbs", recs, s16, c16, common, width=16)
    out["summary"].append(row)


#: The ordinal CFA's study, under marker identification (comparable estimands on both sides).
ORDINAL_CFA = ["study=cfa_ordinal", "model.structure.identification=marker"]


def ordinal_cfa_spec(structure):
    """The hand-written CFA ``structure`` (all items ordinal) written in the syntax.

    Returns the spec, its sweep's layout and the compiled Gibbs estimator with LKJ correlations
    and inverse-gamma variances on the factor block (the hand-written ``factor_cov: lkj``).
    """
    from simstudy.spec import estimators as kinds
    from simstudy.spec import sweep
    from simstudy.spec.ir import from_syntax

    syntax = "\n".join(f"{f} =~ {' + '.join(items)}" for f, items in structure["factors"].items())
    ordered = dict.fromkeys(structure["ordinal"], structure["categories"])
    spec = from_syntax(syntax, ordered=ordered, link=structure["link"])
    lay = sweep.layout(spec)
    families = {"residual": "inverse_gamma", "covariance": "inverse_gamma"}
    return kinds.build(spec, lay, families, {"bayes": {"kind": "gibbs"}})["bayes"]


def spec_columns(data, items):
    """A hand-written CFA data set (``y``, ``observed``: N x p) as the spec's columns."""
    from simstudy.spec.dgm import ROW_REAL, observed_key

    out = {ROW_REAL: jnp.ones(data["y"].shape[0], dtype=bool)}
    for j, x in enumerate(items):
        out[x] = data["y"][:, j]
        out[observed_key(x)] = data["observed"][:, j]
    return out


#: The last commit with the hand-written CFA sampler (``simstudy/models/cfa``), deleted after it.
CFA_HANDWRITTEN_COMMIT = "18f6651"


class HandwrittenCfa:
    """The hand-written ordinal CFA sampler of a checkout of :data:`CFA_HANDWRITTEN_COMMIT`.

    Runs ``handwritten_cfa.py`` there, in a process of its own (the two trees' ``simstudy``
    packages cannot share one), with this process's environment (a Dask worker's); it
    simulates the data sets and fits them when asked, so that its fits and this tree's take
    turns (:func:`fit_in_turn`).
    """

    def __init__(self, checkout: Path, reps: int, folder: Path) -> None:
        self.data_path = folder / "handwritten_cfa_data.npz"
        script = Path(__file__).resolve().parent / "handwritten_cfa.py"
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        command = [sys.executable, str(script), "--reps", str(reps), "--data", str(self.data_path)]
        command += ["--warmup", str(GIBBS.warmup), "--draws", str(GIBBS.draws)]
        command += ["--chains", str(GIBBS.chains)]
        self.process = subprocess.Popen(
            command, cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.info = self._answer()
        loaded = np.load(self.data_path)
        self.datasets = [
            {"y": jnp.asarray(y), "observed": jnp.asarray(o)}
            for y, o in zip(loaded["y"], loaded["observed"], strict=True)
        ]

    def _answer(self) -> dict:
        from handwritten_cfa import PREFIX

        for line in self.process.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
        raise SystemExit(f"handwritten_cfa.py ended (exit {self.process.wait()})")

    def fit(self, rep):
        """``rep`` None: the warm-up fit (compiles); else data set ``rep`` (seed ``rep``)."""
        self.process.stdin.write("warm\n" if rep is None else f"fit {rep}\n")
        self.process.stdin.flush()
        got = self._answer()
        return got.get("rows", []), got["seconds"]

    def close(self) -> None:
        """Ends the process."""
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def ordinal_cfa(reps, out, handwritten=None, folder=OUT):
    """The compiled sweep of this tree against the hand-written sampler of ``handwritten``.

    ``handwritten``: a checkout of :data:`CFA_HANDWRITTEN_COMMIT` (the hand-written sampler's
    last commit); its simulator makes the data sets, both fit them in turn under the same
    priors (LKJ correlations, inverse-gamma variances: the hand-written ``factor_cov: lkj``).
    """
    if handwritten is None:
        raise SystemExit(
            "ordinal_cfa compares against the hand-written CFA sampler, deleted after commit "
            f"{CFA_HANDWRITTEN_COMMIT}: name a checkout of that commit with --handwritten PATH "
            f"(git worktree add PATH {CFA_HANDWRITTEN_COMMIT})"
        )
    from simstudy.spec.info import with_prior_defaults

    hand = HandwrittenCfa(Path(handwritten), reps, folder)
    st = hand.info["structure"]
    if set(st["ordinal"]) != {x for items in st["factors"].values() for x in items}:
        raise SystemExit("ordinal_cfa: every item of the hand-written config must be ordinal")
    spec_data = [spec_columns(d, hand.info["items"]) for d in hand.datasets]
    compiled = ordinal_cfa_spec(st)
    numbers = {k: hand.info["priors"][k] for k in ("coef_sd", "var_shape", "var_scale", "lkj_eta")}
    common = sorted(set(hand.info["parameters"]) & set(compiled.parameters))
    local = local_fitter(compiled, GIBBS, spec_data, with_prior_defaults(numbers))
    fits = fit_in_turn({"compiled": local, "hand": hand.fit}, reps)
    hand.close()
    (a, a_s, a_c), (b, b_s, b_c) = fits["compiled"], fits["hand"]
    hand_row = summary_row("ordinal_cfa", "hand-written Gibbs (models/cfa)", b, b_s, b_c, common)
    out["summary"] += [
        summary_row("ordinal_cfa", "compiled Gibbs", a, a_s, a_c, common),
        {**hand_row, "commit": hand.info["commit"]},
    ]
    out["pairs"].append(pairs("ordinal_cfa", a, b, common))


#: ``--models`` names and the ``model`` column of their rows.
MODEL_NAMES = {
    "glmm": "glmm",
    "regression": "regression_missing",
    "latent": "latent_interaction",
    "ordinal_cfa": "ordinal_cfa",
}


def stored_rows(results: Path, rerun: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored rows and pairs a run keeps: other models', and the retired sampler's.

    Read from ``compare_engine.parquet`` and ``compare_engine_pairs.parquet`` under
    ``results``: the rows of every model not in ``rerun`` (``model`` column values), and
    always the retired hand-written latent interaction sampler's rows and pairs; each keeps
    the commit that measured it (pairs stored without one are of :data:`HANDWRITTEN_COMMIT`).

    Raises
    ------
    SystemExit
        When the stored files hold no retired hand-written rows (they cannot be measured again).
    """
    summary_path = results / "compare_engine.parquet"
    pairs_path = results / "compare_engine_pairs.parquet"
    if not summary_path.is_file() or not pairs_path.is_file():
        raise SystemExit(
            f"{summary_path} and {pairs_path} must hold the hand-written rows of commit "
            f"{HANDWRITTEN_COMMIT}: restore them with git checkout 789b105 -- {results}"
        )
    summary = pd.read_parquet(summary_path)
    retired = (summary.model == "latent_interaction") & summary.sampler.str.startswith(
        "hand-written"
    )
    stored = pd.read_parquet(pairs_path)
    if "commit" not in stored.columns:
        stored = stored.assign(commit=HANDWRITTEN_COMMIT)
    latent_pairs = stored.model == "latent_interaction"
    if not retired.any() or not latent_pairs.any():
        raise SystemExit(f"{summary_path}: no hand-written rows (commit {HANDWRITTEN_COMMIT})")
    keep = retired | ~summary.model.isin(rerun)
    keep_pairs = latent_pairs | ~stored.model.isin(rerun)
    return summary[keep].reset_index(drop=True), stored[keep_pairs].reset_index(drop=True)


def run_model(name: str, reps: int, handwritten: Path | None = None) -> dict:
    """One comparison's rows (run in a process of its own)."""
    out = {"summary": [], "pairs": []}
    comparisons = {
        "glmm": glmm,
        "regression": regression,
        "latent": latent,
    }
    if name == "ordinal_cfa":
        with tempfile.TemporaryDirectory() as folder:
            ordinal_cfa(reps, out, handwritten, Path(folder))
    else:
        comparisons[name](reps, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=32)
    parser.add_argument(
        "--models", nargs="+", default=["glmm", "regression", "latent"], choices=MODEL_NAMES
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where the files are written")
    parser.add_argument(
        "--handwritten",
        type=Path,
        default=None,
        help=f"ordinal_cfa: a checkout of {CFA_HANDWRITTEN_COMMIT} (the hand-written CFA sampler)",
    )
    args = parser.parse_args()
    # before anything is written
    hand, hand_pairs = stored_rows(OUT, [MODEL_NAMES[m] for m in args.models])
    out = {"summary": [], "pairs": []}
    # each comparison in a fresh process, as a worker runs a condition (its environment:
    # single-threaded XLA): run after the others in one process, the 16-wide latent
    # programs ran markedly slower
    os.environ.update(worker_env())
    spawn = multiprocessing.get_context("spawn")
    for name in args.models:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            part = pool.submit(run_model, name, args.reps, args.handwritten).result()
        out["summary"] += part["summary"]
        out["pairs"] += part["pairs"]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT
    ).stdout.strip()
    fresh = pd.DataFrame(out["summary"])
    # a row measured at another commit (the hand-written CFA's checkout) says which
    fresh["commit"] = fresh["commit"].fillna(commit) if "commit" in fresh else commit
    summary = pd.concat([fresh, hand], ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(summary.model))}
    summary = (
        summary.assign(order=summary.model.map(order))
        .sort_values(["order", "width"], kind="stable")
        .drop(columns="order")
        .reset_index(drop=True)
    )
    fresh_pairs = [p.assign(commit=commit) for p in out["pairs"]]
    pair = pd.concat([*fresh_pairs, hand_pairs], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    summary.to_parquet(args.out / "compare_engine.parquet", index=False)
    pair.to_parquet(args.out / "compare_engine_pairs.parquet", index=False)
    agree = agreement(pair, ["model", "commit"])
    handwritten = f" --handwritten {args.handwritten}" if "ordinal_cfa" in args.models else ""
    # compile seconds are a compile's only without JAX's persistent cache (engine.configure_jax)
    off = os.environ.get("SIMSTUDY_JAX_CACHE", "").lower() == "off"
    cache = "SIMSTUDY_JAX_CACHE=off " if off else ""
    ratio = _ratios(summary)
    lines = [
        "# The compiled engine side by side",
        "",
        f"Produced by `{cache}.venv/bin/python benchmarks/compare_engine.py --reps {args.reps} "
        f"--models {' '.join(args.models)}{handwritten}` at commit {commit}, on this "
        "machine's 2 cores "
        f"(one process per comparison). Gibbs: {GIBBS.chains} chains x {GIBBS.warmup} + {GIBBS.draws} sweeps; "
        f"NUTS: {NUTS.chains} chains x {NUTS.warmup} + {NUTS.draws}. Seconds per replication "
        "exclude compilation (`compile_s`, once per program: the first fit's seconds less the "
        "median fit's; with JAX's persistent cache on, a program compiled before is loaded "
        "from it); ESS over the estimands both fits "
        "report (latent interaction: those the hand-written sampler reported, no indicator "
        "intercepts). Rows of the models a run leaves out are the stored rows of the commit "
        "in their `commit` column. The ordinal CFA's hand-written sampler, deleted after "
        f"commit {CFA_HANDWRITTEN_COMMIT}, runs in a checkout of that commit "
        "(`--handwritten`, `benchmarks/handwritten_cfa.py`), in a second process that takes "
        "turns with the compiled sweep on its simulator's data sets (its rows carry that "
        "commit).",
        "",
        f"The hand-written latent interaction sampler was retired after commit "
        f"{HANDWRITTEN_COMMIT}: its rows (`commit` {HANDWRITTEN_COMMIT}) are the stored "
        "measurement of that commit, on the hand-written simulator's data sets of the same "
        "design; the compiled rows are measured afresh on the spec's simulator.",
        "",
        summary_table(summary),
        "",
        "Compiled against hand-written, per model and width: time per minimum ESS (the issue's "
        "gate: at most 1.5, aim 1.2) and the share of converged fits (R-hat <= 1.01 and bulk "
        "ESS >= 400 on every estimand). For the latent interaction model the hand-written side "
        f"is the stored measurement of commit {HANDWRITTEN_COMMIT}; the ordinal CFA's two "
        "samplers took turns on the same data sets in one run (the compiled at this commit):",
        "",
        frame_markdown(ratio) if len(ratio) else "(no model with both)",
        "",
        "Agreement of posterior means, per data set and estimand (z: difference in MCSEs; "
        f"latent interaction: compiled against hand-written, both at commit "
        f"{HANDWRITTEN_COMMIT}, stored):",
        "",
        frame_markdown(agree.reset_index()),
        "",
    ]
    (args.out / "compare_engine.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _ratios(summary: pd.DataFrame) -> pd.DataFrame:
    """Per model and width with both samplers: compiled / hand-written s per min ESS."""
    rows = []
    for (model, width), g in summary.groupby(["model", "width"]):
        comp = g[g.sampler.str.startswith("compiled")]
        hand = g[g.sampler.str.startswith("hand-written")]
        if len(comp) and len(hand):
            c, h = comp.iloc[0], hand.iloc[0]
            rows.append(
                {
                    "model": model,
                    "width": width,
                    "compiled / hand-written (s per min ESS)": c.s_per_min_ess / h.s_per_min_ess,
                    "converged compiled": c.converged,
                    "converged hand-written": h.converged,
                    "compiled at": c.commit,
                    "hand-written at": h.commit,
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
