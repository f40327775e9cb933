"""The ``FAMILY`` contract: what every model offers the engine, hand-written or compiled."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax

from simstudy.models.base import Dataset, Estimator
from simstudy.spec import ModelInfo
from simstudy.userdata import Columns


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
