"""Model families: each a DGM (``simulate``, ``truth``) with the estimators that fit it.

Every model is a spec: a model config with a ``syntax`` is compiled into a family by
:mod:`simstudy.spec.family`. The registry of hand-written families is empty (the last, the
CFA, became conf/model/cfa.yaml and cfa_ordinal.yaml); it stays the seam a Python family would
plug into.
"""

from __future__ import annotations

from typing import Any

from simstudy.contract import Family
from simstudy.spec import ModelInfo

#: Hand-written families by name.
MODELS: dict[str, Family] = {}


def model_infos() -> dict[str, ModelInfo]:
    """The declarations of all registered models, for config validation."""
    return {name: fam.info for name, fam in MODELS.items()}


def family_of(model: Any) -> Family:
    """The family of a validated model section (:class:`~simstudy.config.ModelSettings`)."""
    if model.kind == "spec":
        from simstudy.spec.family import family

        return family(model.name, model.structure)
    return MODELS[model.name]
