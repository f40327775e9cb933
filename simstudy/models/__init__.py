"""Model families: each a DGM (``simulate``, ``truth``) with the estimators that fit it."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from simstudy.config import ModelInfo
from simstudy.models import latent_interaction, regression_missing
from simstudy.models.base import Estimator


@dataclass(frozen=True)
class ModelFamily:
    """A registered model: its declaration, DGM and estimators."""

    info: ModelInfo
    module: ModuleType

    @property
    def estimators(self) -> dict[str, Estimator]:
        """Estimators by name."""
        return self.module.ESTIMATORS


MODELS: dict[str, ModelFamily] = {
    m.INFO.name: ModelFamily(m.INFO, m) for m in (regression_missing, latent_interaction)
}


def model_infos() -> dict[str, ModelInfo]:
    """The declarations of all registered models, for config validation."""
    return {name: fam.info for name, fam in MODELS.items()}
