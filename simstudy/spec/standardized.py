"""lavaan's completely standardized solution (``std.all``) of a measurement model, as estimands.

``report: std.all`` in a spec model's config reports, under the lavaan names of the fitted
(marker) parameterisation, the std.all values of the same draws: a loading ``f=~y`` times the
factor's SD over the SD of ``y`` (of its latent response, for an ordered ``y``), an intercept
or threshold over that SD, a residual variance over that variance, and factor correlations in
place of the factor covariance block (its variances, all 1, are not reported). Every loading is
reported (the markers' too), fixed intercepts and variances are not. Derived quantities
(``:=``) keep their values of the unstandardized parameters.

One function, :func:`std_all`, maps a mapping of values by lavaan name (numbers or per-draw
arrays) to the reported ones: the Gibbs sweep's and the NumPyro model's draws and the
population's values all go through it. It covers measurement models only: factors in one
level-1 covariance block, every equation an observed or ordered indicator's intercept and
loadings (:func:`check` refuses the rest before any work).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.ir import LATENT, ModelSpec

FIELD = "model.report"
#: The solutions a spec model can report: its own parameters (``est``) or lavaan's std.all.
REPORTS = ("est", "std.all")
#: The residual variance of an ordered variable's latent response per link (lavaan's theta
#: parameterisation: 1 under probit, the standard logistic's pi^2 / 3 under logit).
RESPONSE_VARIANCE = {"probit": 1.0, "logit": math.pi**2 / 3}


def check_report(raw: Any) -> str:
    """``report:`` validated (None: ``est``)."""
    if raw is None:
        return REPORTS[0]
    if raw not in REPORTS:
        raise InputError(FIELD, raw, "one of " + ", ".join(REPORTS))
    return str(raw)


def check(spec: ModelSpec) -> None:
    """Refuse a model that std.all does not cover here.

    Raises
    ------
    InputError
        Naming ``model.report`` and what the model has that a measurement model has not.
    """
    latents = {v.name for v in spec.variables if v.kind == LATENT}
    allowed = (
        "est for this model (std.all covers measurement models: factors that covary, "
        "observed or ordered indicators with an intercept and loadings; this one has {})"
    )

    def refuse(what: str) -> None:
        raise InputError(FIELD, "std.all", allowed.format(what))

    if spec.groups:
        refuse(f"the grouping factor {spec.groups[0]}")
    if spec.nominal:
        refuse(f"the nominal variable {spec.nominal[0].name}")
    if not latents:
        refuse("no latent variable")
    for e in spec.equations:
        if e.target in latents:
            refuse(f"a regression of the factor {e.target}")
        if e.variance.nuisance:
            refuse(f"an incomplete predictor {e.target}")
        if e.random:
            refuse(f"random effects in {e.target}'s equation")
        for c in e.coefficients:
            if c.factors and not c.parameter.is_loading:
                refuse(f"the regression {c.parameter.name}")
    blocks = [b for b in spec.blocks if b.level is None]
    if len(blocks) != 1 or set(blocks[0].members) != latents:
        refuse("factors outside one covariance block")


def names(spec: ModelSpec) -> tuple[str, ...]:
    """The std.all estimands, in the order of :meth:`ModelSpec.parameters`, then derived ones."""
    out = []
    for e in spec.equations:
        out += [
            c.parameter.name for c in e.coefficients if c.parameter.is_loading or c.parameter.free
        ]
        if e.variance.free:
            out.append(e.variance.name)
    for b in spec.blocks:
        out += [p.name for p in b.covariances]
    for o in spec.ordered:
        out += [t.name for t in o.thresholds() if t.free]
    return (*out, *(d.name for d in spec.derived))


def std_all(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The std.all estimands (:func:`names`) from ``values`` of the free parameters.

    ``values`` holds each free parameter by lavaan name (and derived quantities); fixed ones
    take their constants. Works on numbers and on arrays of draws alike.
    """

    def value(p: Any) -> Any:
        return values[p.name] if p.free else p.fixed

    (block,) = [b for b in spec.blocks if b.level is None]
    cov: dict[tuple[str, str], Any] = {}
    for m, p in zip(block.members, block.variances, strict=True):
        cov[m, m] = value(p)
    it = iter(block.covariances)
    for i in range(1, len(block.members)):
        for j in range(i):
            a, b = block.members[i], block.members[j]
            cov[a, b] = cov[b, a] = value(next(it))
    sd = {m: cov[m, m] ** 0.5 for m in block.members}
    links = {o.name: o.link for o in spec.ordered}
    out: dict[str, Any] = {}
    sd_y: dict[str, Any] = {}
    for e in spec.equations:
        loads = [(c.factors[0], value(c.parameter)) for c in e.coefficients if c.factors]
        residual = RESPONSE_VARIANCE[links[e.target]] if e.target in links else value(e.variance)
        var_y = residual + sum(la * lb * cov[fa, fb] for fa, la in loads for fb, lb in loads)
        sd_y[e.target] = var_y**0.5
        for c in e.coefficients:
            p = c.parameter
            if p.is_loading:
                out[p.name] = value(p) * sd[c.factors[0]] / sd_y[e.target]
            elif p.free:
                out[p.name] = value(p) / sd_y[e.target]
        if e.variance.free:
            out[e.variance.name] = value(e.variance) / var_y
    it = iter(block.covariances)
    for i in range(1, len(block.members)):
        for j in range(i):
            a, b = block.members[i], block.members[j]
            out[next(it).name] = cov[a, b] / (sd[a] * sd[b])
    for o in spec.ordered:
        for t in o.thresholds():
            if t.free:
                out[t.name] = values[t.name] / sd_y[o.name]
    for d in spec.derived:
        out[d.name] = values[d.name]
    return out


def reported(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values a model reports: as given, or their std.all (``report: std.all``)."""
    if spec.report == "std.all":
        return std_all(spec, values)
    return dict(values)
