"""Posterior summaries from draws: one place, the same for every engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from simstudy.engine.diagnostics import diagnose


class Summary(NamedTuple):
    """Summary of one estimand from one fit."""

    estimate: float
    se: float
    lower: float
    upper: float
    ess_bulk: float
    ess_tail: float
    rhat: float


def summarise_draws(
    draws: Mapping[str, np.ndarray], level: float, point: str = "mean"
) -> dict[str, Summary]:
    """Posterior mean (or median), SD, equal-tailed interval, ESS (bulk, tail) and split R-hat.

    ESS and R-hat are ArviZ's rank-normalized definitions, computed for all estimands at once
    by :mod:`simstudy.engine.diagnostics`.

    Parameters
    ----------
    draws
        Estimand name to an array of shape (chains, draws).
    level
        Interval level, e.g. 0.95.
    point
        The point estimate: ``mean`` or ``median`` (Blimp's and Mplus' Bayesian default).

    Returns
    -------
    dict
        Estimand name to :class:`Summary`. R-hat is NaN with a single chain.

    Raises
    ------
    FloatingPointError
        When any draw is not finite (the fit is then recorded as failed).
    """
    for name, values in draws.items():
        if not np.all(np.isfinite(values)):
            raise FloatingPointError(f"non-finite draws of {name}")
    names = list(draws)
    stacked = np.stack([np.asarray(draws[k], dtype=float) for k in names])  # (E, C, S)
    ess_bulk, ess_tail, rhat = diagnose(stacked)
    flat = stacked.reshape(len(names), -1)
    alpha = (1.0 - level) / 2
    lower, upper = np.quantile(flat, [alpha, 1.0 - alpha], axis=-1)
    estimate = flat.mean(axis=-1) if point == "mean" else np.median(flat, axis=-1)
    se = flat.std(axis=-1, ddof=1)
    return {
        name: Summary(
            estimate=float(estimate[i]),
            se=float(se[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            ess_bulk=float(ess_bulk[i]),
            ess_tail=float(ess_tail[i]),
            rhat=float(rhat[i]),
        )
        for i, name in enumerate(names)
    }


#: Posterior draws kept (equally spaced) for a simulation-based-calibration rank.
SBC_DRAWS = 99


def sbc_ranks(
    draws: Mapping[str, np.ndarray], truth: Mapping[str, float], n_draws: int = SBC_DRAWS
) -> tuple[dict[str, int], int]:
    """Rank of each true value among ``n_draws`` thinned posterior draws (Talts et al. 2018).

    Draws are thinned evenly within each chain, which keeps them close to independent when
    each chain has many more draws than ``n_draws / chains``. Under a calibrated posterior the
    rank is uniform on ``0 .. L`` (``L`` the number of draws kept).

    Returns
    -------
    ranks, L
    """
    first = next(iter(draws.values()))
    chains, per_chain = first.shape[:2]
    keep = max(1, min(per_chain, n_draws // chains))
    index = np.linspace(0, per_chain - 1, keep).round().astype(int)
    ranks = {
        name: int((np.asarray(values)[:, index].reshape(-1) < truth[name]).sum())
        for name, values in draws.items()
        if name in truth
    }
    return ranks, chains * keep
