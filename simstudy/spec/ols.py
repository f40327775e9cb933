"""Closed-form OLS of a spec model's equations on its complete cases (the ``ols`` kind).

Each reported equation (target observed, not an incomplete predictor's nuisance model) is
regressed on its free terms, fixed terms moved to the left: classical standard errors, t
intervals for the coefficients and chi-square intervals for the residual variance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from simstudy.contract import Estimate
from simstudy.spec.dgm import ROW_REAL, complete_cases
from simstudy.spec.estimators import reported
from simstudy.spec.ir import ModelSpec


def regression(
    y: np.ndarray, design: np.ndarray, level: float
) -> tuple[list[Estimate], Estimate, np.ndarray]:
    """OLS of ``y`` on the columns of ``design``.

    Returns
    -------
    coefficients, residual variance, coefficient covariance
        Estimates with t (coefficients) and chi-square (variance) intervals at ``level``.

    Raises
    ------
    ValueError
        When there are no more rows than columns.
    """
    n, p = design.shape
    if n <= p:
        raise ValueError(f"OLS needs more than {p} complete cases, got {n}")
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = n - p
    s2 = float(np.sum((y - design @ beta) ** 2) / df)
    cov = s2 * np.linalg.inv(design.T @ design)
    coefs = [
        Estimate.t_interval(b, np.sqrt(v), df, level)
        for b, v in zip(beta, np.diag(cov), strict=True)
    ]
    alpha = 1.0 - level
    variance = Estimate(
        s2,
        s2 * float(np.sqrt(2.0 / df)),
        df * s2 / float(stats.chi2.ppf(1 - alpha / 2, df)),
        df * s2 / float(stats.chi2.ppf(alpha / 2, df)),
    )
    return coefs, variance, cov


def _term(data: Mapping[str, np.ndarray], factors: tuple[str, ...], rows: int) -> np.ndarray:
    out = np.ones(rows)
    for f in factors:
        out = out * data[f]
    return out


def fit(spec: ModelSpec, dataset: Mapping[str, Any], level: float) -> dict[str, Estimate]:
    """OLS estimates of every reported equation on the rows where every variable is observed.

    Raises
    ------
    ValueError
        When an equation has no more complete cases than free coefficients.
    """
    data = {k: np.asarray(v) for k, v in complete_cases(dataset, spec).items()}
    keep = data[ROW_REAL].astype(bool)
    rows = {k: v[keep] for k, v in data.items() if v.shape[:1] == keep.shape}
    n = int(keep.sum())
    out: dict[str, Estimate] = {}
    for eq in reported(spec):
        y = rows[eq.target].astype(float)
        free = [c for c in eq.coefficients if c.parameter.free]
        for c in eq.coefficients:
            if not c.parameter.free:  # a fixed term is known: off the outcome
                y = y - c.parameter.fixed * _term(rows, c.factors, n)
        design = np.column_stack([_term(rows, c.factors, n) for c in free] or [np.zeros((n, 0))])
        coefs, variance, _ = regression(y, design, level)
        out |= {c.parameter.name: e for c, e in zip(free, coefs, strict=True)}
        if eq.variance.free:
            out[eq.variance.name] = variance
    names = spec.estimands()
    return {k: out[k] for k in names if k in out}
