"""The contract between models and the engine: data sets, estimator kinds and ``Family``.

Below both the hand-written families (:mod:`simstudy.models`) and the compiled ones
(:mod:`simstudy.spec`), so that the engine imports nothing of ``models/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import numpy as np

from simstudy.spec.declare import ModelInfo
from simstudy.userdata import Columns

#: A data set: a flat mapping of fixed-shape arrays, with masks for missing values. Every
#: replication of a condition has the same shapes, so one compiled program serves them all.
Dataset = Mapping[str, Any]


class Estimate(NamedTuple):
    """A closed-form estimate of one parameter."""

    estimate: float
    se: float
    lower: float
    upper: float

    @classmethod
    def t_interval(cls, estimate: float, se: float, dof: float, level: float) -> Estimate:
        """``estimate`` with a t interval on ``dof`` degrees of freedom (normal: ``inf``)."""
        from scipy import stats

        tq = float(stats.t.ppf(0.5 + level / 2, dof))
        return cls(float(estimate), float(se), float(estimate - tq * se), float(estimate + tq * se))


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


@dataclass(frozen=True, eq=False)
class Family:
    """A model: its declaration, data-generating model and estimators.

    Parameters
    ----------
    info
        The declaration config validation reads (factors, parameters, priors, estimators).
    simulate
        ``(rng_key, setting) -> Dataset``; ``setting`` is the model's parameters with the
        condition's levels on top (and ``structure`` for a model with one). Traceable.
    truth
        ``setting -> {parameter: value}``: the true values of every estimand.
    make_estimators
        ``structure -> {name: Estimator}``, called once per distinct structure.
    simulate_prior
        ``(rng_key, setting, priors) -> (Dataset, truth)``: parameters from the prior, then
        data (simulation-based calibration); None when the family has none.
    from_frame
        ``(frame, structure) -> Dataset``: a user's table for ``simstudy fit``; None if none.
    columns
        ``structure -> Columns``: the columns of a user's table ``from_frame`` reads
        (:class:`simstudy.userdata.Columns`, checked by :func:`simstudy.userdata.model_data`).
    """

    info: ModelInfo
    simulate: Callable[[jax.Array, Mapping[str, Any]], Dataset]
    truth: Callable[[Mapping[str, Any]], dict[str, float]]
    make_estimators: Callable[[Mapping[str, Any]], dict[str, Estimator]]
    simulate_prior: Callable[..., tuple[Dataset, dict[str, float]]] | None = None
    from_frame: Callable[..., Dataset] | None = None
    columns: Callable[..., Columns] | None = None
    _by_structure: dict[str, dict[str, Estimator]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.info.name

    @property
    def estimators(self) -> dict[str, Estimator]:
        """Estimators of the default structure."""
        return self.estimators_for({})

    def estimators_for(self, structure: Mapping[str, Any] | None) -> dict[str, Estimator]:
        """Estimators for a model structure, built once per distinct structure."""
        key = json.dumps(structure or {}, sort_keys=True)
        if key not in self._by_structure:
            self._by_structure[key] = self.make_estimators(structure or {})
        return self._by_structure[key]
