"""The kinds of estimator a spec model lists under ``estimators:``, and their options.

A spec model config may name its estimators::

    estimators:
      bayes: {kind: gibbs}            # the compiled Gibbs sweep
      bayes_hmc: {kind: hmc}          # HMC (NUTS/ChEES) on the NumPyro model
      bayes_cc: {kind: hmc, complete_cases: true}   # on the rows with every variable observed
      bayes_marginal: {kind: hmc, marginal: true}   # incomplete predictors integrated out
      ols_cc: {kind: ols}             # closed-form OLS per equation, complete cases
      fs_imputation: {kind: fs_imputation, of: bayes, imputations: 20}
      sum_score_ols: {kind: sum_score_ols}
      robust: {kind: python, function: my_estimators.ols_hc3}   # your own function
      my_bayes: {kind: numpyro, model: my_models.regression, derive: derive}   # your own model
      my_pymc: {kind: pymc, model: my_models.pymc_regression}   # your own PyMC model
      ols_no_z: {kind: ols, syntax: "y ~ 1 + x"}   # a model of its own (misspecified)

``fs_imputation`` analyses M states of a gibbs estimator's chain (OLS of the structural
equations on the latent scores and imputed values, Rubin's rules); ``sum_score_ols`` is OLS
with each factor replaced by the mean of its observed indicators
(:mod:`simstudy.spec.analyses`). ``python`` calls a function of the user's own (found in the
user's config tree, else among installed packages: :mod:`simstudy.usercode`) with the
replication's data table and the interval level; it returns estimates and standard errors by
estimand name (``parameters``: which of the model's estimands; default all). ``numpyro`` runs
a NumPyro model of the user's own (the data table's columns as keyword arrays, NaN where
missing) on the project's ChEES or NUTS, with ``derive`` (a function of the same module) from
its sample sites to the estimands. ``pymc`` runs a user's PyMC model (a function of the data
table returning a ``pm.Model`` whose data arrays are ``pm.Data``) on the same samplers, through
PyMC's log density on JAX (:mod:`simstudy.pymcmodel`).

A ``gibbs``, ``hmc`` or ``ols`` estimator may fit a model other than the population's
(``syntax:``, e.g. one that omits a predictor, an interaction or a random slope): the model
the data come from stays the config's ``syntax``, and the estimator's estimands are those of
its own model, each of which the population model must have (its true value;
:func:`simstudy.spec.info.analysis_spec`).

Each name is what studies list in ``study.estimators`` and what result tables show; each
value is ``{kind: K, ...options}`` with K one of :data:`KINDS`. Without the key a spec model
has :data:`DEFAULT` (``bayes`` and ``bayes_hmc``).

Declarations (options, sampler, checks) are plain Python, so config validation loads no JAX;
a kind's ``build`` imports the back ends when a family is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simstudy.errors import InputError
from simstudy.spec import builtin_kinds as builtin
from simstudy.spec import user_kinds as user
from simstudy.spec.ir import LATENT, RANDOM, Equation, ModelSpec

#: A spec model's estimators when its config names none (the behaviour before ``estimators:``).
DEFAULT: dict[str, dict[str, Any]] = {"bayes": {"kind": "gibbs"}, "bayes_hmc": {"kind": "hmc"}}
#: ... and those of a model with a nominal predictor, which HMC cannot fit (:func:`_hmc_fits`).
DEFAULT_NOMINAL: dict[str, dict[str, Any]] = {"bayes": {"kind": "gibbs"}}


def default_of(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The estimators of a model config (or structure) that names none."""
    return dict(DEFAULT_NOMINAL if model.get("nominal") else DEFAULT)


@dataclass(frozen=True)
class Option:
    """One option of a kind: its default, and what values it takes.

    Parameters
    ----------
    default
        The value when the config gives none.
    check
        ``(field, value) -> value``: the value normalised, or :class:`InputError` naming
        ``field`` (``model.estimators.<name>.<option>``).
    """

    default: Any
    check: Callable[[str, Any], Any]


def flag(default: bool, allowed: tuple[bool, ...] = (False, True)) -> Option:
    """A true/false option (``allowed`` narrows it, e.g. ``ols``'s ``complete_cases``)."""

    def check(name: str, value: Any) -> bool:
        if not isinstance(value, bool) or value not in allowed:
            raise InputError(name, value, " or ".join(str(a).lower() for a in allowed))
        return value

    return Option(default, check)


def _fits_any(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """Every spec model can be fitted by the Gibbs sweep."""


def _hmc_fits(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """``marginal`` needs a model linear and Gaussian in its incomplete predictors.

    The NumPyro model has no nominal predictor (a discrete unknown per row): a model with one
    is fitted by the Gibbs sweep. An ordered variable's likelihood there is its categories'
    probabilities (no latent responses), and ``marginal`` cannot integrate a factor out of it.
    """
    from simstudy.spec.linear import spec_marginal_nodes

    if spec.nominal:
        raise InputError(
            f"{field}.kind",
            "hmc",
            f"gibbs: a model with a nominal predictor ({spec.nominal[0].name}) is fitted by the "
            "Gibbs sweep (the NumPyro model has no discrete unknowns)",
        )
    if options.get("marginal") and spec.ordered:
        raise InputError(
            f"{field}.marginal",
            True,
            f"false for a model with an ordered variable ({spec.ordered[0].name}): its "
            "categories' probabilities are no normal density to integrate a variable out of",
        )
    # nothing drawn per row (a data set with x complete): marginal is the sampled model
    drawn = spec.unknown_nodes()
    if options.get("marginal") and drawn and spec_marginal_nodes(spec, incomplete=True) is None:
        raise InputError(
            f"{field}.marginal",
            True,
            "false for this model: integrating out needs every latent variable and incomplete "
            "predictor in linear terms of linear-Gaussian equations (no product with one, no "
            "random effect)",
        )


def reported(spec: ModelSpec) -> tuple[Equation, ...]:
    """The equations with an estimand (nuisance models of incomplete predictors left out)."""
    names = set(spec.estimands())
    return tuple(
        e
        for e in spec.equations
        if e.variance.name in names or any(c.parameter.name in names for c in e.coefficients)
    )


def _ols_fits(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """OLS needs equations of observed variables and nothing else to estimate."""
    latent = [v.name for v in spec.variables if v.kind in (LATENT, RANDOM)]
    covered = {c.parameter.name for e in reported(spec) for c in e.coefficients}
    covered |= {e.variance.name for e in reported(spec)}
    other = [n for n in spec.estimands() if n not in covered]
    if latent or other:
        what = f"latent variable {latent[0]}" if latent else f"estimand {other[0]}"
        raise InputError(
            f"{field}.kind",
            "ols",
            f"a kind that can fit this model (it has {what}; ols fits regressions of "
            "observed variables: coefficients and residual variances)",
        )


def _no_draws(spec: ModelSpec, rows: float, clusters: float) -> float:
    return 0.0


@dataclass(frozen=True)
class Kind:
    """A way to fit a spec model.

    Parameters
    ----------
    build
        ``(spec, lay, families, options, built) -> estimator`` (a :mod:`simstudy.contract`
        estimator; its name is set by the caller): ``lay`` the sweep's layout, ``families`` the
        model's prior families, ``options`` the normalised options, ``built`` the estimators
        built so far by name (for kinds that analyse another's chain).
    options
        Allowed option names with their defaults and checks.
    sampler
        The sampler the estimator runs on (``"gibbs"``, ``"nuts"``), None for closed form.
    posterior
        Whether its result is a posterior (draws) that simulation-based calibration can check.
    check
        ``(spec, options, field)``: raises :class:`InputError` naming
        ``model.estimators.<name>.<option>`` (``field`` is ``model.estimators.<name>``) when the
        model cannot be fitted this way.
    draws
        ``(spec, rows, clusters) -> values`` one chain stores per draw for a data set of that
        size (memory footprint); 0 for closed form.
    complete
        ``(options, field) -> options``: what the options imply, added once they are checked
        (e.g. where a user's function comes from).
    """

    build: Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    sampler: str | None = None
    posterior: bool = False
    check: Callable[[ModelSpec, Mapping[str, Any], str], None] = _fits_any
    draws: Callable[[ModelSpec, float, float], float] = _no_draws
    complete: Callable[[dict[str, Any], str], dict[str, Any]] = lambda options, field: options


def _check_analyses(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """OLS of the structural equations needs a single-level model that has some."""
    from simstudy.spec import analyses

    why = analyses.unsupported(spec)
    if why is not None:
        raise InputError(f"{field}.kind", "OLS of the structural equations", why)


def _imputations(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise InputError(name, value, "an integer >= 2 (states analysed and pooled)")
    return value


def _estimator_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(name, value, "the name of a gibbs estimator listed before this one")
    return value


def _user_model(build: Callable[..., Any], check: Callable[..., None]) -> Kind:
    """A kind whose estimator is a user's model run by the project's samplers (NumPyro, PyMC)."""
    return Kind(
        build,
        {
            "model": Option(None, user.function_name),
            "source": Option("", user.source),
            "derive": Option(None, user.attribute_name),
            "parameters": Option(None, user.estimand_names),
        },
        sampler="nuts",
        posterior=True,
        check=check,
        draws=builtin.hmc_draws,
        complete=user.completes("model"),
    )


KINDS: dict[str, Kind] = {
    "gibbs": Kind(
        builtin.build_gibbs,
        {"complete_cases": flag(False)},
        sampler="gibbs",
        posterior=True,
        draws=builtin.gibbs_draws,
    ),
    "hmc": Kind(
        builtin.build_hmc,
        {"complete_cases": flag(False), "marginal": flag(False)},
        sampler="nuts",
        posterior=True,
        check=_hmc_fits,
        draws=builtin.hmc_draws,
    ),
    "ols": Kind(
        builtin.build_ols, {"complete_cases": flag(True, allowed=(True,))}, check=_ols_fits
    ),
    "fs_imputation": Kind(
        builtin.build_fs_imputation,
        options={
            "of": Option("bayes", _estimator_name),
            "imputations": Option(20, _imputations),
        },
        sampler="gibbs",
        check=_check_analyses,
        draws=builtin.imputation_draws,
    ),
    "sum_score_ols": Kind(builtin.build_sum_score_ols, check=_check_analyses),
    "python": Kind(
        user.build_python,
        {
            "function": Option(None, user.function_name),
            "source": Option("", user.source),
            "parameters": Option(None, user.estimand_names),
        },
        check=user.python_fits,
        complete=user.completes("function"),
    ),
    "numpyro": _user_model(user.build_numpyro, user.python_fits),
    "pymc": _user_model(user.build_pymc, user.pymc_installed),
}

#: The kinds that may fit a model of their own (``syntax:``), other than the population's.
OWN_SYNTAX = ("gibbs", "hmc", "ols")


def normalise(
    raw: Any,
    spec: ModelSpec | None = None,
    analysis: Callable[[str, str], ModelSpec] | None = None,
) -> dict[str, dict[str, Any]]:
    """A config's ``estimators:`` mapping validated, each option given (defaults filled in).

    ``spec``: the model, for the kinds' checks (None: options only). ``analysis``:
    ``(syntax, field) -> spec``, the model an estimator with its own ``syntax`` fits
    (:data:`OWN_SYNTAX` kinds; :func:`simstudy.spec.info.analysis_spec`).

    Raises
    ------
    InputError
        Naming ``model.estimators`` or ``model.estimators.<name>[.<option>]``.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise InputError(
            "model.estimators",
            raw,
            "a mapping from estimator names to {kind: ...}, e.g. {bayes: {kind: gibbs}}",
        )
    out: dict[str, dict[str, Any]] = {}
    for name, given in raw.items():
        where = f"model.estimators.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError("model.estimators", name, "estimator names made of letters, digits, _")
        given = {"kind": given} if isinstance(given, str) else given
        if not isinstance(given, Mapping):
            raise InputError(where, given, "{kind: K, ...options}")
        kind_name = given.get("kind")
        if kind_name not in KINDS:
            raise InputError(f"{where}.kind", kind_name, "one of " + ", ".join(KINDS))
        kind = KINDS[kind_name]
        own = given.get("syntax")
        given = {k: v for k, v in given.items() if k != "syntax"}
        if own is not None:
            if kind_name not in OWN_SYNTAX:
                raise InputError(
                    f"{where}.syntax",
                    own,
                    "no syntax of its own for this kind: use one of " + ", ".join(OWN_SYNTAX),
                )
            if not isinstance(own, str) or not own.strip():
                raise InputError(f"{where}.syntax", own, "a model in the lavaan-style syntax")
        extra = sorted(set(given) - {"kind", *kind.options})
        if extra:
            allowed = ", ".join(kind.options) or "none"
            raise InputError(
                f"{where}.{extra[0]}", given[extra[0]], f"an option of {kind_name}: {allowed}"
            )
        options = {
            k: opt.check(f"{where}.{k}", given[k]) if k in given else opt.default
            for k, opt in kind.options.items()
        }
        options = kind.complete(options, where)
        fitted = spec
        if own is not None and spec is not None and analysis is not None:
            fitted = analysis(own, f"{where}.syntax")
        if fitted is not None:
            kind.check(fitted, options, where)
        # kept only when given, so that the estimators without one keep their hash
        out[name] = {"kind": kind_name, **options, **({"syntax": own} if own else {})}
    for name, entry in out.items():
        # an imputation estimator analyses the chain of a gibbs estimator listed before it
        of = entry.get("of")
        before = list(out)[: list(out).index(name)]
        if of is not None and out.get(of, {}).get("syntax"):
            raise InputError(
                f"model.estimators.{name}.of",
                of,
                "a gibbs estimator of the population model (the analyses are its equations; "
                f"{of} fits a syntax of its own)",
            )
        if of is not None and (of not in before or out[of]["kind"] != "gibbs"):
            gibbs = [n for n in before if out[n]["kind"] == "gibbs"]
            raise InputError(
                f"model.estimators.{name}.of",
                of,
                "a gibbs estimator listed before this one: " + (", ".join(gibbs) or "none"),
            )
    return out


def mapping_of(structure: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The (normalised) estimators of a structure: its own, else :func:`default_of`'s."""
    return dict(structure.get("estimators") or default_of(structure))


def declared(raw: Any) -> dict[str, dict[str, Any]]:
    """The estimators a raw config names, read leniently (unknown kinds left out).

    For picking a sampler before validation; :func:`normalise` reports what is wrong.
    """
    if not isinstance(raw, Mapping):
        return dict(DEFAULT)
    out = {}
    for name, given in raw.items():
        given = {"kind": given} if isinstance(given, str) else given
        if isinstance(given, Mapping) and given.get("kind") in KINDS:
            out[str(name)] = dict(given)
    return out


def samplers(mapping: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The sampler of each estimator that runs one."""
    return {
        name: KINDS[o["kind"]].sampler
        for name, o in mapping.items()
        if KINDS[o["kind"]].sampler is not None
    }


def posteriors(mapping: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    """The estimators whose result is a posterior (draws)."""
    return tuple(name for name, o in mapping.items() if KINDS[o["kind"]].posterior)


def options_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An estimator's options, its kind and its own syntax left out."""
    return {k: v for k, v in entry.items() if k not in ("kind", "syntax")}


def build(
    spec: ModelSpec,
    lay: Any,
    families: Mapping[str, str],
    mapping: Mapping[str, Any],
    analysis: Callable[[str], ModelSpec] | None = None,
) -> dict[str, Any]:
    """The estimators of a mapping, each under its own name, returned in its order.

    An estimator that analyses another's chain (option ``of``) is built after the others, so
    that it holds that estimator itself (a study fitting both runs one chain). One with its
    own ``syntax`` is built for the model ``analysis(syntax)`` instead of ``spec``.
    """
    from simstudy.spec import sweep

    built: dict[str, Any] = {}
    for name in sorted(mapping, key=lambda n: "of" in mapping[n]):
        entry = mapping[name]
        kind = KINDS[entry["kind"]]
        fitted, fitted_lay = spec, lay
        if entry.get("syntax"):
            if analysis is None:
                raise ValueError(f"estimator {name} has a syntax of its own: give analysis")
            fitted = analysis(entry["syntax"])
            fitted_lay = sweep.layout(fitted)
        est = kind.build(fitted, fitted_lay, families, options_of(entry), dict(built))
        built[name] = dataclasses.replace(est, name=name)
    return {name: built[name] for name in mapping}
