"""Model families: each a DGM (``simulate``, ``truth``) with the estimators that fit it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from simstudy.models import cfa, latent_interaction, regression_missing
from simstudy.models.base import Estimator
from simstudy.spec import ModelInfo


@dataclass(frozen=True)
class ModelFamily:
    """A registered model: its declaration, DGM and estimators."""

    info: ModelInfo
    module: ModuleType

    @property
    def estimators(self) -> dict[str, Estimator]:
        """Estimators by name (for a model with a structure: of its default structure)."""
        return self.module.ESTIMATORS

    def estimators_for(self, structure: Mapping[str, Any]) -> dict[str, Estimator]:
        """Estimators for a model structure, built once per distinct structure."""
        if not structure or not hasattr(self.module, "make_estimators"):
            return self.module.ESTIMATORS
        key = (self.info.name, json.dumps(structure, sort_keys=True))
        if key not in _BY_STRUCTURE:
            _BY_STRUCTURE[key] = self.module.make_estimators(structure)
        return _BY_STRUCTURE[key]


_BY_STRUCTURE: dict[tuple[str, str], dict[str, Estimator]] = {}


MODELS: dict[str, ModelFamily] = {
    m.INFO.name: ModelFamily(m.INFO, m) for m in (regression_missing, latent_interaction, cfa)
}


def model_infos() -> dict[str, ModelInfo]:
    """The declarations of all registered models, for config validation."""
    return {name: fam.info for name, fam in MODELS.items()}
