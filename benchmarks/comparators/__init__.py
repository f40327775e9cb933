"""Comparator samplers for ``benchmarks/compare_samplers.py``.

Every comparator module exposes ``fit(model_name, data, seed) -> FitResult`` for the two
benchmark models (``latent_interaction``, ``cfa_ordinal``; see :mod:`comparators.models`) and
``SETTINGS`` (a one-line description of its sampler settings), and may keep compiled programs
in a module-level cache so that later replications of a condition reuse them. Draws are returned
as estimands by lavaan-style name, shape (chains, draws), computed by the one derivation in
:func:`comparators.models.derive`, so every sampler reports the same quantities.

A module may instead expose ``fit_many(model_name, datas, seeds) -> list[FitResult]``, which
fits all replications of a condition in one call (simstudy's vectorized engine); its time and
peak memory are then the call's, shared out per replication.

Adding a sampler: write a module with ``fit`` (or ``fit_many``) and ``SETTINGS`` and add it to
:data:`SAMPLERS`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np


@dataclass
class FitResult:
    """One fit of one data set.

    Attributes
    ----------
    draws
        Estimand name -> array (chains, draws).
    sampling_seconds
        Wall time of warm-up and sampling (all chains), compilation excluded.
    compile_seconds
        Wall time of model build and compilation spent in this fit (0 when a cached program
        from an earlier replication was reused).
    n_divergent
        Divergent transitions after warm-up (all chains), -1 where the sampler has none.
    note
        Anything worth knowing about this fit (e.g. "compiled program cached by httpstan").
    """

    draws: dict[str, np.ndarray]
    sampling_seconds: float
    compile_seconds: float
    n_divergent: int = -1
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


#: Sampler name -> (comparator module, the packages it needs).
SAMPLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "simstudy_gibbs": ("comparators.simstudy_gibbs", ("simstudy",)),
    "simstudy_vectorized": ("comparators.simstudy_vectorized", ("simstudy",)),
    "numpyro_nuts": ("comparators.numpyro_nuts", ("numpyro",)),
    "pymc_default": ("comparators.pymc_default", ("pymc",)),
    "nutpie": ("comparators.nutpie_pymc", ("nutpie", "pymc")),
    "stan": ("comparators.pystan_stan", ("stan", "httpstan")),
}


def available() -> list[str]:
    """Samplers whose packages are installed."""
    return [
        name
        for name, (_, needs) in SAMPLERS.items()
        if all(importlib.util.find_spec(pkg) is not None for pkg in needs)
    ]


def load(name: str) -> ModuleType:
    """The comparator module of a sampler."""
    return importlib.import_module(SAMPLERS[name][0])
