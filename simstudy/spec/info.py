"""A spec model's declaration, from its config: syntax, design and prior families (no JAX).

A model config with a ``syntax`` is a spec model, whatever its name::

    name: glmm
    syntax: |
      y ~ 1 + x + (1 + x | g)
    design:
      size_spread: 0.5                 # cluster sizes uniform on [m(1-s), m(1+s)]
      missing: {x: {given: [y], strength: 0.8}}
    prior_families: {residual: half_normal, covariance: half_normal}
    params: {"y~1": 0.0, "y~x": 0.5, ...}   # population values, by label or lavaan name
    priors: {coef_sd: 10.0, ...}
    estimators: {bayes: {kind: gibbs}, bayes_hmc: {kind: hmc}}   # the default; see spec.estimators

A nominal predictor is declared with its categories, ``nominal: {d: 3}``
(:mod:`simstudy.spec.nominal`). Its design factors: ``N`` (single level) or ``J`` and
``cluster_size`` (two levels), and ``missing_rate`` and ``mechanism`` when the design makes a
variable incomplete; any population value may be a factor too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from simstudy.errors import InputError
from simstudy.spec import distributions
from simstudy.spec import estimators as kinds
from simstudy.spec.declare import (
    MISSINGNESS_FACTORS,
    FactorSpec,
    ModelInfo,
    check_inverse_gamma,
)
from simstudy.spec.grammar import parse
from simstudy.spec.ir import LATENT, RANDOM, ModelSpec, build
from simstudy.spec.nominal import check_declaration as check_nominal
from simstudy.spec.ordered import LINKS, check_link
from simstudy.spec.ordered import check_declaration as check_ordered
from simstudy.spec.population import population
from simstudy.spec.standardized import REPORTS, check_report
from simstudy.spec.standardized import check as check_standardized

#: Keys of a spec model's config besides ``name``, ``params`` and ``priors``.
SPEC_KEYS = (
    "syntax",
    "design",
    "prior_families",
    "estimators",
    "nominal",
    "ordered",
    "link",
    "report",
)
PRIOR_FAMILIES = {
    "residual": ("half_normal", "inverse_gamma"),
    "covariance": ("half_normal", "inverse_gamma", "inverse_wishart"),
}
#: Numeric priors of every spec model, with their defaults (see simstudy.spec.sweep.Priors).
PRIOR_DEFAULTS = {
    "coef_sd": 10.0,
    "sigma_scale": 5.0,
    "var_shape": 2.0,
    "var_scale": 0.5,
    "cov_scale": 5.0,
    "lkj_eta": 1.0,
}
#: Latent (residual) variances' inverse-gamma prior; unset, the residual class's numbers.
LATENT_PRIORS = {"latent_var_shape": "var_shape", "latent_var_scale": "var_scale"}
#: Loadings' normal prior; unset, N(0, coef_sd^2) as every other coefficient.
LOADING_PRIORS = {"loading_sd": "coef_sd"}
PRIOR_SPECS = {
    **{k: FactorSpec("float", low=1e-9) for k in PRIOR_DEFAULTS},
    # (-1, 0) is flat on a latent variance (Mplus's default); check_priors refuses the rest
    "latent_var_shape": FactorSpec("float", low=-1.0),
    "latent_var_scale": FactorSpec("float", low=0.0),
    # loadings' own normal prior: unset, N(0, coef_sd^2) as every coefficient
    "loading_mean": FactorSpec("float"),
    "loading_sd": FactorSpec("float", low=1e-9),
}
#: Estimators of a spec model without ``estimators:``: the compiled Gibbs sweep, and HMC on the
#: NumPyro model.
ESTIMATORS = tuple(kinds.DEFAULT)
SAMPLERS = kinds.samplers(kinds.DEFAULT)


def with_prior_defaults(priors: Mapping[str, Any] | None) -> dict[str, Any]:
    """A spec model's ``priors`` with every default filled in.

    An unset latent variance prior takes the residual class's numbers (as given or default),
    an unset loading prior every coefficient's N(0, coef_sd^2).
    """
    out = {**PRIOR_DEFAULTS, **dict(priors or {})}
    for own, general in {**LATENT_PRIORS, **LOADING_PRIORS}.items():
        out.setdefault(own, out[general])
    out.setdefault("loading_mean", 0.0)
    return out


def check_priors(priors: Mapping[str, Any], proper: bool) -> None:
    """The latent variances' inverse-gamma pair (the residual class's ranges say it all)."""
    check_inverse_gamma(priors, ("latent_",), proper)


def latent_inverse_gamma(spec: ModelSpec, families: Mapping[str, str]) -> bool:
    """Whether some variance of ``spec`` takes the latent class's inverse-gamma prior.

    A factor block's variances do under the ``inverse_gamma`` covariance family, a latent
    variable's free residual variance under the ``inverse_gamma`` residual family.
    """
    from simstudy.spec.ir import LATENT

    latents = {v.name for v in spec.variables if v.kind == LATENT}
    blocks = families["covariance"] == "inverse_gamma" and any(b.level is None for b in spec.blocks)
    residuals = families["residual"] == "inverse_gamma" and any(
        e.target in latents and e.variance.free for e in spec.equations
    )
    return blocks or residuals


def check_estimator_priors(
    structure: Mapping[str, Any], priors: Mapping[str, Any], estimators: Sequence[str]
) -> None:
    """Refuse an ``hmc`` estimator under an improper latent variance prior.

    The Gibbs sweep takes the flat ``(-1, 0)`` conjugately; the NumPyro model's
    ``InverseGamma`` needs a shape and a scale > 0, so the fit would fail on every replication.

    Raises
    ------
    InputError
        Naming ``model.priors.latent_var_shape`` (or ``_scale``), its value and what an hmc
        estimator allows.
    """
    mapping = kinds.mapping_of(structure)
    hmc = [e for e in estimators if mapping.get(e, {}).get("kind") == "hmc"]
    if hmc and structure["prior_families"]["covariance"] == "inverse_wishart":
        raise InputError(
            f"model.estimators.{hmc[0]}.kind",
            "hmc",
            "a gibbs estimator under prior_families.covariance=inverse_wishart (the NumPyro "
            "model has LKJ blocks only): leave the hmc estimator out of study.estimators, or "
            "use covariance: inverse_gamma or half_normal",
        )
    if not hmc or not latent_inverse_gamma(spec_of(structure), structure["prior_families"]):
        return
    for name in ("latent_var_shape", "latent_var_scale"):
        if priors[name] <= 0:
            raise InputError(
                f"model.priors.{name}",
                priors[name],
                f"a value > 0 for the hmc estimator {hmc[0]}: HMC needs a proper inverse-gamma "
                "prior on the latent variances (shape > 0 and scale > 0, e.g. "
                "model.priors.latent_var_shape=2 model.priors.latent_var_scale=0.5); the flat "
                "(-1, 0) is for gibbs estimators only",
            )


def is_spec(raw_model: Mapping[str, Any] | None) -> bool:
    """Whether a model config (or a validated structure) declares a spec model."""
    return isinstance(raw_model, Mapping) and (
        "syntax" in raw_model or "syntax" in (raw_model.get("structure") or {})
    )


def normalise(raw_model: Mapping[str, Any]) -> dict[str, Any]:
    """The structure of a spec model (its syntax, design, prior families), validated."""
    given = dict(raw_model.get("structure") or {})
    for k in SPEC_KEYS:
        if k in raw_model:
            given[k] = raw_model[k]
    unknown = sorted(set(given) - set(SPEC_KEYS))
    if unknown:
        k = unknown[0]
        where = "model" if k in raw_model else "model.structure"
        raise InputError(f"{where}.{k}", given[k], "one of " + ", ".join(SPEC_KEYS))
    syntax = given.get("syntax")
    if not isinstance(syntax, str) or not syntax.strip():
        raise InputError(
            "model.syntax", syntax, "a model in the lavaan-style syntax, e.g. 'y ~ 1 + x + (1 | g)'"
        )
    design = dict(given.get("design") or {})
    bad = sorted(set(design) - {"size_spread", "missing", "distributions"})
    if bad:
        raise InputError(
            f"model.design.{bad[0]}", design[bad[0]], "size_spread, missing or distributions"
        )
    spread = FactorSpec("float", low=0.0, high=1.0, high_open=True).check(
        "model.design.size_spread", design.get("size_spread", 0.0)
    )
    missing = {}
    for var, m in dict(design.get("missing") or {}).items():
        m = dict(m or {})
        extra = sorted(set(m) - {"given", "strength"})
        if extra:
            raise InputError(
                f"model.design.missing.{var}.{extra[0]}", m[extra[0]], "given or strength"
            )
        on = m.get("given", [])
        on = [on] if isinstance(on, str) else list(on)
        strength = FactorSpec("float", low=0.0, high=1.0, high_open=True).check(
            f"model.design.missing.{var}.strength", m.get("strength", 0.8)
        )
        missing[str(var)] = {"given": on, "strength": strength}
    families = dict(given.get("prior_families") or {})
    for k, v in families.items():
        if k not in PRIOR_FAMILIES:
            raise InputError(f"model.prior_families.{k}", v, "residual or covariance")
        if v not in PRIOR_FAMILIES[k]:
            raise InputError(
                f"model.prior_families.{k}", v, "one of " + ", ".join(PRIOR_FAMILIES[k])
            )
    families = {k: families.get(k, v[0]) for k, v in PRIOR_FAMILIES.items()}
    structure = {
        "syntax": syntax,
        "design": {"size_spread": spread, "missing": missing},
        "prior_families": families,
    }
    nominal = check_nominal(given.get("nominal"))
    if nominal:  # kept only when given, so that models without it keep their hash
        structure["nominal"] = nominal
    ordered = check_ordered(given.get("ordered"))
    if ordered:  # likewise
        structure["ordered"] = ordered
    link = check_link(given.get("link"))
    if link != LINKS[0]:  # likewise
        structure["link"] = link
    report = check_report(given.get("report"))
    if report != REPORTS[0]:  # likewise
        structure["report"] = report
    spec = spec_of(structure)  # raises on a bad syntax or design
    shapes = distributions.check(design.get("distributions"), tuple(v.name for v in spec.variables))
    if shapes:  # kept only when given, so that models without it keep their hash
        structure["design"]["distributions"] = shapes
    if families["covariance"] == "inverse_wishart":
        _check_inverse_wishart(spec)
    if report != REPORTS[0]:
        check_standardized(spec)
    if given.get("estimators") is not None:
        # kept only when given, so that models without it keep their hash
        structure["estimators"] = kinds.normalise(
            given["estimators"], spec, lambda syntax, field: analysis_spec(structure, syntax, field)
        )
    if report != REPORTS[0]:
        _posterior_only(kinds.mapping_of(structure))
    return structure


def _check_inverse_wishart(spec: ModelSpec) -> None:
    """The inverse-Wishart family is for blocks of two or more factors (level 1) only.

    A one-member block would take the inverse-gamma variance update, a random-effect block
    its own moves: refused rather than given a prior the config does not say.
    """
    for b in spec.blocks:
        if b.level is not None or len(b.members) < 2:
            what = (
                f"the random-effect block {b.name}"
                if b.level is not None
                else f"the one-factor block {b.name} (InverseWishart(3, s) of one variance is "
                "InverseGamma(1.5, s / 2): use covariance: inverse_gamma)"
            )
            raise InputError(
                "model.prior_families.covariance",
                "inverse_wishart",
                f"a model whose covariance blocks are all of two or more factors; it has {what}",
            )


def _posterior_only(mapping: Mapping[str, Any]) -> None:
    """Under std.all, only estimators with draws: the closed-form ones report other things."""
    for name, options in mapping.items():
        if options["kind"] not in ("gibbs", "hmc"):
            raise InputError(
                f"model.estimators.{name}.kind",
                options["kind"],
                "gibbs or hmc under model.report=std.all (the standardized solution is "
                "computed draw by draw)",
            )


@functools.lru_cache(maxsize=64)
def _spec(blob: str) -> ModelSpec:
    s = json.loads(blob)
    return build(
        parse(s["syntax"]),
        s["design"]["missing"],
        nominal=s.get("nominal"),
        ordered=s.get("ordered"),
        link=s.get("link", LINKS[0]),
        report=s.get("report", REPORTS[0]),
    )


def analysis_spec(
    structure: Mapping[str, Any], syntax: str, field: str = "model.estimators"
) -> ModelSpec:
    """The model an estimator with its own ``syntax`` fits to the population model's data.

    The population's declarations (missingness, ordered and nominal variables, link, report)
    apply to the variables the syntax names. Its variables must be the data's, and each of its
    estimands one the population model has (so that it has a true value).

    Raises
    ------
    InputError
        Naming ``field`` (``model.estimators.<name>.syntax``).
    """
    import re

    population = spec_of(structure)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", syntax))
    design = structure["design"]
    # what is missing where it names it; given what matters only to the simulator
    missing = {
        v: {**m, "given": [g for g in m["given"] if g in words]}
        for v, m in design["missing"].items()
        if v in words
    }
    given: dict[str, Any] = {
        "syntax": syntax,
        "design": {**design, "missing": missing},
    }
    for key in ("nominal", "ordered"):
        kept = {v: k for v, k in (structure.get(key) or {}).items() if v in words}
        if kept:
            given[key] = kept
    for key in ("link", "report"):
        if key in structure:
            given[key] = structure[key]
    try:
        spec = spec_of(given)
    except InputError as exc:
        raise InputError(field, syntax, f"a model in the syntax ({exc})") from None
    data = {v.name for v in population.variables if v.kind not in (LATENT, RANDOM)}
    data |= set(population.groups)
    unknown = sorted(
        {v.name for v in spec.variables if v.kind not in (LATENT, RANDOM)} - data
        | set(spec.groups) - data
    )
    if unknown:
        raise InputError(
            field,
            syntax,
            f"a model of the data's variables ({', '.join(sorted(data))}); "
            f"{', '.join(unknown)} are not",
        )
    truths = set(population.estimands())
    without = [e for e in spec.estimands() if e not in truths]
    if without:
        raise InputError(
            field,
            syntax,
            "a model whose estimands the population model has (their true values are "
            f"known); {', '.join(without)} are not among them",
        )
    return spec


def spec_of(structure: Mapping[str, Any]) -> ModelSpec:
    """The :class:`ModelSpec` of a (normalised) structure, built once per syntax and design."""
    keys = ("syntax", "design", "nominal", "ordered", "link", "report")
    return _spec(json.dumps({k: structure[k] for k in keys if k in structure}, sort_keys=True))


def declared(raw_model: Mapping[str, Any]) -> ModelInfo:
    """What a spec model declares before validation: estimators, samplers, priors."""
    mapping = kinds.declared(raw_model.get("estimators", kinds.default_of(raw_model)))
    return ModelInfo(
        name=str(raw_model.get("name")),
        factors={},
        params={},
        priors=PRIOR_SPECS,
        estimators=tuple(mapping),
        samplers=kinds.samplers(mapping),
        posteriors=kinds.posteriors(mapping),
        check_priors=check_priors,
    )


def model_info(
    name: str, structure: Mapping[str, Any], params: Mapping[str, Any], *, fitting: bool = False
) -> ModelInfo:
    """The declaration of a spec model: factors from its design, params as given.

    ``fitting``: for ``simstudy fit``, which needs no population values.
    """
    spec = spec_of(structure)
    if spec.groups:
        factors = {"J": FactorSpec("int", low=1), "cluster_size": FactorSpec("float", low=1.0)}
    else:
        factors = {"N": FactorSpec("int", low=2)}
    if spec.missing:
        factors.update(MISSINGNESS_FACTORS)
    if not fitting:
        population(spec, params)  # every parameter has a value, every value a parameter
    spread = float(structure.get("design", {}).get("size_spread", 0.0))
    mapping = kinds.mapping_of(structure)
    return ModelInfo(
        name=name,
        factors=factors,
        params={
            k: FactorSpec("float") if not isinstance(v, str) else FactorSpec("str")
            for k, v in params.items()
        },
        priors=PRIOR_SPECS,
        estimators=tuple(mapping),
        samplers=kinds.samplers(mapping),
        posteriors=kinds.posteriors(mapping),
        check_priors=check_priors,
        min_size=lambda _structure, _estimators: min_size(spec),
        footprint=lambda setting, estimators: footprint(spec, spread, setting, estimators, mapping),
    )


def min_size(spec: ModelSpec) -> dict[str, tuple[float, str]]:
    """The smallest design a spec model can be fitted to.

    Single level: ``N`` above the largest equation's coefficients (and a covariance block's
    size) by 2. Two levels: ``J`` above the random effects per cluster by 2 (their covariance
    matrix needs more clusters than effects), clusters of at least 2 (with one row a cluster's
    random intercept cannot be told from the residual).
    """
    coefs = max((sum(c.parameter.free for c in e.coefficients) for e in spec.equations), default=0)
    if spec.groups:
        q = max((len(b.members) for b in spec.blocks if b.level is not None), default=1)
        return {
            "J": (q + 2, f"more clusters than the {q} random effects per cluster, by 2"),
            "cluster_size": (2, "clusters of 2 rows or more (a random intercept needs them)"),
        }
    block = max((len(b.members) for b in spec.blocks), default=0)
    if block + 2 > coefs + 2:
        return {"N": (block + 2, f"more rows than the {block} variables of a covariance block")}
    return {"N": (max(coefs + 2, 3), f"more rows than an equation's {coefs} coefficients, by 2")}


def footprint(
    spec: ModelSpec,
    spread: float,
    setting: Mapping[str, Any],
    estimators: Any,
    mapping: Mapping[str, Any] = kinds.DEFAULT,
) -> tuple[float, float]:
    """Values per data set (observed variables, masks, latents), per draw of the largest kind."""
    from simstudy.spec.ir import LATENT, RANDOM

    if spec.groups:
        clusters = float(setting["J"])
        rows = clusters * float(setting["cluster_size"]) * (1.0 + spread)
    else:
        clusters, rows = 0.0, float(setting["N"])
    observed = sum(v.kind not in (LATENT, RANDOM) for v in spec.variables)
    latent = sum(v.kind == LATENT for v in spec.variables)
    effects = sum(v.kind == RANDOM for v in spec.variables)
    data = rows * (2 * observed + latent + 1) + clusters * (effects + 1)
    per_draw = [
        kinds.KINDS[mapping[e]["kind"]].draws(spec, rows, clusters)
        for e in estimators
        if e in mapping
    ]
    return data, max(per_draw, default=0.0)
