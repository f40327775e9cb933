"""One replication: seed -> simulate -> fit each estimator -> one record per estimand.

This is the Generate/Analyse step of a study, run inside a worker. Anything that raises while
simulating or fitting becomes ``status='failed'`` rows carrying the error, never an exception
that would lose the rest of the batch.
"""

from __future__ import annotations

import functools
import json
import math
import time
import traceback
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from simstudy.config import BATCHED_SAMPLERS, SamplerSettings, StudyPlan
from simstudy.contract import Dataset, Estimator, Family, GibbsEstimator, SampledEstimator
from simstudy.design import condition_id, rep_seed, seed_words
from simstudy.engine import gibbs
from simstudy.engine.dispatch import chain_name, kind_of, point_summaries, posterior_draws
from simstudy.engine.summary import Summary, sbc_ranks, summarise_draws
from simstudy.models import family_of
from simstudy.usercode import UserCodeError

Record = dict[str, Any]
#: The longest error text a record keeps.
ERROR_CHARS = 4000
_NAN = float("nan")


def key_from_seed(seed: int) -> jax.Array:
    """The JAX key of a replication seed (threefry, from the seed's two 32-bit words)."""
    return jax.random.wrap_key_data(jnp.asarray(seed_words(seed), dtype=jnp.uint32))


def estimator_key(rep_key: jax.Array, name: str) -> jax.Array:
    """Key of one estimator's fit: depends on the estimator's name, not its position."""
    return jax.random.fold_in(rep_key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def fitting_units(plan: StudyPlan) -> list[tuple[str, str | None]]:
    """The study's estimators as units of fitting, in order: ``(name, partner)``.

    ``partner`` is the imputation estimator that analyses the chains of Gibbs estimator
    ``name`` when the study fits both (one program fits the pair); otherwise None, and an
    imputation estimator fitted with its sampler has no unit of its own.
    """
    available = family_of(plan.model).estimators_for(plan.model.structure)
    partners: dict[str, str] = {}
    for name in plan.estimators:
        source = kind_of(available[name]).chains_of(available[name])
        if source is not None and available.get(source.name) is source:
            if source.name in plan.estimators:
                partners.setdefault(source.name, name)
    paired = set(partners.values())
    return [(name, partners.get(name)) for name in plan.estimators if name not in paired]


def compiled_units(plan: StudyPlan) -> list[str]:
    """The fitting units (:func:`fitting_units`) that run a compiled program, in order."""
    available = family_of(plan.model).estimators_for(plan.model.structure)
    return [name for name, _ in fitting_units(plan) if kind_of(available[name]).compiled]


def sampler_for(plan: StudyPlan, name: str) -> SamplerSettings:
    """The sampler settings estimator ``name`` runs with: those of the chains it draws."""
    available = family_of(plan.model).estimators_for(plan.model.structure)
    return plan.sampler_of(chain_name(available[name]))


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
    point: str = "mean",
) -> tuple[dict[str, Summary], int, float]:
    """Fit one estimator to one data set (a replication, or a user's data).

    ``point`` is the point estimate of sampled estimators (``mean`` or ``median``).

    Returns
    -------
    summaries, n_divergent, seconds
        Per-estimand summaries, divergent transitions (0 when not MCMC) and the wall time of
        the fit itself (compilation, done once per shape, is excluded).
    """
    return kind_of(estimator).fit(estimator, dataset, rng_key, sampler, priors, level, point)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, UserCodeError):  # its message holds the user's own traceback
        return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"[:ERROR_CHARS]


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


class _Rep(NamedTuple):
    """A simulated replication, ready to fit."""

    base: Record
    key: jax.Array
    dataset: Dataset
    truth: dict[str, float]


_SIMULATORS: dict[tuple[str, str], Any] = {}


def compiled_simulate(family: Family, setting: Mapping[str, Any]) -> Any:
    """``family.simulate`` for one setting as one compiled program, kept for the process.

    Run op by op, a model's simulation dispatches dozens of small operations, each compiled
    on its first use in a process (seconds per worker) and dispatched from Python on every
    data set; compiled, it is one program per condition, loaded from JAX's persistent cache
    when there. XLA may fuse its arithmetic, so a data set can differ from the op-by-op one in
    the last bit; studies always simulate through this function.
    """
    key = (family.name, json.dumps(setting, sort_keys=True, default=repr))
    fn = _SIMULATORS.get(key)
    if fn is None:
        fn = _SIMULATORS[key] = jax.jit(functools.partial(family.simulate, setting=dict(setting)))
    return fn


def _simulate(plan: StudyPlan, condition: Mapping[str, Any], rep: int) -> _Rep | list[Record]:
    """Simulate replication ``rep``; the failed rows instead where the DGM fails."""
    family = family_of(plan.model)
    cid = condition_id(condition)
    setting = setting_of(plan, condition)
    seed = rep_seed(plan.seed, cid, rep)
    base = {"study": plan.name, "condition_id": cid, **condition, "rep": rep, "seed": seed}
    key = key_from_seed(seed)
    sbc = plan.kind == "sbc"
    truth: dict[str, float] = {}
    try:
        if sbc:  # parameters drawn from the prior, data from them
            dataset, truth = family.simulate_prior(simulate_key(key), setting, plan.model.priors)
        else:
            truth = family.truth(setting)
            dataset = compiled_simulate(family, setting)(simulate_key(key))
        dataset = jax.block_until_ready(dataset)
        _check_representable(dataset)
    except Exception as exc:  # the DGM failing is data too
        available = family.estimators_for(plan.model.structure)
        return failed_records(
            base, available, plan.estimators, truth, "simulate: " + _error_text(exc)
        )
    return _Rep(base, key, dataset, truth)


@jax.jit
def _holds_infinity(dataset: Any) -> jax.Array:
    """Whether any float array of a data set holds an infinity (one scalar leaves the device)."""
    leaves = [
        x for x in jax.tree_util.tree_leaves(dataset) if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    return jnp.any(jnp.stack([jnp.isinf(x).any() for x in leaves])) if leaves else jnp.bool_(False)


def _check_representable(dataset: Any) -> None:
    """Raise when a simulated data set holds infinities (its values overflowed float32)."""
    if bool(_holds_infinity(dataset)):
        raise OverflowError(
            "the simulated data set holds infinite values: the model's parameters give "
            "values a float32 sampler cannot represent"
        )


def _truth_or_none(family: Any, setting: Mapping[str, Any]) -> dict[str, float]:
    """The condition's true values; none (NaN in the rows) where computing them fails."""
    try:
        return family.truth(setting)
    except Exception:  # the rows say why the batch failed; the truth cannot be had
        return {}


def _estimate_rows(
    rep: _Rep,
    estimator: Estimator,
    summaries: Mapping[str, Summary],
    n_div: int,
    seconds: float,
) -> list[Record]:
    rows = []
    for parameter in estimator.parameters:
        s = summaries[parameter]
        ok = math.isfinite(s.estimate)
        rows.append(
            {
                **rep.base,
                "estimator": estimator.name,
                "parameter": parameter,
                "truth": rep.truth[parameter],
                **s._asdict(),
                "n_divergent": n_div,
                "status": "ok" if ok else "failed",
                "error": "" if ok else "non-finite estimate",
                "seconds": seconds,
            }
        )
    return rows


def _fit_rows(plan: StudyPlan, rep: _Rep, name: str) -> list[Record]:
    """Fit estimator ``name`` to one replication; its rows (failed rows if it raises)."""
    available = family_of(plan.model).estimators_for(plan.model.structure)
    estimator = available[name]
    start = time.perf_counter()
    key = estimator_key(rep.key, chain_name(estimator))
    try:
        if plan.kind == "sbc":
            return _sbc_records(rep.base, estimator, rep.dataset, rep.truth, key, plan)
        summaries, n_div, seconds = fit_estimator(
            estimator,
            rep.dataset,
            key,
            sampler_for(plan, name),
            plan.model.priors,
            plan.level,
            plan.point_estimate,
        )
    except Exception as exc:
        return failed_records(
            rep.base, available, [name], rep.truth, _error_text(exc), time.perf_counter() - start
        )
    return _estimate_rows(rep, estimator, summaries, n_div, seconds)


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
    simulated = _simulate(plan, condition, rep)
    if not isinstance(simulated, _Rep):
        return simulated
    if plan.kind == "sbc":
        return [row for name in plan.estimators for row in _fit_rows(plan, simulated, name)]
    rows: list[Record] = []
    for name, partner in fitting_units(plan):
        if partner:
            rows += _fit_shared(plan, [simulated], name, partner, None)
        else:
            rows += _fit_rows(plan, simulated, name)
    return rows


def _fit_shared(
    plan: StudyPlan, reps: Sequence[_Rep], name: str, imputation: str, width: int | None
) -> list[Record]:
    """Fit Gibbs estimator ``name`` and the imputation estimator of its chains in one program.

    See :func:`fitting_units`; ``width=None``: one replication, unbatched program.

    The sampler's rows get the sampling time; the imputation's rows the time of its
    complete-data analyses' pooling (its analyses run inside the shared program). If the
    program raises, each estimator is fitted on its own, replication by replication.
    """
    available = family_of(plan.model).estimators_for(plan.model.structure)
    sampler, imputer = available[name], available[imputation]
    keys = [estimator_key(rep.key, name) for rep in reps]
    try:
        run = gibbs.prepare_imputation_batch(
            imputer,
            [rep.dataset for rep in reps],
            sampler_for(plan, name),
            plan.model.priors,
            width,
            True,
        )
        start = time.perf_counter()
        fits = run(keys)
        summaries = [summarise_draws(d.draws, plan.level, plan.point_estimate) for d, _ in fits]
        sample_s = (time.perf_counter() - start) / len(reps)
        start = time.perf_counter()
        pooled = [gibbs.pool(imputer, *analyses, plan.level) for _, analyses in fits]
        pool_s = (time.perf_counter() - start) / len(reps)
    except Exception:
        return [row for rep in reps for n in (name, imputation) for row in _fit_rows(plan, rep, n)]
    rows: list[Record] = []
    for rep, summary, estimates in zip(reps, summaries, pooled, strict=True):
        rows += _estimate_rows(rep, sampler, summary, 0, sample_s)
        rows += _estimate_rows(rep, imputer, point_summaries(estimates), 0, pool_s)
    return rows


def _fit_together(plan: StudyPlan, reps: Sequence[_Rep], name: str) -> list[Record]:
    """Fit estimator ``name`` to several replications in one program (``sampler.vectorize``).

    Closed-form estimators, estimators of a sampler that fits one replication at a time (NUTS),
    and any batch whose program raises, are fitted one replication at a time, so a failure
    stays with its replication.
    """
    estimator = family_of(plan.model).estimators_for(plan.model.structure)[name]
    batch = kind_of(estimator).batch
    sampler = sampler_for(plan, name)
    if batch is None or sampler.name not in BATCHED_SAMPLERS:
        return [row for rep in reps for row in _fit_rows(plan, rep, name)]
    keys = [estimator_key(rep.key, chain_name(estimator)) for rep in reps]
    try:
        summaries, n_div, seconds = batch(
            estimator,
            [rep.dataset for rep in reps],
            keys,
            sampler,
            plan.model.priors,
            sampler.vectorize,
            plan.level,
            plan.point_estimate,
        )
    except Exception:
        return [row for rep in reps for row in _fit_rows(plan, rep, name)]
    rows: list[Record] = []
    for rep, summary, divergent in zip(reps, summaries, n_div, strict=True):
        rows += _estimate_rows(rep, estimator, summary, divergent, seconds)
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
    sampler = plan.sampler_of(chain_name(estimator))
    draws, seconds = posterior_draws(estimator, dataset, rng_key, sampler, plan.model.priors)
    summaries = summarise_draws(draws.draws, plan.level, plan.point_estimate)
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
    """Run several replications of one condition (the unit of work of the executor).

    An estimator whose sampler has ``vectorize = w > 1`` fits the replications ``w`` at a
    time in one compiled program (the last group padded to ``w``); rows come out replication
    by replication as without it.
    """
    units = fitting_units(plan)
    widths = {name: sampler_for(plan, name).vectorize for name, _ in units}
    if plan.kind == "sbc" or max(widths.values(), default=1) <= 1:
        return [row for rep in reps for row in run_replication(plan, condition, rep)]
    simulated = [_simulate(plan, condition, rep) for rep in reps]
    fitted: dict[int, list[Record]] = {s.base["rep"]: [] for s in simulated if isinstance(s, _Rep)}
    for name, partner in units:
        width = widths[name]
        for first in range(0, len(simulated), width):
            ready = [s for s in simulated[first : first + width] if isinstance(s, _Rep)]
            if not ready:
                continue
            if partner:
                together = _fit_shared(plan, ready, name, partner, width if width > 1 else None)
            elif width > 1:
                together = _fit_together(plan, ready, name)
            else:
                together = [row for rep in ready for row in _fit_rows(plan, rep, name)]
            for row in together:
                fitted[row["rep"]].append(row)
    rows: list[Record] = []
    for s in simulated:
        rows += fitted[s.base["rep"]] if isinstance(s, _Rep) else s
    return rows


def compile_unit(plan: StudyPlan, condition: Mapping[str, Any], name: str) -> str:
    """Compile the program of fitting unit ``name`` for ``condition``, fitting nothing.

    The program is the one :func:`run_batch` runs for the unit (see :func:`fitting_units`).

    Run as a task of its own per (condition, unit) before the condition's batches, so that
    each program is compiled once by one worker and the others load it from JAX's persistent
    cache, instead of every worker compiling every program at once. Never raises: a program
    that does not compile is left for the batches to fail on, as rows. Returns the error text
    ('' when compiled).
    """
    try:
        simulated = _simulate(plan, condition, 0)  # rep 0: every rep has the same shapes
        if not isinstance(simulated, _Rep):
            return "simulate failed"
        partner = dict(fitting_units(plan)).get(name)
        available = family_of(plan.model).estimators_for(plan.model.structure)
        estimator, data = available[name], simulated.dataset
        sampler, priors = sampler_for(plan, name), plan.model.priors
        width = sampler.vectorize
        batched = width > 1 and sampler.name in BATCHED_SAMPLERS
        if partner:
            imputer = available[partner]
            gibbs.prepare_imputation_batch(
                imputer, [data], sampler, priors, width if width > 1 else None, True
            )
        else:
            kind = kind_of(estimator)
            lanes = width if batched and kind.batch is not None else None
            kind.compile(estimator, data, sampler, priors, lanes)
    except Exception as exc:
        return _error_text(exc)
    return ""


def failed_batch(
    plan: StudyPlan, condition: Mapping[str, Any], reps: Sequence[int], error: str
) -> list[Record]:
    """Rows for a batch whose task itself died (e.g. its worker was killed), rep by rep."""
    family = family_of(plan.model)
    available = family.estimators_for(plan.model.structure)
    cid = condition_id(condition)
    truth = _truth_or_none(family, setting_of(plan, condition))
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
