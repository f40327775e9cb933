"""Population values: what the simulator uses for every parameter, given by label or lavaan name.

A value is a number or an expression (text) of other values and design factors, so that a
design factor can be a derived quantity: e.g. ``icc: 0.1`` with
``"1|g~~1|g": "icc / (1 - icc) * sigma2"``. Pure Python (no JAX): config validation and
``truth`` use it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.grammar import parse
from simstudy.spec.ir import (
    ModelSpec,
    Parameter,
    covariance_pair,
    evaluate,
    names_in,
    with_derived,
)


def parse_expr(text: str, field: str) -> tuple:
    """The expression tree of ``text`` (``a / (1 - a) * b``)."""
    statements = parse(f"_value := {text}", field)
    return statements[0].expr


def _numeric(values: Mapping[str, Any], field: str) -> dict[str, float]:
    """Numbers and expressions of ``values`` resolved to numbers (expressions in any order)."""
    numbers: dict[str, float] = {}
    exprs: dict[str, tuple] = {}
    for k, v in values.items():
        if isinstance(v, str):
            exprs[k] = parse_expr(v, f"{field}.{k}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(f"{field}.{k}", v, "a number or an expression of other values")
        else:
            numbers[k] = float(v)
    while exprs:
        ready = [k for k, e in exprs.items() if names_in(e) <= set(numbers)]
        if not ready:
            k = sorted(exprs)[0]
            unknown = sorted(names_in(exprs[k]) - set(numbers) - set(exprs))
            what = (
                f"names of other values (unknown: {', '.join(unknown)})"
                if unknown
                else ("expressions without a cycle")
            )
            raise InputError(f"{field}.{k}", values[k], what)
        for k in ready:
            numbers[k] = _finite(exprs.pop(k), numbers, f"{field}.{k}", values[k])
    return numbers


def _finite(expr: tuple, numbers: Mapping[str, float], field: str, text: str) -> float:
    """The value of ``expr``, or :class:`InputError` where it is not a finite number."""
    try:
        value = float(evaluate(expr, numbers))
    except (OverflowError, ZeroDivisionError, ValueError) as err:
        value, why = math.nan, str(err)
    else:
        why = "it is not finite"
    if not math.isfinite(value):
        raise InputError(field, text, f"an expression with a finite value here ({why})")
    return value


def value_of(param: Parameter, numbers: Mapping[str, float]) -> float | None:
    """A parameter's population value: by label, else by name, else its fixed value."""
    if param.label and param.label in numbers:
        return numbers[param.label]
    if param.name in numbers:
        return numbers[param.name]
    return param.fixed


def declared_order(
    spec: ModelSpec, values: Mapping[str, Any], field: str = "model.params"
) -> dict[str, Any]:
    """``values`` with a covariance given as ``b~~a`` renamed to the model's ``a~~b``.

    A covariance is named in the order the model declares its variables (as lavaan names
    it); the other order names the same parameter.

    Raises
    ------
    InputError
        When both orders of one covariance are given.
    """
    names = {p.name for p in (*spec.parameters(), *spec.exogenous_moments)}
    by_pair = {covariance_pair(n): n for n in names if covariance_pair(n)}
    out: dict[str, Any] = {}
    for k, v in values.items():
        name = k if k in names else by_pair.get(covariance_pair(k), k)
        if name in out:
            raise InputError(f"{field}.{k}", v, f"one value per parameter (also given as {name})")
        out[name] = v
    return out


def population(spec: ModelSpec, values: Mapping[str, Any], field: str = "model.params") -> dict:
    """Every parameter's population value by lavaan name (and derived quantities by name).

    Raises
    ------
    InputError
        A free parameter without a value, or a value that names no parameter nor is used by
        an expression.
    """
    values = declared_order(spec, values, field)
    numbers = _numeric(values, field)
    known = {p.name for p in spec.parameters()} | {p.label for p in spec.parameters() if p.label}
    known |= {p.name for p in spec.exogenous_moments}
    known |= {p.label for p in spec.exogenous_moments if p.label}
    used = (
        set().union(
            *(names_in(parse_expr(v, field)) for v in values.values() if isinstance(v, str))
        )
        if values
        else set()
    )
    for k in values:
        if k not in known and k not in used:
            raise InputError(
                f"{field}.{k}",
                values[k],
                "a parameter's label or lavaan name (" + ", ".join(sorted(known)) + ")",
            )
    out: dict[str, float] = {}
    for p in (*spec.parameters(), *spec.exogenous_moments):
        if p.nuisance:
            continue
        v = value_of(p, numbers)
        if v is None:
            names = f"{p.label} or {p.name}" if p.label else p.name
            raise InputError(f"{field}.{p.label or p.name}", None, f"a population value ({names})")
        out[p.name] = v
    for nom in spec.nominal:
        _check_probabilities(nom.probabilities(), out, field)
    for o in spec.ordered:
        _check_thresholds(o.thresholds(), out, field)
    _check_variances(spec, values, out, field)
    return {k: float(v) for k, v in with_derived(spec, out).items()}


def _check_variances(
    spec: ModelSpec, values: Mapping[str, Any], out: Mapping[str, float], field: str
) -> None:
    """Every variance >= 0: a negative one has no data set to simulate.

    E.g. slopes that explain more than a variable's variance make its residual variance,
    computed from them, negative.
    """
    for p in (*spec.parameters(), *spec.exogenous_moments):
        if p.kind != "variance" or p.name not in out or out[p.name] >= 0:
            continue
        key = p.label if p.label in values else p.name
        given = values.get(key)
        why = f": {given} is negative at these values" if isinstance(given, str) else ""
        raise InputError(f"{field}.{key}", out[p.name], f"a variance >= 0{why}")


def _check_probabilities(probs: tuple[Parameter, ...], values: Mapping[str, float], field: str):
    """A nominal predictor's ``P(d=2) .. P(d=K)``: each > 0, their sum < 1 (``P(d=1)`` > 0)."""
    allowed = (
        f"probabilities > 0 whose sum over {probs[0].name} .. {probs[-1].name} is below 1 "
        "(the first category's probability is 1 minus that sum)"
    )
    for p in probs:
        if values[p.name] <= 0:
            raise InputError(f"{field}.{p.name}", values[p.name], allowed)
    total = sum(values[p.name] for p in probs)
    if total >= 1:
        raise InputError(f"{field}.{probs[-1].name}", f"a sum of {total:g}", allowed)


def _check_thresholds(taus: tuple[Parameter, ...], values: Mapping[str, float], field: str):
    """An ordered variable's thresholds: increasing (every category has a chance)."""

    def value(p: Parameter) -> float:
        return values[p.name] if p.free else p.fixed

    for lo, hi in itertools.pairwise(taus):
        if value(hi) <= value(lo):
            raise InputError(
                f"{field}.{hi.label or hi.name}",
                value(hi),
                f"a threshold above {lo.name} ({value(lo):g}): thresholds increase",
            )


def required(spec: ModelSpec) -> list[str]:
    """Names of the parameters that need a population value (labels where given)."""
    return [p.label or p.name for p in spec.parameters() if p.free and not p.nuisance]
