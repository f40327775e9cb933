"""Checks of a ``simstudy fit`` posterior in plain words: prior-data conflict, chains in sign.

Pure numpy/pandas: the fit hands in its summary table, its priors and its draws.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: A posterior mean this many prior SDs from the prior mean sits against its prior.
CONFLICT_SDS = 2.0
#: A coefficient whose posterior SD is this share of its prior SD or more: the prior decides it.
PRIOR_SD_SHARE = 0.5
#: A chain's mean this many of its own SDs from 0 is clearly signed.
SIGN_SDS = 2.0


def named_priors(overrides: Sequence[str], composed: Mapping[str, Any]) -> set[str]:
    """The ``model.priors`` settings named on the command line (they replace the data's).

    ``model.priors.coef_sd=5`` names ``coef_sd``; ``model.priors={...}`` names every key of
    the composed ``model.priors``.
    """
    out: set[str] = set()
    for item in overrides:
        key = item.partition("=")[0].lstrip("+~")
        if key == "model.priors":
            out |= set(composed)
        elif key.startswith("model.priors."):
            out.add(key.removeprefix("model.priors."))
    return out


def prior_conflicts(
    table: pd.DataFrame, priors: Mapping[str, tuple[str, float, float, str]], current: Mapping
) -> list[str]:
    """Plain words for each parameter whose posterior sits against its prior.

    ``table``: ``parameter``, ``mean``, ``sd`` per parameter; ``priors``: per parameter
    ``(kind, location, scale, setting)`` (:func:`simstudy.spec.scaled.parameter_priors`);
    ``current``: the ``model.priors`` settings in use, to say what they are now. A
    coefficient conflicts when its posterior mean is more than ``CONFLICT_SDS`` prior SDs from
    the prior mean or its posterior SD is ``PRIOR_SD_SHARE`` of the prior SD or more; a
    variance when its posterior mean's square root is more than ``CONFLICT_SDS`` times the
    half-normal scale of its SD.
    """
    out = []
    for row in table.itertuples(index=False):
        if row.parameter not in priors:
            continue
        kind, loc, scale, setting = priors[row.parameter]
        what, why = None, "so the prior pulls it away from what the data say"
        if kind == "normal":
            away = abs(row.mean - loc) / scale
            if away > CONFLICT_SDS:
                what = (
                    f"its posterior mean {row.mean:.4g} is {away:.1f} prior SDs from its prior "
                    f"normal({loc:.4g}, {scale:.4g})"
                )
            elif row.sd >= PRIOR_SD_SHARE * scale:
                why = "so the prior, not the data, decides it"
                what = (
                    f"its posterior SD {row.sd:.4g} is {row.sd / scale:.0%} of its prior "
                    f"normal({loc:.4g}, {scale:.4g})'s"
                )
        elif np.sqrt(max(row.mean, 0.0)) > CONFLICT_SDS * scale:
            what = (
                f"its posterior SD {np.sqrt(row.mean):.4g} is {np.sqrt(row.mean) / scale:.1f} "
                f"times the scale of its prior SD ~ half-normal({scale:.4g})"
            )
        if what:
            now = f" (now {current[setting]:g})" if setting in current else ""
            out.append(
                f"prior-data conflict for {row.parameter}: {what}, {why}; widen "
                f"model.priors.{setting}{now}, or leave it unset for a prior on the data's scale."
            )
    return out


def sign_disagreements(draws: Mapping[str, Any], names: Collection[str]) -> list[str]:
    """Plain words for each parameter whose chains are clearly of opposite signs.

    ``draws``: name to an array (chains, draws). A parameter is flagged when one chain's mean
    is more than ``SIGN_SDS`` of that chain's SDs above 0 and another's as far below.
    """
    flagged = []
    for name in names:
        x = np.asarray(draws.get(name, np.empty((0, 0))), float)
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
            continue
        z = x.mean(axis=1) / np.maximum(x.std(axis=1), np.finfo(float).tiny)
        if (z > SIGN_SDS).any() and (z < -SIGN_SDS).any():
            signs = ", ".join(f"{m:+.3g}" for m in x.mean(axis=1))
            flagged.append(f"{name} (chain means {signs})")
    if not flagged:
        return []
    return [
        f"chains disagree in sign for {'; '.join(flagged)}: each chain settled in a "
        "mirror-image mode, so the pooled mean and interval mix them and mean nothing; fix "
        "the sign in the model (e.g. each factor's first loading fixed at 1) and refit."
    ]
