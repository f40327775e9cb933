"""Non-normal residuals and latent variables for the simulator: standardized draws.

A model config may give a variable's residual (an equation's target) or a latent or
exogenous variable's innovation a non-normal distribution::

    design:
      distributions:
        y: {family: skew_normal, alpha: 5}   # skewness 0.85
        eta_x: {family: t, df: 5}            # heavy tails
        x: {family: chi2, df: 2}             # skewness 2

Each family is standardized to mean 0 and variance 1 before the model's variance (or
covariance, through its Cholesky factor) scales it, so every population value keeps its
meaning: the model is the same, only the shape of the distribution changes. Fits still assume
normality, which is the question such a study asks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from simstudy.errors import InputError

#: Families and their parameters with (lower bound, exclusive): t needs a variance (df > 2).
FAMILIES: dict[str, dict[str, tuple[float, bool]]] = {
    "normal": {},
    "skew_normal": {"alpha": (-math.inf, True)},
    "t": {"df": (2.0, True)},
    "chi2": {"df": (0.0, True)},
}


def check(raw: Any, variables: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``model.design.distributions`` validated: variable -> {family, parameters}.

    Raises
    ------
    InputError
        Naming the field, the value and what is allowed.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError(
            "model.design.distributions", raw, "a mapping variable -> {family: ..., ...}"
        )
    out = {}
    for var, given in raw.items():
        where = f"model.design.distributions.{var}"
        if var not in variables:
            raise InputError(where, given, "a variable of the model: " + ", ".join(variables))
        given = {"family": given} if isinstance(given, str) else dict(given or {})
        family = given.pop("family", None)
        if family not in FAMILIES:
            raise InputError(f"{where}.family", family, "one of " + ", ".join(FAMILIES))
        params = {}
        for name, value in given.items():
            if name not in FAMILIES[family]:
                allowed = ", ".join(FAMILIES[family]) or "none"
                raise InputError(f"{where}.{name}", value, f"a parameter of {family}: {allowed}")
            low, _ = FAMILIES[family][name]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= low:
                raise InputError(f"{where}.{name}", value, f"a number above {low}")
            params[name] = float(value)
        missing = [p for p in FAMILIES[family] if p not in params]
        if missing:
            raise InputError(f"{where}.{missing[0]}", None, f"a number (required by {family})")
        out[str(var)] = {"family": family, **params}
    return out


def draw(key: Any, spec: Mapping[str, Any], shape: tuple[int, ...]) -> Any:
    """Standardized draws (mean 0, variance 1) of a family with its parameters."""
    import jax
    import jax.numpy as jnp

    family = spec["family"]
    if family == "normal":
        return jax.random.normal(key, shape)
    if family == "skew_normal":  # Azzalini's representation
        delta = spec["alpha"] / math.sqrt(1 + spec["alpha"] ** 2)
        u0, u1 = jax.random.normal(key, (2, *shape))
        x = delta * jnp.abs(u0) + math.sqrt(1 - delta**2) * u1
        mean = delta * math.sqrt(2 / math.pi)
        return (x - mean) / math.sqrt(1 - mean**2)
    if family == "t":
        df = spec["df"]
        return jax.random.t(key, df, shape) * math.sqrt((df - 2) / df)
    if family == "chi2":
        df = spec["df"]
        return (2 * jax.random.gamma(key, df / 2, shape) - df) / math.sqrt(2 * df)
    raise ValueError(f"no family {family}")


def skewness(spec: Mapping[str, Any]) -> float:
    """The family's skewness (0 for the symmetric ones), for the docs and the tests."""
    if spec["family"] == "skew_normal":
        delta = spec["alpha"] / math.sqrt(1 + spec["alpha"] ** 2)
        m = delta * math.sqrt(2 / math.pi)
        return (4 - math.pi) / 2 * m**3 / (1 - m**2) ** 1.5
    if spec["family"] == "chi2":
        return math.sqrt(8 / spec["df"])
    return 0.0
