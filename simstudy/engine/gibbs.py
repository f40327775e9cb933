"""A driver for conditional-update (Gibbs) samplers: all chains, warm-up and draws in one program.

The model supplies pure ``init``/``step``/``collect`` functions (see
:class:`~simstudy.models.base.GibbsEstimator`); this module vmaps them over chains, scans over
iterations and compiles the whole fit once per (estimator, settings, data shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    width: int | None = None,
):
    """Compile (once per shapes) ``(rng_key, data) -> recorded values, chains first``.

    By default every sweep after warm-up records ``estimator.collect``; ``record``, ``n_record``
    and ``thin`` record something else every ``thin`` sweeps (e.g. latent scores for imputation).
    With ``width`` the program fits ``width`` replications at once: ``data`` has a leading axis
    of that length, the key is one key per replication, and so are the results' leading axis
    (vmap over replications × chains: every lane runs the same number of sweeps, so nothing
    waits for a slow lane).
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
        width,
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

        def fit_one(rng_key, data):
            return jax.vmap(one_chain, in_axes=(0, None))(
                jax.random.split(rng_key, settings.chains), data
            )

        if width is None:
            example = jax.random.key(0)
            fit = jax.jit(fit_one)
        else:
            example = jax.random.split(jax.random.key(0), width)
            fit = jax.jit(jax.vmap(fit_one))
        compiled = _COMPILED[key] = fit.lower(example, arrays).compile()
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


def stack(datasets: Sequence[Mapping[str, Any]], width: int) -> dict[str, jax.Array]:
    """Stack data sets of one shape along a new axis, padded to ``width`` with the last one.

    Padding lanes are computed and thrown away, so every call compiles to, and runs, the same
    program: a replication's numbers do not depend on which batch it is in.
    """
    padded = list(datasets) + [datasets[-1]] * (width - len(datasets))
    return {k: jnp.stack([jnp.asarray(d[k]) for d in padded]) for k in datasets[0]}


def _stack_keys(keys: Sequence[jax.Array], width: int) -> jax.Array:
    return jnp.stack(list(keys) + [keys[-1]] * (width - len(keys)))


def prepare_batch(
    estimator: GibbsEstimator,
    datasets: Sequence[Mapping[str, Any]],
    settings: SamplerSettings,
    priors: Mapping[str, float],
    width: int,
) -> Callable[[Sequence[jax.Array]], list[Draws]]:
    """Compiled fit of up to ``width`` data sets at once: ``keys -> [Draws]``, one per data set."""
    data = stack(datasets, width)
    compiled = compile_fit(estimator, settings, priors, data, width=width)

    def run(keys: Sequence[jax.Array]) -> list[Draws]:
        draws = compiled(_stack_keys(keys, width), data)
        host = {k: np.asarray(v) for k, v in draws.items()}
        return [Draws({k: v[i] for k, v in host.items()}, 0) for i in range(len(datasets))]

    return run


def imputation_program(
    estimator: ImputationEstimator,
    settings: SamplerSettings,
    priors: Mapping[str, float],
    data: Mapping[str, Any],
    width: int | None = None,
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
        width=width,
    )


def prepare_impute_batch(
    estimator: ImputationEstimator,
    datasets: Sequence[Mapping[str, Any]],
    settings: SamplerSettings,
    priors: Mapping[str, float],
    width: int,
) -> Callable[[Sequence[jax.Array], float], list[dict[str, Estimate]]]:
    """:func:`impute_and_pool` for up to ``width`` data sets in one compiled program.

    Returns ``(keys, level) -> [pooled estimates]``, one per data set (compiled on return).
    """
    data = stack(datasets, width)
    compiled = imputation_program(estimator, settings, priors, data, width)

    def run(keys: Sequence[jax.Array], level: float) -> list[dict[str, Estimate]]:
        estimates, variances = compiled(_stack_keys(keys, width), data)
        return [
            _pool(estimator, {k: v[i] for k, v in estimates.items()},
                  {k: v[i] for k, v in variances.items()}, level)
            for i in range(len(datasets))
        ]  # fmt: skip

    return run


def _pool(estimator: ImputationEstimator, estimates, variances, level: float):
    out = {}
    for name in estimator.parameters:
        q = np.asarray(estimates[name]).reshape(-1)[: estimator.imputations]
        u = np.asarray(variances[name]).reshape(-1)[: estimator.imputations]
        out[name] = rubin(q, u, level)
    return out


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
    return _pool(estimator, estimates, variances, level)


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
