"""Priors on a data set's scale, for ``simstudy fit`` (weakly informative, as rstanarm/brms).

From each observed variable's mean and SD over its observed rows (a latent factor takes the
SD of its marker indicator, divided by the marker's loading; 1 without a marker; a nominal
predictor's dummy its share and SD among the observed categories; an ordered variable its
latent response's 0 and 1):

- an intercept of ``y``: N(mean_y, (2.5 sd_y)^2 (1 + sum_k (mean_k / sd_k)^2)) — the prior
  rstanarm puts on the intercept at the predictors' means, moved to predictors at 0 (the
  intercept the model estimates) with the slopes' priors below;
- a slope or loading of ``y`` on a term ``x`` (a product term: the product's column):
  N(0, (2.5 sd_y / sd_x)^2);
- the residual SD of ``y``: HalfNormal(sd_y);
- the SDs of a covariance block: HalfNormal(the largest SD of the outcomes its random effects
  enter), or HalfNormal(the largest SD of its members) for a block of level-1 variables.

A setting the user names (``coef_sd``, ``sigma_scale``, ``cov_scale``) replaces its part;
a named ``loading_mean`` or ``loading_sd`` gives every loading the loadings' class.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from simstudy.spec.dgm import ROW_REAL, observed_key
from simstudy.spec.ir import LATENT, ModelSpec
from simstudy.spec.sweep import Priors

#: Prior SD of a coefficient in units of the outcome's SD over the term's SD (rstanarm's 2.5).
COEF_WIDTH = 2.5
#: The data-scaled settings of :class:`Priors` and the ``model.priors`` setting each replaces.
SETTING_OF = {
    "coef_means": "coef_sd",
    "coef_sds": "coef_sd",
    "sigma_scales": "sigma_scale",
    "cov_scales": "cov_scale",
}


def _observed_column(data: Mapping[str, Any], name: str) -> np.ndarray | None:
    """The observed values of a variable (None when it is not in the data)."""
    if name not in data or observed_key(name) not in data:
        return None
    keep = np.asarray(data[observed_key(name)], bool) & np.asarray(data[ROW_REAL], bool)
    return np.asarray(data[name], float)[keep]


def _spread(values: np.ndarray) -> float:
    sd = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return sd if np.isfinite(sd) and sd > 0 else 1.0


def variable_scales(spec: ModelSpec, data: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """``(location, scale)`` of every observed and latent variable of the spec in ``data``."""
    out: dict[str, tuple[float, float]] = {}
    for v in spec.variables:
        column = _observed_column(data, v.name)
        if column is not None and column.size:
            out[v.name] = (float(np.mean(column)), _spread(column))
    for nom in spec.nominal:  # a dummy's share and SD among the observed categories
        codes = _observed_column(data, nom.name)
        if codes is not None and codes.size:
            for dummy, column in nom.dummy_values(codes).items():
                out[dummy] = (float(np.mean(column)), _spread(column))
    for o in spec.ordered:  # the latent response's scale, not the codes'
        out[o.name] = (0.0, 1.0)
    for v in spec.variables:
        if v.kind != LATENT:
            continue
        out[v.name] = (0.0, 1.0)
        for eq in spec.equations:
            marker = [
                c.parameter.fixed
                for c in eq.coefficients
                if c.factors == (v.name,) and c.parameter.fixed
            ]
            if marker and eq.target in out and spec.variable(eq.target).kind != LATENT:
                out[v.name] = (0.0, out[eq.target][1] / abs(marker[0]))
                break
    return out


def _term_scale(
    factors: tuple[str, ...], scales: Mapping[str, tuple[float, float]], data: Mapping[str, Any]
) -> tuple[float, float]:
    """``(mean, SD)`` of a term: its column where every factor is observed, else products."""
    columns = [data.get(f) for f in factors]
    if all(f in data and observed_key(f) in data for f in factors):
        keep = np.asarray(data[ROW_REAL], bool)
        for f in factors:
            keep = keep & np.asarray(data[observed_key(f)], bool)
        product = np.prod([np.asarray(c, float)[keep] for c in columns], axis=0)
        if product.size:
            return float(np.mean(product)), _spread(product)
    mean = float(np.prod([scales.get(f, (0.0, 1.0))[0] for f in factors]))
    return mean, float(np.prod([scales.get(f, (0.0, 1.0))[1] for f in factors]))


def data_scaled(
    spec: ModelSpec,
    data: Mapping[str, Any],
    given: Collection[str] = (),
    loading: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The per-equation prior settings of :class:`Priors` on ``data``'s scale.

    ``given``: the ``model.priors`` settings the user named, whose parts are left out;
    ``loading``: the loadings' ``(mean, SD)`` where the user named that class.
    """
    scales = variable_scales(spec, data)
    means, sds, sigmas, blocks = {}, {}, {}, {}
    for eq in spec.equations:
        loc, sd_y = scales.get(eq.target, (0.0, 1.0))
        terms = [_term_scale(c.factors, scales, data) for c in eq.coefficients]
        pairs = list(zip(eq.coefficients, terms, strict=True))
        shift = sum((m / s) ** 2 for c, (m, s) in pairs if c.factors)
        means[eq.target] = tuple(0.0 if c.factors else loc for c in eq.coefficients)
        sds[eq.target] = tuple(
            COEF_WIDTH * sd_y / s if c.factors else COEF_WIDTH * sd_y * np.sqrt(1.0 + shift)
            for c, (_, s) in pairs
        )
        if loading is not None:
            named = [c.parameter.is_loading for c in eq.coefficients]
            means[eq.target] = tuple(
                loading[0] if own else m for own, m in zip(named, means[eq.target], strict=True)
            )
            sds[eq.target] = tuple(
                loading[1] if own else s for own, s in zip(named, sds[eq.target], strict=True)
            )
        sigmas[eq.target] = sd_y
    for b in spec.blocks:
        if b.level is None:
            blocks[b.name] = max(scales.get(m, (0.0, 1.0))[1] for m in b.members)
        else:
            outcomes = [
                e.target for e in spec.equations if any(r.effect in b.members for r in e.random)
            ]
            blocks[b.name] = max((scales.get(t, (0.0, 1.0))[1] for t in outcomes), default=1.0)
    out = {"coef_means": means, "coef_sds": sds, "sigma_scales": sigmas, "cov_scales": blocks}
    return {
        k: tuple(sorted((t, _floats(v)) for t, v in values.items()))
        for k, values in out.items()
        if SETTING_OF[k] not in given
    }


def _coef_setting(param: Any) -> str:
    """The ``model.priors`` setting that decides a coefficient's prior."""
    return "loading_sd" if param.is_loading else "coef_sd"


def _floats(value: Any) -> Any:
    return tuple(float(x) for x in value) if isinstance(value, tuple) else float(value)


def parameter_priors(
    spec: ModelSpec, priors: Mapping[str, Any], families: Mapping[str, str]
) -> dict[str, tuple[str, float, float, str]]:
    """Per reported parameter with a normal or half-normal prior: its prior and its setting.

    ``(kind, location, scale, setting)``: ``kind`` ``normal`` (a coefficient: mean and SD)
    or ``half_normal_sd`` (a variance whose SD has a HalfNormal(scale) prior, location 0);
    ``setting`` is the ``model.priors`` key that decides it. Inverse-gamma variances and
    LKJ correlations are left out.
    """
    p = Priors.of(priors)
    out: dict[str, tuple[str, float, float, str]] = {}
    for eq in spec.equations:
        free = tuple(i for i, c in enumerate(eq.coefficients) if c.parameter.free)
        for pos, mean, sd in zip(free, *p.equation_prior(eq, free), strict=True):
            param = eq.coefficients[pos].parameter
            if not param.nuisance:
                out[param.name] = ("normal", mean, sd, _coef_setting(param))
        v = eq.variance
        if v.free and not v.nuisance and families.get("residual") == "half_normal":
            out[v.name] = ("half_normal_sd", 0.0, p.sigma_scale_of(eq.target), "sigma_scale")
    if families.get("covariance") == "half_normal":
        for b in spec.blocks:
            for v in b.variances:
                out[v.name] = ("half_normal_sd", 0.0, p.cov_scale_of(b.name), "cov_scale")
    return out


def describe(prior: tuple[str, float, float, str]) -> str:
    """A prior in words: ``normal(298.5, 140.5)`` or ``SD ~ half-normal(56.2)``."""
    kind, loc, scale, _ = prior
    if kind == "normal":
        return f"normal({loc:.4g}, {scale:.4g})"
    return f"SD ~ half-normal({scale:.4g})"
