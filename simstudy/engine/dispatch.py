"""One entry per estimator kind: how it is labelled, compiled, fitted and batched.

The engine (:mod:`.replicate`), the catalog, ``simstudy fit`` and the exporter ask an
estimator's :class:`Kind` (:func:`kind_of`) what to do with it instead of asking ``isinstance``
each in its own way: a new kind of estimator is one entry here and its module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, get_args

import jax

from simstudy.contract import (
    ClosedFormEstimator,
    Dataset,
    Estimator,
    GibbsEstimator,
    ImputationEstimator,
    SampledEstimator,
)
from simstudy.engine import chees, gibbs, nuts
from simstudy.engine.nuts import Draws
from simstudy.engine.summary import Summary, summarise_draws

_NAN = float("nan")

#: Summaries, divergent transitions and seconds of one fit.
Fit = tuple[dict[str, Summary], int, float]
#: Per replication summaries and divergent transitions, and seconds per replication.
BatchFit = tuple[list[dict[str, Summary]], list[int], float]


@dataclass(frozen=True)
class Kind:
    """What the engine does with one kind of estimator.

    Attributes
    ----------
    label
        The kind in words, for the catalog and ``simstudy fit``'s header.
    bayesian
        Fitted under the model's priors (``simstudy fit`` scales them to the data).
    compiled
        Runs a compiled program: compiled once per condition before its batches.
    fit
        ``(estimator, dataset, key, sampler, priors, level, point) -> (summaries, n_divergent,
        seconds)``: one replication; seconds exclude compilation.
    compile
        ``(estimator, dataset, sampler, priors, width)``: compile the program that
        :attr:`fit` (``width`` None) or :attr:`batch` (``width`` lanes) runs, fitting nothing.
    batch
        ``(estimator, datasets, keys, sampler, priors, width, level, point) -> (summaries,
        n_divergent, seconds per replication)``: several replications in one program; None
        where the kind fits one at a time.
    draws
        ``(estimator, dataset, key, sampler, priors, width=None) -> (Draws, seconds)``: the
        posterior draws of one replication (``width`` lanes: from the batched program, as a
        study fits it) and the seconds of sampling (compilation excluded); None for kinds
        without draws of their own.
    chains_of
        The Gibbs estimator whose chains this one analyses (fitted together with it when
        the study has both), or None.
    """

    label: Callable[[Any], str]
    bayesian: bool
    compiled: bool
    fit: Callable[..., Fit]
    compile: Callable[..., None]
    batch: Callable[..., BatchFit] | None = None
    draws: Callable[..., tuple[Draws, float]] | None = None
    chains_of: Callable[[Any], GibbsEstimator | None] = lambda estimator: None


def point_summaries(estimates: Mapping[str, Any]) -> dict[str, Summary]:
    """Summaries of estimates that are not MCMC draws (no ESS or R-hat)."""
    return {
        name: Summary(e.estimate, e.se, e.lower, e.upper, _NAN, _NAN, _NAN)
        for name, e in estimates.items()
    }


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Closed form


def _closed_fit(est, dataset, key, sampler, priors, level, point) -> Fit:
    estimates, seconds = _timed(lambda: est.fit(dataset, level))
    return point_summaries(estimates), 0, seconds


def _nothing_to_compile(est, dataset, sampler, priors, width) -> None:
    return None


# ---------------------------------------------------------------------------------------
# Sampled: a Gibbs sweep, or a NumPyro model under ChEES or NUTS


def _gibbs_one(est, dataset, sampler, priors) -> tuple[Any, Any]:
    """The compiled one-replication program of a Gibbs estimator, and the data it takes."""
    return gibbs.prepare(est, dataset, sampler, priors), dataset


def _gibbs_batch(est, datasets, sampler, priors, width) -> Any:
    """The compiled ``width``-lane program of a Gibbs estimator (keys -> draws)."""
    return gibbs.prepare_batch(est, datasets, sampler, priors, width)


def _numpyro_one(est, dataset, sampler, priors) -> tuple[Any, Any]:
    """The compiled one-replication ChEES or NUTS program of a NumPyro model, and its data."""
    data = est.data(dataset, priors)
    engine = chees if sampler.name == "chees" else nuts
    return engine.prepare(est, data, sampler), data


def _numpyro_batch(est, datasets, sampler, priors, width) -> Any:
    """The compiled ``width``-lane ChEES program of a NumPyro model (keys -> draws)."""
    return chees.prepare_batch(est, [est.data(d, priors) for d in datasets], sampler, width)


def _sampled_draws(one, batch, est, dataset, key, sampler, priors, width=None):
    if width:
        run = batch(est, [dataset], sampler, priors, width)
        return _timed(lambda: run([key])[0])
    run, data = one(est, dataset, sampler, priors)
    return _timed(lambda: run(key, data))


def _sampled_fit(one, batch, est, dataset, key, sampler, priors, level, point) -> Fit:
    draws, seconds = _sampled_draws(one, batch, est, dataset, key, sampler, priors)
    summaries, more = _timed(lambda: summarise_draws(draws.draws, level, point))
    return summaries, draws.n_divergent, seconds + more


def _sampled_batch(one, batch, est, datasets, keys, sampler, priors, width, level, point):
    run = batch(est, datasets, sampler, priors, width)
    start = time.perf_counter()
    fits = run(keys)
    summaries = [summarise_draws(d.draws, level, point) for d in fits]
    seconds = (time.perf_counter() - start) / len(datasets)
    return summaries, [d.n_divergent for d in fits], seconds


def _sampled_compile(one, batch, est, dataset, sampler, priors, width) -> None:
    if width:
        batch(est, [dataset], sampler, priors, width)
    else:
        one(est, dataset, sampler, priors)


def _sampled(label: str, one: Callable[..., Any], batch: Callable[..., Any]) -> Kind:
    """The entry of a kind that draws from a posterior with programs ``one`` and ``batch``."""
    return Kind(
        # a model that says what it is (a PyMC model translated to NumPyro) keeps its label
        label=lambda est: getattr(getattr(est, "model", None), "label", label),
        bayesian=True,
        compiled=True,
        fit=partial(_sampled_fit, one, batch),
        compile=partial(_sampled_compile, one, batch),
        batch=partial(_sampled_batch, one, batch),
        draws=partial(_sampled_draws, one, batch),
    )


# ---------------------------------------------------------------------------------------
# Imputation: a Gibbs estimator's states analysed by a complete-data method and pooled


def _imputation_fit(est, dataset, key, sampler, priors, level, point) -> Fit:
    gibbs.imputation_program(est, sampler, priors, dataset)  # compiled outside the timing
    estimates, seconds = _timed(
        lambda: gibbs.impute_and_pool(est, dataset, key, sampler, priors, level)
    )
    return point_summaries(estimates), 0, seconds


def _imputation_batch(est, datasets, keys, sampler, priors, width, level, point) -> BatchFit:
    run = gibbs.prepare_imputation_batch(est, datasets, sampler, priors, width)
    start = time.perf_counter()
    pooled = [gibbs.pool(est, *analyses, level) for _, analyses in run(keys)]
    seconds = (time.perf_counter() - start) / len(datasets)
    return [point_summaries(fit) for fit in pooled], [0] * len(datasets), seconds


def _imputation_compile(est, dataset, sampler, priors, width) -> None:
    if width:
        gibbs.prepare_imputation_batch(est, [dataset], sampler, priors, width)
    else:
        gibbs.imputation_program(est, sampler, priors, dataset)


KINDS: dict[type, Kind] = {
    ClosedFormEstimator: Kind(
        label=lambda est: "closed form",
        bayesian=False,
        compiled=False,
        fit=_closed_fit,
        compile=_nothing_to_compile,
    ),
    GibbsEstimator: _sampled("Gibbs sampler", _gibbs_one, _gibbs_batch),
    SampledEstimator: _sampled("NumPyro model", _numpyro_one, _numpyro_batch),  # or PyMC's
    ImputationEstimator: Kind(
        label=lambda est: f"imputation from {est.sampler.name}'s chains",
        bayesian=True,
        compiled=True,
        fit=_imputation_fit,
        compile=_imputation_compile,
        batch=_imputation_batch,
        chains_of=lambda est: est.sampler,
    ),
}

#: Every estimator class the contract declares (the table must have each).
ESTIMATOR_CLASSES: tuple[type, ...] = get_args(Estimator)


def kind_of(estimator: Any) -> Kind:
    """The table's entry for ``estimator``'s class."""
    try:
        return KINDS[type(estimator)]
    except KeyError:
        raise TypeError(
            f"{type(estimator).__name__} is no estimator kind simstudy knows; "
            f"known: {', '.join(c.__name__ for c in KINDS)}"
        ) from None


def chain_name(estimator: Estimator) -> str:
    """The name whose key drives an estimator's chains.

    An estimator that analyses another's chains draws with that one's key: the same states
    whether the two are fitted together in one program or apart.
    """
    source = kind_of(estimator).chains_of(estimator)
    return estimator.name if source is None else source.name


def posterior_draws(
    estimator: Estimator,
    dataset: Dataset,
    rng_key: jax.Array,
    sampler: Any,
    priors: Mapping[str, float],
) -> tuple[Draws, float]:
    """Draws of a sampled estimator, and the seconds of sampling (compilation excluded)."""
    kind = kind_of(estimator)
    if kind.draws is None:
        raise TypeError(f"{estimator.name} ({kind.label(estimator)}) has no posterior draws")
    return kind.draws(estimator, dataset, rng_key, sampler, priors)


def has_draws(estimator: Estimator) -> bool:
    """Whether the estimator gives posterior draws of its own (chains to check and export)."""
    return kind_of(estimator).draws is not None
