"""What a model family declares: its design factors, parameters, priors and estimators.

Plain declarations (no JAX), so that a study can be validated without loading any model code's
heavy dependencies, and shared pieces every missing-data model uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simstudy.errors import InputError


@dataclass(frozen=True)
class FactorSpec:
    """What values a design factor (or model parameter) may take.

    Parameters
    ----------
    kind
        ``"int"``, ``"float"`` or ``"str"``.
    low, high
        Inclusive lower bound and upper bound (exclusive when ``high_open``); ``None`` for none.
    choices
        The allowed values of a ``"str"`` factor.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """Say in words what is allowed."""
        if self.kind == "str":
            return "one of " + ", ".join(repr(c) for c in self.choices or ())
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            right = ")" if self.high_open else "]"
            return f"{noun} in [{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} >= {self.low:g}"
        return noun

    def check(self, name: str, value: Any) -> int | float | str:
        """Return ``value`` normalised to this kind, or raise :class:`InputError`."""
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise InputError(name, value, self.describe())
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(name, value, self.describe())
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise InputError(name, value, self.describe())
            value = int(value)
        else:
            value = float(value)
        too_low = self.low is not None and value < self.low
        too_high = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if too_low or too_high or value != value:  # value != value catches NaN
            raise InputError(name, value, self.describe())
        return value


@dataclass(frozen=True)
class ModelInfo:
    """What a model family declares, so that a study can be validated without running it.

    Parameters
    ----------
    name
        The model's name, as in ``conf/model/<name>.yaml``.
    factors
        Design factors the DGM understands besides its parameters (``N``, ``missing_rate`` ...).
    params
        The DGM's parameters; each may also be varied as a design factor.
    priors
        Names of the prior settings the estimators read.
    estimators
        Estimator names, in the order they are documented.
    samplers
        The sampler (``sampler.name``) each MCMC-based estimator runs on; estimators not listed
        need none.
    posteriors
        Estimators whose result is a posterior (draws): the ones simulation-based calibration
        can check.
    check_structure
        Validates ``model.structure`` (e.g. which indicators measure which factor) and returns
        it normalised; None for models without one.
    check_priors
        Cross-field checks of ``model.priors`` beyond each value's range: called with the
        priors and whether the study needs proper priors to draw from (simulation-based
        calibration); raises :class:`InputError`. None when the ranges say it all.
    min_size
        ``(structure, estimators) -> {size factor: (smallest level, why)}``: the smallest
        design (``N``; ``J``, ``cluster_size``) the estimators can fit, e.g. more rows than
        the parameters a regression estimates. A study below it is refused before it runs,
        and so is a data set ``simstudy fit`` is given. None: the factor ranges say it all.
    footprint
        ``(setting, estimators) -> (data values, values per draw)``: how many numbers one
        data set (with its masks and the sampler's per-person state) holds, and how many
        one chain stores per draw, for the largest of the estimators; ``setting`` is the
        largest level of each factor with ``structure``. It sizes the memory a condition
        needs (:func:`simstudy.config.check_runnable`). None: not estimated.
    """

    name: str
    factors: Mapping[str, FactorSpec]
    params: Mapping[str, FactorSpec]
    priors: Mapping[str, FactorSpec]
    estimators: tuple[str, ...]
    samplers: Mapping[str, str] = field(default_factory=dict)
    posteriors: tuple[str, ...] = ()
    check_structure: Callable[[Any], dict[str, Any]] | None = None
    check_priors: Callable[[Mapping[str, Any], bool], None] | None = None
    min_size: Callable[[Mapping[str, Any], Sequence[str]], dict[str, tuple[float, str]]] | None = (
        None
    )
    footprint: Callable[[Mapping[str, Any], Sequence[str]], tuple[float, float]] | None = None


#: Factors of every model with a missingness mechanism: the rate, and MCAR or MAR.
MISSINGNESS_FACTORS: dict[str, FactorSpec] = {
    "missing_rate": FactorSpec("float", low=0.0, high=1.0, high_open=True),
    "mechanism": FactorSpec("str", choices=("MCAR", "MAR")),
}


def with_defaults(raw: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``model.structure`` merged over its defaults; an unknown key raises :class:`InputError`."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        allowed = "known keys are " + ", ".join(defaults)
        raise InputError(f"model.structure.{unknown[0]}", raw[unknown[0]], allowed)
    return {**defaults, **raw}


def check_inverse_gamma(priors: Mapping[str, Any], prefixes: Sequence[str], proper: bool) -> None:
    """Inverse-gamma variance priors ``(<prefix>var_shape, <prefix>var_scale)``, as a pair.

    Density ``v^-(shape+1) exp(-scale/v)``. ``shape >= -1`` and ``scale >= 0`` are allowed
    (each value's range, checked elsewhere), proper or not (``(-1, 0)`` is flat on the
    variance, Mplus's default), except ``scale = 0`` with ``shape >= 0``: that density is not
    integrable at zero, and with a likelihood that stays bounded there (a Heywood case, a
    vanishing factor) neither is the posterior. ``proper`` (simulation-based calibration draws
    from the prior) asks for ``shape > 0`` and ``scale > 0``. A prefix whose pair is absent
    from ``priors`` is skipped.

    Raises
    ------
    InputError
        Naming ``model.priors.<prefix>var_shape`` or ``..._scale``, its value and what is allowed.
    """
    for prefix in prefixes:
        if f"{prefix}var_shape" not in priors or f"{prefix}var_scale" not in priors:
            continue
        shape, scale = priors[f"{prefix}var_shape"], priors[f"{prefix}var_scale"]
        if proper and (shape <= 0 or scale <= 0):
            bad = f"{prefix}var_shape" if shape <= 0 else f"{prefix}var_scale"
            raise InputError(
                f"model.priors.{bad}",
                priors[bad],
                f"a value > 0: simulation-based calibration draws the parameters from the "
                f"prior, which must be proper (shape > 0 and scale > 0), e.g. "
                f"model.priors.{prefix}var_shape=2 model.priors.{prefix}var_scale=0.5",
            )
        if scale == 0 and shape >= 0:
            raise InputError(
                f"model.priors.{prefix}var_shape",
                shape,
                f"a shape in [-1, 0) when {prefix}var_scale is 0 (v^-(shape+1) is not integrable "
                "at zero otherwise; -1 is flat), or a positive scale",
            )


def check_categories(raw: Any, field: str, shape: str, coding: str) -> dict[str, int]:
    """A declaration ``{variable: categories}`` validated (None: none declared).

    ``shape``: the mapping's shape in words (the message when ``raw`` is none); ``coding``: how
    the data code the categories (``1..K``, ``0..K-1``).

    Raises
    ------
    InputError
        Naming ``field`` or ``field.<name>``, the value and what is allowed.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError(field, raw, shape)
    out = {}
    for name, k in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(field, name, "variable names made of letters, digits and _")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise InputError(
                f"{field}.{name}", k, f"an integer >= 2: the categories, coded {coding} in the data"
            )
        out[name] = k
    return out
