"""Shapes shared by every model family: datasets and the two kinds of estimator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

#: A data set: a flat mapping of fixed-shape arrays, with masks for missing values. Every
#: replication of a condition has the same shapes, so one compiled program serves them all.
Dataset = Mapping[str, Any]


class Estimate(NamedTuple):
    """A closed-form estimate of one parameter."""

    estimate: float
    se: float
    lower: float
    upper: float


@dataclass(frozen=True)
class SampledEstimator:
    """An estimator fitted by MCMC.

    Parameters
    ----------
    name
        Estimator name used in configs and results.
    model
        A plain NumPyro model function taking the arrays of :attr:`data` as keyword arguments.
    data
        ``(dataset, priors) -> dict`` of the model's keyword arguments (arrays and prior scales).
    derive
        ``samples -> draws``: maps the sampled sites (leading dims chains × draws) to the
        estimands by lavaan-style name, computing derived quantities per draw.
    parameters
        The estimand names :attr:`derive` returns.
    """

    name: str
    model: Callable[..., None]
    data: Callable[[Dataset, Mapping[str, float]], dict[str, Any]]
    derive: Callable[[Mapping[str, Any]], dict[str, Any]]
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class ClosedFormEstimator:
    """An estimator with estimates and standard errors in closed form.

    Parameters
    ----------
    name
        Estimator name used in configs and results.
    fit
        ``(dataset, level) -> {parameter: Estimate}``; raises on data it cannot fit.
    parameters
        The estimand names :attr:`fit` returns.
    """

    name: str
    fit: Callable[[Dataset, float], dict[str, Estimate]]
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class GibbsEstimator:
    """An estimator fitted by a conditional-update (Gibbs-type) sampler written in JAX.

    Each function is pure and traceable, so the engine compiles warm-up and sampling for all
    chains into one program per data shape.

    Parameters
    ----------
    name
        Estimator name used in configs and results.
    init
        ``(rng_key, data, priors) -> state``: a (dispersed) starting state of one chain.
    step
        ``(rng_key, state, data, priors) -> state``: one sweep of conditional updates.
    collect
        ``(state, data) -> dict``: the estimands (scalars) recorded after each sweep.
    parameters
        The estimand names :attr:`collect` returns.
    warmup_step
        Optional sweep used during warm-up instead of :attr:`step`, e.g. one that also tunes
        Metropolis proposal scales kept in the state (sampling then uses them frozen).
    prepare
        Optional ``data -> data``: constants derived from the data once per fit (e.g. sums
        over persons that every sweep needs), added to what ``init``, ``step``, ``collect``
        and imputation analyses receive.
    """

    name: str
    init: Callable[..., Any]
    step: Callable[..., Any]
    collect: Callable[..., dict[str, Any]]
    parameters: tuple[str, ...]
    warmup_step: Callable[..., Any] | None = None
    prepare: Callable[..., Any] | None = None


@dataclass(frozen=True)
class ImputationEstimator:
    """Draws from a Gibbs sampler's posterior, analysed by a complete-data method and pooled.

    Parameters
    ----------
    name
        Estimator name.
    sampler
        The Gibbs estimator whose states are drawn.
    imputations
        M, the number of states (spread over the chains and the run) analysed.
    analyse
        ``(state, data) -> (estimates, variances)``: the complete-data analysis of one state,
        two dicts keyed by parameter name (traceable).
    parameters
        Estimand names.
    """

    name: str
    sampler: GibbsEstimator
    imputations: int
    analyse: Callable[..., Any]
    parameters: tuple[str, ...]


Estimator = SampledEstimator | ClosedFormEstimator | GibbsEstimator | ImputationEstimator


def to_numpy(dataset: Dataset) -> dict[str, np.ndarray]:
    """Copy a dataset's arrays to NumPy (for closed-form estimators and saving)."""
    return {k: np.asarray(v) for k, v in dataset.items()}
