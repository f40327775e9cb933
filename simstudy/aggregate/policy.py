"""Which fits enter the measures: all of them, or only the converged ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simstudy.errors import InputError

POLICIES = ("all", "converged")


@dataclass(frozen=True)
class ConvergencePolicy:
    """A rule for excluding fits whose MCMC did not converge.

    Parameters
    ----------
    kind
        ``"all"`` uses every successful fit; ``"converged"`` excludes a fit (a replication ×
        estimator, all its parameters together) when any parameter has R-hat above
        ``rhat_max``, bulk ESS below ``ess_min``, or, unless ``allow_divergent``, any divergent
        transition. Closed-form fits (R-hat and ESS NaN) are never excluded.
    """

    kind: str = "all"
    rhat_max: float = 1.01
    ess_min: float = 400.0
    allow_divergent: bool = False

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise InputError("policy", self.kind, "one of " + ", ".join(POLICIES))
        if not self.rhat_max >= 1.0:
            raise InputError("rhat_max", self.rhat_max, "a number >= 1")
        if not self.ess_min >= 0:
            raise InputError("ess_min", self.ess_min, "a number >= 0")

    def excluded(self, records: pd.DataFrame) -> pd.Series:
        """Boolean mask of rows excluded by the policy (failed rows are never 'excluded')."""
        if self.kind == "all":
            return pd.Series(False, index=records.index)
        bad = (
            (records["rhat"] > self.rhat_max)
            | (records["ess_bulk"] < self.ess_min)
            | (~np.bool_(self.allow_divergent) & (records["n_divergent"] > 0))
        ) & (records["status"] == "ok")
        fit = ["condition_id", "rep", "estimator"]
        return bad.groupby([records[k] for k in fit]).transform("any").astype(bool)
