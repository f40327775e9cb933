"""The builders of simstudy's own estimator kinds (:data:`simstudy.spec.estimators.KINDS`).

Each ``build_<kind>(spec, lay, families, options, built)`` returns a :mod:`simstudy.contract`
estimator of the spec; each ``*_draws(spec, rows, clusters)`` the values one chain stores per
draw (the memory footprint). The user's kinds are in :mod:`.user_kinds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from simstudy.spec.ir import LATENT, RANDOM, ModelSpec


def priors_of(families: Mapping[str, str], priors: Mapping[str, Any]) -> Any:
    """The sweep's :class:`~simstudy.spec.sweep.Priors` of a study's priors and families."""
    from simstudy.spec import sweep
    from simstudy.spec.info import PRIOR_DEFAULTS

    return sweep.Priors.of(
        {
            **PRIOR_DEFAULTS,
            **priors,
            "resvar_prior": families["residual"],
            "cov_prior": families["covariance"],
        }
    )


def complete_model(spec: ModelSpec) -> ModelSpec:
    """The model a complete-case fit needs: no missingness, no incomplete predictor's model.

    On complete cases every variable is observed, so the nuisance equations of incomplete
    predictors factor out of the posterior of the rest: dropping them leaves it as it is, with
    nothing drawn per row.
    """
    nuisance = tuple(e.target for e in spec.equations if e.variance.nuisance)
    return dataclasses.replace(
        spec,
        missing=(),
        equations=tuple(e for e in spec.equations if not e.variance.nuisance),
        exogenous=(*spec.exogenous, *nuisance),
    )


def build_gibbs(spec, lay, families, options, built) -> Any:
    """The compiled Gibbs sweep (on the complete cases, with ``complete_cases``)."""
    from simstudy.contract import GibbsEstimator
    from simstudy.spec import dgm, sweep

    full = spec
    if options.get("complete_cases"):
        spec = complete_model(spec)
        lay = sweep.layout(spec)

    def prepare(data):
        if options.get("complete_cases"):
            data = dgm.complete_cases(data, full)
        return sweep.prepare(data, lay)

    def init(rng_key, data, priors):
        return sweep.init(rng_key, data, lay, priors_of(families, priors))

    def step(rng_key, state, data, priors):
        return sweep.sweep(rng_key, state, data, lay, priors_of(families, priors))

    def warmup_step(rng_key, state, data, priors):
        return sweep.sweep(rng_key, state, data, lay, priors_of(families, priors), adapt=True)

    def collect(state, data):
        return sweep.collect(state, lay, spec)

    return GibbsEstimator(
        "gibbs",
        init,
        step,
        collect,
        spec.estimands(),
        prepare=prepare,
        warmup_step=warmup_step if lay.ordered else None,
    )


def build_hmc(spec, lay, families, options, built) -> Any:
    """HMC on the NumPyro model (complete cases, incomplete predictors integrated out)."""
    from simstudy.contract import SampledEstimator
    from simstudy.spec import dgm, hmc, sweep
    from simstudy.spec.info import PRIOR_DEFAULTS

    full = spec
    if options.get("complete_cases"):
        spec = complete_model(spec)
        lay = sweep.layout(spec)

    def data(dataset, priors):
        if options.get("complete_cases"):
            dataset = dgm.complete_cases(dataset, full)
        return hmc.model_data(dataset, {**PRIOR_DEFAULTS, **priors}, lay)

    residual, covariance = families["residual"], families["covariance"]
    return SampledEstimator(
        "hmc",
        hmc.make_model(lay, residual, covariance, marginal=bool(options.get("marginal"))),
        data,
        hmc.make_derive(lay, spec, residual, covariance),
        spec.estimands(),
    )


def build_ols(spec, lay, families, options, built) -> Any:
    """Closed-form OLS per equation on the complete cases."""
    from simstudy.contract import ClosedFormEstimator
    from simstudy.spec import ols

    return ClosedFormEstimator(
        "ols", lambda dataset, level: ols.fit(spec, dataset, level), spec.estimands()
    )


def gibbs_draws(spec: ModelSpec, rows: float, clusters: float) -> float:
    """The estimands: the sweep's state is not stored."""
    return float(len(spec.estimands()))


def hmc_draws(spec: ModelSpec, rows: float, clusters: float) -> float:
    """Parameters, random effects, and per row the latent and missing values it samples.

    An upper bound: a marginal model samples no per-row values.
    """
    latent = sum(v.kind == LATENT for v in spec.variables)
    effects = sum(v.kind == RANDOM for v in spec.variables)
    return len(spec.parameters()) + clusters * effects + rows * (latent + len(spec.missing))


def build_fs_imputation(spec, lay, families, options, built) -> Any:
    """OLS on M states of another estimator's Gibbs chain, pooled by Rubin's rules."""
    from simstudy.contract import GibbsEstimator, ImputationEstimator
    from simstudy.spec import analyses

    sampler = built.get(options["of"])
    if not isinstance(sampler, GibbsEstimator):
        raise ValueError(f"fs_imputation: {options['of']!r} is no gibbs estimator built before it")

    def analyse(state, data):
        vals, weights = analyses.state_values(spec, lay, state, data)
        est, var, _ = analyses.analyse(spec, vals, weights)
        return est, var

    return ImputationEstimator(
        "fs_imputation", sampler, options["imputations"], analyse, analyses.estimands(spec)
    )


def build_sum_score_ols(spec, lay, families, options, built) -> Any:
    """OLS on the means of each factor's observed indicators (closed form)."""
    from simstudy.contract import ClosedFormEstimator
    from simstudy.spec import analyses

    def fit(dataset, level):
        return analyses.sum_score_ols(spec, dataset, level)

    return ClosedFormEstimator("sum_score_ols", fit, analyses.estimands(spec))


def imputation_draws(spec: ModelSpec, rows: float, clusters: float) -> float:
    """The M recorded analyses' estimates and variances (the chain is another estimator's)."""
    from simstudy.spec import analyses

    return 2.0 * len(analyses.estimands(spec))


#: The kinds of estimator, by the name a config's ``kind:`` gives.
