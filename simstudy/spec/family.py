"""A spec compiled into a model family: simulator, truth, Gibbs sweep and NumPyro model."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from simstudy.blocks.covariance import INVERSE_WISHART, inverse_wishart_covariance
from simstudy.contract import Family
from simstudy.errors import InputError
from simstudy.spec import dgm, sweep
from simstudy.spec import estimators as kinds
from simstudy.spec.info import PRIOR_DEFAULTS, analysis_spec, model_info, spec_of
from simstudy.spec.ir import LATENT, RANDOM, ModelSpec, with_derived
from simstudy.spec.standardized import reported
from simstudy.userdata import Columns, model_data


def estimators(
    spec: ModelSpec,
    families: Mapping[str, str],
    mapping: Mapping[str, Any] | None = None,
    structure: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The estimators a model config names (:mod:`simstudy.spec.estimators`), by name.

    ``mapping``: normalised ``estimators:`` (None: ``bayes`` and ``bayes_hmc``).
    """
    own = None if structure is None else functools.partial(analysis_spec, structure)
    return kinds.build(spec, sweep.layout(spec), families, mapping or kinds.DEFAULT, own)


def truth(spec: ModelSpec, setting: Mapping[str, Any]) -> dict[str, float]:
    """True values of the estimands under a setting."""
    values = reported(spec, dgm.population_of(spec, setting))
    return {name: float(values[name]) for name in spec.estimands()}


#: Where an ordered variable's threshold draws fold into the blocks' key (past the nominals').
ORDERED_KEY = 2 * dgm.NOMINAL_KEY


def simulate_prior(
    spec: ModelSpec,
    rng_key: jax.Array,
    setting: Mapping[str, Any],
    priors: Mapping[str, Any],
) -> tuple[dict, dict[str, float]]:
    """Parameters drawn from the estimators' priors, then data from the fitted model (SBC).

    Complete exogenous predictors keep the setting's moments (the fit conditions on them);
    an incomplete one follows the model the fit gives it.
    """
    structure = setting["structure"]
    p = sweep.Priors.of({**PRIOR_DEFAULTS, **priors})
    families = structure["prior_families"]
    values: dict[str, Any] = dict(dgm.population_of(spec, setting))
    # One key per parameter and per block, by a stable index: as many as the model needs.
    k_data, k_coef, k_block = jax.random.split(rng_key, 3)
    coefficients = [(e, k) for e in spec.equations for k in range(len(e.coefficients))]
    prior_of = {
        e.coefficients[k].parameter.name: p.equation_prior(e, (k,)) for e, k in coefficients
    }
    latents = {v.name for v in spec.variables if v.kind == LATENT}
    latent_of = {e.variance.name: e.target in latents for e in spec.equations}
    params = [e.coefficients[k].parameter for e, k in coefficients]
    for i, param in enumerate([*params, *(e.variance for e in spec.equations)]):
        if not param.free:
            continue
        key = jax.random.fold_in(k_coef, i)
        if param.kind == "coef":
            (mean,), (sd,) = prior_of[param.name]
            values[param.name] = mean + sd * float(jax.random.normal(key))
        else:
            draw = _variance_draw(key, families["residual"], p, False, latent_of[param.name])
            values[param.name] = draw
    for index, b in enumerate(spec.blocks):
        k_var, k_corr = jax.random.split(jax.random.fold_in(k_block, index))
        k = len(b.members)
        if families["covariance"] == INVERSE_WISHART:
            cov = np.asarray(inverse_wishart_covariance(k_var, np.zeros((k, k)), 0, p.var_scale))
            _put_block(values, b, cov)
            continue
        sd = np.sqrt(
            [
                _variance_draw(kk, families["covariance"], p, True, b.level is None)
                for kk in jax.random.split(k_var, k)
            ]
        )
        corr = (
            np.asarray(dist.LKJCholesky(k, p.lkj_eta).sample(k_corr)) if k > 1 else np.ones((1, 1))
        )
        chol = sd[:, None] * corr
        _put_block(values, b, chol @ chol.T)
    for index, nom in enumerate(spec.nominal):
        # the sweep's Dirichlet(1, ..., 1) prior on the category probabilities
        key = jax.random.fold_in(k_block, dgm.NOMINAL_KEY + index)
        probs = jax.random.dirichlet(key, jnp.ones(nom.categories))
        for k, param in enumerate(nom.probabilities(), start=1):
            values[param.name] = float(probs[k])
    for index, o in enumerate(spec.ordered):
        # the sweep's prior: N(0, coef_sd^2) thresholds kept increasing, i.e. sorted draws
        # (above a first one fixed at 0: sorted half-normal ones)
        free = [t for t in o.thresholds() if t.free]
        key = jax.random.fold_in(k_block, ORDERED_KEY + index)
        draws = p.coef_sd * np.asarray(jax.random.normal(key, (len(free),)))
        taus = np.sort(np.abs(draws) if o.intercept else draws)
        for param, tau in zip(free, taus, strict=True):
            values[param.name] = float(tau)
    data = dgm.simulate(spec, k_data, setting, values=values, fitted=True)
    values = reported(spec, with_derived(spec, values))
    return data, {name: float(values[name]) for name in spec.estimands()}


def _put_block(values: dict[str, Any], block: Any, cov: np.ndarray) -> None:
    """A covariance block's variances and covariances into ``values``, by lavaan name."""
    for i, param in enumerate(block.variances):
        values[param.name] = float(cov[i, i])
    it = iter(block.covariances)
    for i in range(1, len(block.members)):
        for j in range(i):
            values[next(it).name] = float(cov[i, j])


def _variance_draw(key, family: str, p: sweep.Priors, covariance: bool, latent: bool) -> float:
    """A variance from its prior: a latent variable's with the latent class's numbers."""
    if family == "half_normal":
        scale = p.cov_scale if covariance else p.sigma_scale
        return float((scale * jax.random.normal(key)) ** 2)
    shape, scale = p.variance_ig(latent)
    return float(scale / jax.random.gamma(key, shape))


def columns(spec: ModelSpec) -> Columns:
    """The columns of a user's table the model reads: observed variables, grouping factors.

    Its predictors are the observed variables in a coefficient or random effect's term.
    """
    observed = [v.name for v in spec.variables if v.kind not in (LATENT, RANDOM)]
    factors = {f for e in spec.equations for c in e.coefficients for f in c.factors}
    factors |= {f for e in spec.equations for r in e.random for f in r.factors}
    factors |= {nom.name for nom in spec.nominal if set(nom.dummies) & factors}
    ordered = {o.name for o in spec.ordered}
    targets = {e.target for e in spec.equations if not e.variance.nuisance}
    return Columns(
        numbers=tuple(observed),
        allowed="columns " + ", ".join([*observed, *spec.groups]),
        predictors=tuple(v for v in observed if v in factors),
        labels=tuple(spec.groups),
        continuous=tuple(v for v in observed if v in targets and v not in ordered),
    )


def from_frame(spec: ModelSpec, frame: Any) -> dict[str, Any]:
    """A data set from a user's table.

    One column per observed variable (NaN where missing) and, for a two-level model, the
    grouping factor's column (any labels).

    Raises
    ------
    InputError
        Naming absent columns, bad values (:func:`~simstudy.userdata.model_data`), missing
        values in a variable the model conditions on, a nominal predictor's code outside 1..K
        or an ordered variable's outside 0..K-1.
    """
    read = columns(spec)
    values = model_data(frame, read)
    rows = len(frame)
    data: dict[str, Any] = {dgm.ROW_REAL: jnp.ones(rows, dtype=bool)}
    incomplete = {m.variable for m in spec.missing}
    for v in read.numbers:
        x = values[v]
        ok = ~np.isnan(x)
        if not ok.all() and v in spec.exogenous and v not in incomplete:
            raise InputError(
                f"data column {v}",
                f"{int((~ok).sum())} missing values",
                "complete values, or the variable declared incomplete",
            )
        data[v] = jnp.asarray(np.where(ok, x, 0.0))
        data[dgm.observed_key(v)] = jnp.asarray(ok)
    for nom in spec.nominal:
        codes = values[nom.name][~np.isnan(values[nom.name])]
        strange = codes[~np.isin(codes, np.arange(1, nom.categories + 1))]
        if strange.size:
            allowed = f"codes 1..{nom.categories} (NaN where missing)"
            raise InputError(f"data column {nom.name}", float(strange[0]), allowed)
    for o in spec.ordered:
        codes = values[o.name][~np.isnan(values[o.name])]
        strange = codes[~np.isin(codes, np.arange(o.categories))]
        if strange.size:
            allowed = f"codes 0..{o.categories - 1} (NaN where missing)"
            raise InputError(f"data column {o.name}", float(strange[0]), allowed)
    for g in spec.groups:
        if frame[g].isna().any():
            raise InputError(f"data column {g}", "missing values", "a cluster label on every row")
        codes, uniques = _codes(frame[g])
        data[g] = jnp.asarray(codes, dtype=jnp.int32)
        data[dgm.cluster_key(g)] = jnp.ones(len(uniques), dtype=bool)
    return data


def _codes(column: Any) -> tuple[np.ndarray, Any]:
    return pd.factorize(column, sort=True)


@functools.lru_cache(maxsize=64)
def _family(name: str, blob: str) -> Family:
    structure = json.loads(blob)
    spec = spec_of(structure)
    built = estimators(spec, structure["prior_families"], kinds.mapping_of(structure), structure)
    info = model_info(name, structure, {}, fitting=True)  # config checks the values
    return Family(
        info=dataclasses.replace(info, params={}),
        simulate=lambda key, setting: dgm.simulate(spec, key, setting),
        truth=lambda setting: truth(spec, setting),
        make_estimators=lambda _structure: built,
        simulate_prior=lambda key, setting, priors: simulate_prior(spec, key, setting, priors),
        from_frame=lambda frame, _structure=None: from_frame(spec, frame),
        columns=lambda _structure=None: columns(spec),
    )


def family(name: str, structure: Mapping[str, Any]) -> Family:
    """The family of a spec model (built once per name and structure)."""
    return _family(name, json.dumps(dict(structure), sort_keys=True))
