"""Model families: each a DGM (``simulate``, ``truth``) with the estimators that fit it.

The registry holds the hand-written families (each module's ``FAMILY``); a model config with a
``syntax`` is compiled into a family by :mod:`simstudy.spec.family` instead.
"""

from __future__ import annotations

from typing import Any

from simstudy.contract import Family
from simstudy.models import cfa
from simstudy.spec import ModelInfo

#: Hand-written families by name.
MODELS: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in (cfa,)}


def model_infos() -> dict[str, ModelInfo]:
    """The declarations of all registered models, for config validation."""
    return {name: fam.info for name, fam in MODELS.items()}


def family_of(model: Any) -> Family:
    """The family of a validated model section (:class:`~simstudy.config.ModelSettings`)."""
    if model.kind == "spec":
        from simstudy.spec.family import family

        return family(model.name, model.structure)
    return MODELS[model.name]
