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


Estimator = SampledEstimator | ClosedFormEstimator


def to_numpy(dataset: Dataset) -> dict[str, np.ndarray]:
    """Copy a dataset's arrays to NumPy (for closed-form estimators and saving)."""
    return {k: np.asarray(v) for k, v in dataset.items()}
