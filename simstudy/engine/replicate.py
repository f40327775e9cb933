"""One replication: seed -> simulate -> fit each estimator -> one record per estimand.

This is the Generate/Analyse step of a study, run inside a worker. Anything that raises while
simulating or fitting becomes ``status='failed'`` rows carrying the error, never an exception
that would lose the rest of the batch.
"""

from __future__ import annotations

import math
import time
import traceback
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from simstudy.config import SamplerSettings, StudyPlan
from simstudy.design import condition_id, rep_seed, seed_words
from simstudy.engine import gibbs, nuts
from simstudy.engine.nuts import Draws
from simstudy.engine.summary import Summary, sbc_ranks, summarise_draws
from simstudy.models import MODELS
from simstudy.models.base import (
    ClosedFormEstimator,
    Dataset,
    Estimator,
    GibbsEstimator,
    ImputationEstimator,
    SampledEstimator,
)

Record = dict[str, Any]
_NAN = float("nan")


def key_from_seed(seed: int) -> jax.Array:
    """The JAX key of a replication seed (threefry, from the seed's two 32-bit words)."""
    return jax.random.wrap_key_data(jnp.asarray(seed_words(seed), dtype=jnp.uint32))


def estimator_key(rep_key: jax.Array, name: str) -> jax.Array:
    """Key of one estimator's fit: depends on the estimator's name, not its position."""
    return jax.random.fold_in(rep_key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def simulate_key(rep_key: jax.Array) -> jax.Array:
    """Key of the data simulation of a replication."""
    return jax.random.fold_in(rep_key, 0)


def setting_of(plan: StudyPlan, condition: Mapping[str, Any]) -> dict[str, Any]:
    """Model parameters with the condition's levels on top (a factor may vary a parameter)."""
    setting = {**plan.model.params, **condition}
    if plan.model.structure:
        setting["structure"] = plan.model.structure
    return setting


def fit_estimator(
    estimator: Estimator,
    dataset: Dataset,
    rng_key: jax.Array,
    sampler: SamplerSettings,
    priors: Mapping[str, float],
    level: float,
) -> tuple[dict[str, Summary], int, float]:
    """Fit one estimator to one data set (a replication, or a user's data).

    Returns
    -------
    summaries, n_divergent, seconds
        Per-estimand summaries, divergent transitions (0 when not MCMC) and the wall time of
        the fit itself (compilation, done once per shape, is excluded).
    """
    if isinstance(estimator, ClosedFormEstimator | ImputationEstimator):
        if isinstance(estimator, ImputationEstimator):  # compile outside the timing
            gibbs.imputation_program(estimator, sampler, priors, dataset)
        start = time.perf_counter()
        if isinstance(estimator, ImputationEstimator):
            estimates = gibbs.impute_and_pool(estimator, dataset, rng_key, sampler, priors, level)
        else:
            estimates = estimator.fit(dataset, level)
        seconds = time.perf_counter() - start
        summaries = {
            name: Summary(e.estimate, e.se, e.lower, e.upper, _NAN, _NAN, _NAN)
            for name, e in estimates.items()
        }
        return summaries, 0, seconds
    draws, seconds = posterior_draws(estimator, dataset, rng_key, sampler, priors)
    start = time.perf_counter()
    summaries = summarise_draws(draws.draws, level)
    return summaries, draws.n_divergent, seconds + time.perf_counter() - start


def posterior_draws(
    estimator: SampledEstimator | GibbsEstimator,
    dataset: Dataset,
    rng_key: jax.Array,
    sampler: SamplerSettings,
    priors: Mapping[str, float],
) -> tuple[Draws, float]:
    """Draws of a sampled estimator, and the seconds of sampling (compilation excluded)."""
    if isinstance(estimator, GibbsEstimator):
        data = dataset
        run = gibbs.prepare(estimator, data, sampler, priors)
    else:
        data = estimator.data(dataset, priors)
        run = nuts.prepare(estimator, data, sampler)
    start = time.perf_counter()
    draws = run(rng_key, data)
    return draws, time.perf_counter() - start


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def failed_records(
    base: Record,
    available: Mapping[str, Estimator],
    estimators: Sequence[str],
    truth: Mapping[str, float],
    error: str,
    seconds: float = _NAN,
) -> list[Record]:
    """Rows for fits that did not happen or did not finish: every estimand, status failed."""
    rows = []
    for name in estimators:
        for parameter in available[name].parameters:
            rows.append(
                {
                    **base,
                    "estimator": name,
                    "parameter": parameter,
                    "truth": truth.get(parameter, _NAN),
                    "estimate": _NAN,
                    "se": _NAN,
                    "lower": _NAN,
                    "upper": _NAN,
                    "ess_bulk": _NAN,
                    "ess_tail": _NAN,
                    "rhat": _NAN,
                    "n_divergent": 0,
                    "status": "failed",
                    "error": error,
                    "seconds": seconds,
                }
            )
    return rows


def run_replication(plan: StudyPlan, condition: Mapping[str, Any], rep: int) -> list[Record]:
    """Simulate and fit one replication; one record per estimator × estimand.

    Parameters
    ----------
    plan
        The validated study.
    condition
        Factor levels of the condition.
    rep
        Replication index within the condition.
    """
    family = MODELS[plan.model.name]
    available = family.estimators_for(plan.model.structure)
    cid = condition_id(condition)
    setting = setting_of(plan, condition)
    seed = rep_seed(plan.seed, cid, rep)
    base = {"study": plan.name, "condition_id": cid, **condition, "rep": rep, "seed": seed}
    key = key_from_seed(seed)
    sbc = plan.kind == "sbc"
    truth: dict[str, float] = {} if sbc else family.module.truth(setting)
    try:
        if sbc:  # parameters drawn from the prior, data from them
            dataset, truth = family.module.simulate_prior(
                simulate_key(key), setting, plan.model.priors
            )
        else:
            dataset = family.module.simulate(simulate_key(key), setting)
        dataset = jax.block_until_ready(dataset)
    except Exception as exc:  # the DGM failing is data too
        return failed_records(
            base, available, plan.estimators, truth, "simulate: " + _error_text(exc)
        )
    rows: list[Record] = []
    for name in plan.estimators:
        estimator = available[name]
        start = time.perf_counter()
        if sbc:
            try:
                rows += _sbc_records(
                    base, estimator, dataset, truth, estimator_key(key, name), plan
                )
            except Exception as exc:
                rows += failed_records(
                    base, available, [name], truth, _error_text(exc), time.perf_counter() - start
                )
            continue
        try:
            summaries, n_div, seconds = fit_estimator(
                estimator,
                dataset,
                estimator_key(key, name),
                plan.sampler,
                plan.model.priors,
                plan.level,
            )
        except Exception as exc:
            rows += failed_records(
                base, available, [name], truth, _error_text(exc), time.perf_counter() - start
            )
            continue
        for parameter in estimator.parameters:
            s = summaries[parameter]
            rows.append(
                {
                    **base,
                    "estimator": name,
                    "parameter": parameter,
                    "truth": truth[parameter],
                    **s._asdict(),
                    "n_divergent": n_div,
                    "status": "ok" if math.isfinite(s.estimate) else "failed",
                    "error": "" if math.isfinite(s.estimate) else "non-finite estimate",
                    "seconds": seconds,
                }
            )
    return rows


def _sbc_records(
    base: Record,
    estimator: SampledEstimator | GibbsEstimator,
    dataset: Dataset,
    truth: Mapping[str, float],
    rng_key: jax.Array,
    plan: StudyPlan,
) -> list[Record]:
    """Records of one SBC fit: the usual summary plus the rank of the prior draw."""
    draws, seconds = posterior_draws(estimator, dataset, rng_key, plan.sampler, plan.model.priors)
    summaries = summarise_draws(draws.draws, plan.level)
    ranks, n_kept = sbc_ranks(draws.draws, truth)
    return [
        {
            **base,
            "estimator": estimator.name,
            "parameter": parameter,
            "truth": truth[parameter],
            **summaries[parameter]._asdict(),
            "n_divergent": draws.n_divergent,
            "status": "ok",
            "error": "",
            "seconds": seconds,
            "sbc_rank": ranks[parameter],
            "sbc_draws": n_kept,
        }
        for parameter in estimator.parameters
    ]


def run_batch(plan: StudyPlan, condition: Mapping[str, Any], reps: Sequence[int]) -> list[Record]:
    """Run several replications of one condition (the unit of work of the executor)."""
    rows: list[Record] = []
    for rep in reps:
        rows += run_replication(plan, condition, rep)
    return rows


def failed_batch(
    plan: StudyPlan, condition: Mapping[str, Any], reps: Sequence[int], error: str
) -> list[Record]:
    """Rows for a batch whose task itself died (e.g. its worker was killed), rep by rep."""
    family = MODELS[plan.model.name]
    available = family.estimators_for(plan.model.structure)
    cid = condition_id(condition)
    truth = family.module.truth(setting_of(plan, condition))
    rows: list[Record] = []
    for rep in reps:
        base = {
            "study": plan.name,
            "condition_id": cid,
            **condition,
            "rep": rep,
            "seed": rep_seed(plan.seed, cid, rep),
        }
        rows += failed_records(base, available, plan.estimators, truth, "task: " + error)
    return rows
