"""Posterior summaries from draws: one place, the same for every engine."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

with warnings.catch_warnings():
    # ArviZ announces its 1.0 refactor with a FutureWarning at import; it is not for our users.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


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
    dataset = az.convert_to_dataset({k: np.asarray(v, dtype=float) for k, v in draws.items()})
    with warnings.catch_warnings():
        # A constant chain makes ESS/R-hat undefined; ArviZ warns and returns NaN, which we keep.
        warnings.simplefilter("ignore", RuntimeWarning)
        ess_bulk = az.ess(dataset, method="bulk")
        ess_tail = az.ess(dataset, method="tail")
        n_chains = next(iter(draws.values())).shape[0]
        rhat = az.rhat(dataset) if n_chains > 1 else None
    alpha = (1.0 - level) / 2
    out = {}
    for name, values in draws.items():
        flat = np.asarray(values, dtype=float).reshape(-1)
        lower, upper = np.quantile(flat, [alpha, 1.0 - alpha])
        out[name] = Summary(
            estimate=float(flat.mean() if point == "mean" else np.median(flat)),
            se=float(flat.std(ddof=1)),
            lower=float(lower),
            upper=float(upper),
            ess_bulk=float(ess_bulk[name]),
            ess_tail=float(ess_tail[name]),
            rhat=float(rhat[name]) if rhat is not None else float("nan"),
        )
    return out


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
