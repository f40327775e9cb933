"""A driver for conditional-update (Gibbs) samplers: all chains, warm-up and draws in one program.

The model supplies pure ``init``/``step``/``collect`` functions (see
:class:`~simstudy.models.base.GibbsEstimator`); this module vmaps them over chains, scans over
iterations and compiles the whole fit once per (estimator, settings, data shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from simstudy.config import SamplerSettings
from simstudy.engine.nuts import Draws, _signature
from simstudy.models.base import Estimate, GibbsEstimator, ImputationEstimator

_COMPILED: dict[tuple[Any, ...], Any] = {}


def _chain(
    estimator: GibbsEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    record: Callable[[Any, Mapping[str, Any]], Any],
    n_record: int,
    thin: int,
):
    def one_chain(rng_key: jax.Array, data: Mapping[str, Any]):
        k_init, k_warm, k_draw = jax.random.split(rng_key, 3)
        state = estimator.init(k_init, data, priors)

        warm_step = estimator.warmup_step or estimator.step

        def warm(state, key):
            return warm_step(key, state, data, priors), None

        def sweep(state, key):
            return estimator.step(key, state, data, priors), None

        state, _ = jax.lax.scan(warm, state, jax.random.split(k_warm, settings.warmup))

        def thinned(state, key):
            state, _ = jax.lax.scan(sweep, state, jax.random.split(key, thin))
            return state, record(state, data)

        _, recorded = jax.lax.scan(thinned, state, jax.random.split(k_draw, n_record))
        return recorded

    return one_chain


def compile_fit(
    estimator: GibbsEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    data: Mapping[str, Any],
    record: Callable[[Any, Mapping[str, Any]], Any] | None = None,
    n_record: int | None = None,
    thin: int = 1,
    tag: str = "draws",
):
    """Compile (once per shapes) ``(rng_key, data) -> recorded values, chains first``.

    By default every sweep after warm-up records ``estimator.collect``; ``record``, ``n_record``
    and ``thin`` record something else every ``thin`` sweeps (e.g. latent scores for imputation).
    """
    arrays = {k: jnp.asarray(v) for k, v in data.items()}
    key = (
        estimator,  # its functions, not just its name: one name can serve several structures
        record,
        tag,
        settings,
        tuple(sorted(priors.items())),
        n_record,
        thin,
        _signature(arrays),
    )
    compiled = _COMPILED.get(key)
    if compiled is None:
        one_chain = _chain(
            estimator,
            settings,
            priors,
            record or estimator.collect,
            n_record or settings.draws,
            thin,
        )

        @jax.jit
        def fit(rng_key, data):
            return jax.vmap(one_chain, in_axes=(0, None))(
                jax.random.split(rng_key, settings.chains), data
            )

        compiled = _COMPILED[key] = fit.lower(jax.random.key(0), arrays).compile()
    return compiled


def prepare(
    estimator: GibbsEstimator,
    data: Mapping[str, Any],
    settings: SamplerSettings,
    priors: Mapping[str, float],
) -> Callable[[jax.Array, Mapping[str, Any]], Draws]:
    """Compiled Gibbs fit for ``data``'s shapes: ``(rng_key, data) -> Draws`` (chains × draws)."""
    compiled = compile_fit(estimator, settings, priors, data)

    def run(rng_key: jax.Array, data: Mapping[str, Any]) -> Draws:
        draws = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
        return Draws({k: np.asarray(v) for k, v in draws.items()}, 0)

    return run


def imputation_program(
    estimator: ImputationEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    data: Mapping[str, Any],
):
    """The compiled run that records ``estimator.analyse`` of M states spread over the chains."""
    per_chain = -(-estimator.imputations // settings.chains)
    return compile_fit(
        estimator.sampler,
        settings,
        priors,
        data,
        record=estimator.analyse,
        n_record=per_chain,
        thin=max(1, settings.draws // per_chain),
        tag=estimator.name,
    )


def impute_and_pool(
    estimator: ImputationEstimator,
    data: Mapping[str, Any],
    rng_key: jax.Array,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    level: float,
) -> dict[str, Estimate]:
    """Analyse M posterior states of ``estimator.sampler`` and pool them by Rubin's rules.

    The M states are spread evenly over the chains and over the sampling run (warm-up as in
    ``settings``), so they are close to independent draws of the latent scores.
    """
    compiled = imputation_program(estimator, settings, priors, data)
    estimates, variances = compiled(rng_key, {k: jnp.asarray(v) for k, v in data.items()})
    out = {}
    for name in estimator.parameters:
        q = np.asarray(estimates[name]).reshape(-1)[: estimator.imputations]
        u = np.asarray(variances[name]).reshape(-1)[: estimator.imputations]
        out[name] = rubin(q, u, level)
    return out


def rubin(q: np.ndarray, u: np.ndarray, level: float) -> Estimate:
    """Pool M estimates ``q`` with within-imputation variances ``u`` (Rubin 1987).

    Total variance ``T = W + (1 + 1/M) B``; t reference with Rubin's degrees of freedom
    ``(M - 1) (1 + W / ((1 + 1/M) B))^2``.
    """
    m = q.shape[0]
    qbar, w, b = q.mean(), u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    if b > 0:
        dof = (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2
        tq = float(stats.t.ppf(0.5 + level / 2, dof))
    else:
        tq = float(stats.norm.ppf(0.5 + level / 2))
    se = float(np.sqrt(t))
    return Estimate(float(qbar), se, float(qbar - tq * se), float(qbar + tq * se))
